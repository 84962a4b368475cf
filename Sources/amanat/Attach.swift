import AmanatCore
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Amanat {
    /// `amanat attach`: adds a file (audio, video, photo, document) to a record, encrypted in chunks.
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach a file (audio, video, photo, scan) to a record, encrypted in chunks.",
            discussion: """
                The file is read in 1 MiB chunks; each is encrypted and stored in the vault folder (chunks/), and then \
                one signed change records the file's SHA-256, size, media type, name and note, so the attachment is \
                covered by the record's custody. An interrupted attach leaves nothing referenced; run it again and it \
                continues (chunks already stored are not written again). FILE - reads standard input. Prints the \
                attachment id. Photos and videos that carry location or device metadata are warned about.

                A source that does not end (a device, a stuck pipe) is stopped before the vault's disk would have \
                less than 32 MiB free (exit 74), and one longer than an attachment can be (about 255 GiB) is refused \
                (exit 64); either way nothing is attached and the chunks written for it are removed.

                Example:
                  amanat attach 3f9a1c interview.m4a \\
                    --note "witness W-017, second session"
                  amanat attachments 3f9a1c
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Argument(help: "The file to attach; - reads standard input.") var file: String
        @Option(help: "A note kept with the attachment.") var note: String = ""

        func run() throws {
            if file == "-" && options.passphraseFile == "-" {
                throw CLIError(
                    .usage,
                    "Standard input cannot carry both the passphrase and the file; give --passphrase-file FILE.")
            }
            let (fd, name) = try Self.openInput(file)
            defer { if fd != 0 { close(fd) } }
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            var source = FileDescriptorSource(fd: fd, name: file == "-" ? "standard input" : file)
            let scanner = MetadataScanner()
            let stored = try vault.storeFile(from: &source, name: name, note: note, inspect: scanner.feed)
            var spec = stored.spec
            spec.metadataFlags = scanner.flags(mediaType: spec.mediaType)
            let info = try vault.attach(record: state.id, spec: spec)
            Amanat.Attach.noteMetadata(info)
            let reused = stored.reused > 0 ? ", \(stored.reused) already stored" : ""
            writeNote(
                "Attached \(name.isEmpty ? "standard input" : name) to record \(state.id.hex.prefix(12)): \(info.mediaType), \(Size.text(info.size)), SHA-256 \(Hex.encode(info.sha256)); \(stored.written) chunk\(stored.written == 1 ? "" : "s") written\(reused)."
            )
            print(info.id)
        }

        /// Opens the input for reading: standard input for `-`, else a regular file (exit 66 when it cannot be read).
        static func openInput(_ path: String) throws -> (Int32, String) {
            if path == "-" { return (0, "") }
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                throw CLIError(.noInput, "Cannot read \(path): \(String(cString: strerror(errno))).")
            }
            var info = stat()
            if fstat(fd, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR {
                close(fd)
                throw CLIError(.noInput, "\(path) is a folder; give a file.")
            }
            return (fd, URL(fileURLWithPath: path).lastPathComponent)
        }

        /// Warns about identifying metadata the attached file carries.
        static func noteMetadata(_ info: AttachmentInfo) {
            var what: [String] = []
            if info.hasLocation { what.append("GPS location") }
            if info.hasDeviceMetadata { what.append("the camera or phone that made it") }
            guard !what.isEmpty else { return }
            writeNote(
                "warning: this file carries \(what.joined(separator: " and ")) in its metadata; it stays sealed in the vault, and `amanat export --strip-location` removes the location from an exported copy."
            )
        }
    }
}

/// ``note(_:)`` under another name, for commands whose `--note` option hides the function.
func writeNote(_ text: String) { note(text) }

/// Sizes for people: bytes, KiB, MiB, GiB.
enum Size {
    static func text(_ bytes: UInt64) -> String {
        if bytes < 1024 { return "\(bytes) bytes" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f %@", value, units[unit])
    }

    /// Parses `500M`, `2G`, `700k`, `1048576` in binary units (`20G`, `20GB` and `20GiB` all mean 20 × 2³⁰ bytes),
    /// refusing anything else (`1.5G`, `-1`, overflow) before conversion.
    static func parse(_ text: String) -> UInt64? {
        var digits = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: UInt64] = ["k": 10, "m": 20, "g": 30, "t": 40]
        if digits.hasSuffix("ib") {
            digits.removeLast(2)
            guard let unit = digits.last, units[unit] != nil else { return nil }
        } else if digits.hasSuffix("b"), let unit = digits.dropLast().last, units[unit] != nil {
            digits.removeLast()
        }
        var shift: UInt64 = 0
        if let unit = digits.last, let bits = units[unit] {
            shift = bits
            digits.removeLast()
        }
        guard !digits.isEmpty, digits.count <= 15, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let value = UInt64(digits)
        else { return nil }
        let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : result
    }
}
