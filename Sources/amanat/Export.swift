import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat export`: writes an age-encrypted evidence bundle of selected records.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export selected records as an evidence bundle: an age file that standard tools open.",
            discussion: """
                The bundle is an age v1 file (https://age-encryption.org) encrypted to each --recipient (age1… keys, \
                from `age-keygen` or `amanat identity`) or, with --passphrase, to a passphrase (read from \
                $AMANAT_BUNDLE_PASSPHRASE or asked at the terminal). Inside is a tar archive: manifest.json, \
                records/<id>.json, custody/<id>.json (the records' signed envelopes and the keys of exactly those \
                envelopes), membership.json (the vault's signed membership entries, so the recipient can check each \
                signer back to the vault's founder), chains/ and README.txt; manifest.sig is this device's signature over \
                the manifest, which lists every file's SHA-256 (Protocol/bundle.md). Nothing about other records is \
                disclosed. Records are chosen with the selection flags of `list` (--kind, --tag: every one given, \
                --any-tag: any, --id, --since, --until; all of them must hold); without any, every record is exported. \
                A selection that matches nothing exits with status 2. The size is padded (Padmé).

                Attached files go into attachments/ as they were attached. With --strip-location, each JPEG, PNG, \
                HEIC, MP4, QuickTime or M4A attachment goes in as a copy without GPS and place metadata (the EXIF GPS \
                block, XMP GPS and place properties, ©xyz, loci and QuickTime location items), of the same size; the \
                manifest states the copy's SHA-256, the original's SHA-256 as sealed in custody, and what was \
                removed, and the original stays sealed in the vault (`amanat extract` gives it back). Camera make, \
                model and serial are kept, and the picture or sound itself can still show the place. A file whose \
                structure cannot be followed stops the export (status 65) and nothing is written.

                Consent: testimonies whose consent is restricted, unset or in conflict are left out unless \
                --include-restricted is given; the command says how many were left out and why, and the manifest \
                records each exported testimony's consent.

                Example:
                  amanat export --out evidence.age --tag detention \\
                    --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8…
                  age -d -i lawyer-key.txt evidence.age | tar t
                  amanat export --out media.age --id 3f9a1c \\
                    --strip-location --recipient age1ql3z…
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "Where to write the bundle.") var out: String
        @Option(help: "An age recipient (age1…); repeat for several.") var recipient: [String] = []
        @Flag(help: "Encrypt to a passphrase instead of recipients.") var passphrase = false
        @Flag(help: "Write ASCII armor (PEM-like text) instead of binary.") var armor = false
        @OptionGroup var selection: FilterOptions
        @Flag(help: "Also export testimonies whose consent is restricted, unset or in conflict.")
        var includeRestricted = false
        @Flag(
            help:
                "Put copies of photos and videos without GPS/location metadata in the bundle; the originals stay sealed in the vault."
        )
        var stripLocation = false
        @Flag(help: "Replace the file given with --out if it exists (never done without this flag).") var force = false
        @Flag(help: "Print what was exported as JSON on stdout (Docs/json.md).") var json = false

        func run() throws {
            guard !recipient.isEmpty || passphrase else {
                throw CLIError(.usage, "Say who can open the bundle: --recipient age1… (repeatable) or --passphrase.")
            }
            guard recipient.isEmpty || !passphrase else {
                throw CLIError(
                    .usage, "age allows a passphrase bundle to have no other recipient: use one or the other.")
            }
            try OutputFile.check(out, force: force)
            var recipients: [any AgeRecipient] = []
            for text in recipient {
                do {
                    recipients.append(try AgeX25519Recipient(parsing: text))
                } catch {
                    throw CLIError(.usage, "\"\(text)\" is not an age recipient (age1…).")
                }
            }
            let vault = try options.open()
            // One selection rule with `list` and `search` (FilterOptions); a deleted record is exported by --id.
            let filter = try selection.filter(in: vault, includeDeleted: true)
            let now = vault.wallClock()
            let selected = try vault.allStates().filter { state in
                guard state.isVisible || filter.ids.contains(state.id) else { return false }
                return state.contentView(nowMillis: now).map(filter.matches) ?? false
            }
            if selected.isEmpty { throw FilterOptions.nothingMatched(filter) }
            note("Selected \(selected.count) record\(selected.count == 1 ? "" : "s"): \(filter.summary).")
            var unique: [RecordID: RecordState] = [:]
            for state in selected { unique[state.id] = state }
            var leftOut: [String: Int] = [:]
            if !includeRestricted {
                for state in unique.values where !BundleExporter.isShareable(state) {
                    leftOut[BundleExporter.consent(of: state) ?? "unset", default: 0] += 1
                    unique[state.id] = nil
                }
            }
            if !leftOut.isEmpty {
                let reasons = leftOut.sorted { $0.key < $1.key }.map { reason, count in
                    let what = "\(count) testimon\(count == 1 ? "y" : "ies")"
                    switch reason {
                    case "conflict": return "\(what) with conflicting consent values"
                    case "unset": return "\(what) without a consent value"
                    default: return "\(what) with consent \(reason)"
                    }
                }
                note(
                    "Left out \(reasons.joined(separator: ", ")): the witness did not consent to sharing. Give --include-restricted to export them anyway."
                )
            }
            if selection.id.isEmpty {
                // One change stamped 2^53 ms or later (a hostile member's, or a clock set to year 287396) cannot be
                // written exactly (Protocol/bundle.md §3.2). Exporting the whole vault leaves that record out and names
                // it, instead of refusing every record; naming it with --id still refuses.
                let limit = UInt64(JSONValue.maximumInteger)
                let unwritable = unique.values.filter { state in
                    state.changes.contains { $0.timestamp.wallMillis > limit || $0.seq > limit }
                }.map(\.id).sorted()
                for record in unwritable { unique[record] = nil }
                if !unwritable.isEmpty {
                    note(
                        "Left out \(unwritable.count) record\(unwritable.count == 1 ? "" : "s") with a change stamped too far in the future to be written exactly: \(unwritable.map { String($0.hex.prefix(12)) }.joined(separator: ", ")). Check `amanat history` of each."
                    )
                }
            }
            if unique.isEmpty {
                throw CLIError(
                    .noMatch,
                    "Nothing was exported: every selected record was left out (see above); nothing was written.")
            }
            sharedProgress.update("Gathering \(unique.count) record\(unique.count == 1 ? "" : "s") and their custody…")
            // The listed attachments of the exported records travel with them, streamed from the vault's chunks.
            var attachments = BundleExporter.attachmentEntries(of: Array(unique.values))
            let streamed = try Self.attachmentsToStream(unique, vault: vault)
            var copies: [String: BundleExporter.StrippedCopy] = [:]
            if stripLocation {
                copies = try BundleExporter.strippedCopies(streamed, vault: vault) { sharedProgress.update($0) }
                attachments = BundleExporter.applying(copies, to: attachments)
            } else {
                let located = streamed.filter { $0.info.hasLocation }.count
                if located > 0 {
                    note(
                        "\(located) attached file\(located == 1 ? " carries" : "s carry") GPS location in \(located == 1 ? "its" : "their") metadata and \(located == 1 ? "goes" : "go") into the bundle as \(located == 1 ? "it is" : "they are"); give --strip-location to send copies without it."
                    )
                }
            }
            let archive = try BundleExporter.archive(
                from: vault, records: Array(unique.values), now: Date(), attachments: attachments)
            sharedProgress.finish()
            if passphrase {
                let secret = try Passphrase.read(
                    file: nil, prompt: "Passphrase for the bundle: ", confirm: true,
                    environmentVariable: "AMANAT_BUNDLE_PASSPHRASE", fileOption: nil)
                recipients = [try AgeScryptRecipient(passphrase: secret)]
            }
            let url = URL(fileURLWithPath: out)
            guard
                FileManager.default.createFile(
                    atPath: url.path + ".partial", contents: nil, attributes: [.posixPermissions: 0o600]),
                let handle = FileHandle(forWritingAtPath: url.path + ".partial")
            else { throw CLIError(.io, "Cannot write \(out).") }
            do {
                let encryptor = try AgeEncryptor(recipients: recipients, armor: armor) { bytes in
                    try handle.write(contentsOf: bytes)
                }
                let progress = ProgressLine()
                defer { progress.finish() }
                var written = 0
                try BundleExporter.stream(archive, attachments: streamed, vault: vault, stripped: copies) { piece in
                    var offset = 0
                    while offset < piece.count {
                        let end = min(offset + 1 << 20, piece.count)
                        try encryptor.write(offset == 0 && end == piece.count ? piece : Array(piece[offset..<end]))
                        written += end - offset
                        offset = end
                        progress.update("Encrypting the bundle: \(ProgressLine.bytes(written))…")
                    }
                }
                try encryptor.finish()
                try handle.synchronize()
                try handle.close()
                try? FileManager.default.removeItem(at: url)
                try FileManager.default.moveItem(atPath: url.path + ".partial", toPath: url.path)
            } catch {
                try? handle.close()
                try? FileManager.default.removeItem(atPath: url.path + ".partial")
                if let error = error as? CocoaError, error.code == .fileWriteOutOfSpace {
                    throw CLIError(
                        .io,
                        "The disk holding \(url.deletingLastPathComponent().path) is full; the bundle was not written.")
                }
                throw error
            }
            let files = streamed.isEmpty ? "" : " with \(streamed.count) attached file\(streamed.count == 1 ? "" : "s")"
            note("Exported \(unique.count) record\(unique.count == 1 ? "" : "s")\(files) to \(out).")
            let strippedList = streamed.compactMap { item in copies[item.info.id].map { (item, $0) } }
            if stripLocation {
                note(
                    strippedList.isEmpty
                        ? "No attached photo or video carried location metadata the stripper removes; every file is the original."
                        : "Removed location metadata from \(strippedList.count) attached file\(strippedList.count == 1 ? "" : "s") (the bundle states each copy's SHA-256 and the original's); the originals stay sealed in this vault."
                )
            }
            if json {
                try JSONOutput.print(
                    ExportedJSON(
                        out: out, bytes: fileSize(out), records: unique.keys.map(\.hex).sorted(),
                        selected: Set(selected.map(\.id)).count, left_out: Set(selected.map(\.id)).count - unique.count,
                        left_out_by_consent: leftOut, encrypted_to: passphrase ? "passphrase" : "recipients",
                        recipients: recipients.count, armor: armor,
                        stripped: stripLocation
                            ? strippedList.map { item, copy in
                                ExportedJSON.Stripped(
                                    attachment: item.info.id, record: item.record.hex, path: item.path,
                                    original_sha256: Hex.encode(item.info.sha256), sha256: Hex.encode(copy.sha256),
                                    size: copy.size, removed: copy.removed)
                            } : nil))
            }
        }

        /// The attachments of the exported records, in path order; refused before anything is written when one is
        /// not complete on this device or is too large for a tar file.
        static func attachmentsToStream(_ records: [RecordID: RecordState], vault: Vault) throws
            -> [(record: RecordID, info: AttachmentInfo, path: String)]
        {
            var list: [(record: RecordID, info: AttachmentInfo, path: String)] = []
            for state in records.values {
                for info in state.attachments {
                    guard info.size <= UInt64(TarArchive.largestSize) else {
                        throw CLIError(
                            .usage,
                            "Attachment \(info.id.prefix(12)) of record \(state.id.hex.prefix(12)) is 64 GiB or larger, more than a bundle's tar format holds; export it with `amanat extract` instead."
                        )
                    }
                    let presence = try vault.presence(of: info)
                    guard presence.present == presence.total else {
                        throw CLIError(
                            .noInput,
                            "Attachment \(info.id.prefix(12)) of record \(state.id.hex.prefix(12)) is \(presence.word) here (\(presence.present) of \(presence.total) chunks); run `amanat fetch \(state.id.hex.prefix(12)) TARGET` first. Nothing was exported."
                        )
                    }
                    list.append((state.id, info, BundleExporter.attachmentPath(record: state.id, attachment: info)))
                }
            }
            return list.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        }
    }
}
