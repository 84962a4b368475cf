import AmanatCore
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Amanat {
    /// `amanat attachments`: the attachments of a record and how complete each is on this device.
    struct Attachments: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a record's attachments and whether each is complete on this device.",
            discussion: """
                Each line shows the attachment id, complete / partial / missing (chunks stored here out of all), size, \
                media type, name and note. A partial or missing attachment is followed by where it can be had: the \
                device that attached it holds all of it. It arrives with the next sync with a sync file or relay \
                that device has synced with, or with `amanat fetch ID TARGET`.

                Example:
                  amanat attachments 3f9a1c
                  amanat attachments 3f9a1c --json
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Flag(help: "Also list detached attachments (kept as evidence).") var detached = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let list = detached ? state.allAttachments : state.attachments
            var rows: [(AttachmentInfo, AttachmentPresence)] = []
            for info in list { rows.append((info, try vault.presence(of: info))) }
            if json {
                print(Self.json(rows, state: state, vault: vault))
                return
            }
            if rows.isEmpty {
                note("Record \(state.id.hex.prefix(12)) has no attachments.")
                return
            }
            for (info, presence) in rows {
                print(Self.line(info, presence, state: state))
                if !info.note.isEmpty { print("    note: \(RecordText.oneLine(info.note, 100))") }
                if presence.present != presence.total {
                    print(TerminalText.escape("    where: \(Self.whereToGet(info, vault: vault))"))
                }
            }
        }

        /// Where an incomplete attachment can be had: the device that attached it holds all of it (it stored every
        /// chunk before it signed the change), so any stick or relay that device synced with since has it.
        static func whereToGet(_ info: AttachmentInfo, vault: Vault) -> String {
            guard info.op.device != vault.deviceID else {
                return
                    "attached on this device, whose copy lost chunks (damaged ones are set aside: `amanat verify`); another member's copy comes back with a sync (or `amanat fetch ID TARGET`)."
            }
            return
                "attached by \(vault.deviceLabel(info.op.device)), which holds all of it: a sync with a stick or relay that device has synced with since brings it (or `amanat fetch ID TARGET`)."
        }

        /// One human line: id, completeness, size, type, name, metadata marks.
        static func line(_ info: AttachmentInfo, _ presence: AttachmentPresence, state: RecordState) -> String {
            var completeness = presence.word
            if presence.present != presence.total {
                completeness +=
                    " (\(presence.present)/\(presence.total) chunks, \(Size.text(presence.missingBytes)) missing)"
            }
            var marks: [String] = []
            if state.detached.contains(info.op) { marks.append("(detached)") }
            if info.hasLocation { marks.append("! GPS location in metadata") }
            if info.hasDeviceMetadata { marks.append("! device in metadata") }
            let name = info.name.isEmpty ? "(standard input)" : RecordText.oneLine(info.name, 50)
            return
                (["\(info.id.prefix(12))  \(completeness)  \(Size.text(info.size))  \(info.mediaType)  \(name)"] + marks)
                .joined(separator: "  ")
        }

        static func json(_ rows: [(AttachmentInfo, AttachmentPresence)], state: RecordState, vault: Vault) -> String {
            let items: [[String: Any]] = rows.map { info, presence in
                [
                    "id": info.id, "record": state.id.hex, "name": info.name, "media_type": info.mediaType,
                    "size": info.size, "sha256": Hex.encode(info.sha256), "note": info.note,
                    "chunks": presence.total, "chunks_present": presence.present,
                    "missing_bytes": presence.missingBytes, "state": presence.word,
                    "detached": state.detached.contains(info.op), "attached_by": info.op.device.hex,
                    "attached_at_millis": info.timestamp.wallMillis, "location_metadata": info.hasLocation,
                    "device_metadata": info.hasDeviceMetadata, "chunk_root": Hex.encode(info.root),
                ]
            }
            let data =
                (try? JSONSerialization.data(withJSONObject: items, options: [.sortedKeys, .prettyPrinted])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// `amanat extract`: writes an attachment's original bytes to a file.
    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an attachment's original file out of the vault.",
            discussion: """
                Every chunk is authenticated before it is written and the SHA-256 of the whole is compared with the \
                signed one; on any failure the output file is removed. An existing file is replaced only with --force \
                (exit 73 otherwise). An incomplete attachment is refused (exit 66): fetch it first.

                Example:
                  amanat extract 3f9a1c 9b2e07 --out interview.m4a
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Argument(help: "The attachment id or a unique prefix of it (6+ characters).") var attachment: String
        @Option(help: "The file to write (its folder must exist).") var out: String
        @Flag(help: "Replace the output file if it exists.") var force = false

        func run() throws {
            try OutputFile.check(out, force: force)
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let info = try vault.resolveAttachment(attachment, in: state, includeDetached: true)
            let presence = try vault.presence(of: info)
            guard presence.present == presence.total else {
                throw CLIError(
                    .noInput,
                    "Attachment \(info.id.prefix(12)) is \(presence.word) here (\(presence.present) of \(presence.total) chunks, \(Size.text(presence.missingBytes)) missing); run `amanat fetch \(state.id.hex.prefix(12)) TARGET` with a sync file or relay that has it."
                )
            }
            let flags = O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL)
            let fd = open(out, flags, 0o600)
            guard fd >= 0 else {
                if errno == EEXIST {
                    throw CLIError(
                        .exists, "\(out) already exists; choose another name, or add --force to replace it.")
                }
                throw CLIError(.io, "Cannot create \(out): \(String(cString: strerror(errno))).")
            }
            do {
                try vault.extract(info, record: state.id, to: fd, name: out)
                guard fsync(fd) == 0 else {
                    throw CLIError(.io, "Cannot write \(out): \(String(cString: strerror(errno))).")
                }
                close(fd)
            } catch {
                // Nothing of a refused attachment stays: a regular file is emptied and, when `out` names it rather
                // than a link to it, removed; a pipe or a terminal (never removed) was written only checked chunks.
                var written = stat()
                var named = stat()
                if fstat(fd, &written) == 0 && written.st_mode & S_IFMT == S_IFREG {
                    _ = ftruncate(fd, 0)
                    if lstat(out, &named) == 0 && named.st_mode & S_IFMT == S_IFREG { unlink(out) }
                }
                close(fd)
                throw error
            }
            note(
                "Wrote \(Size.text(info.size)) to \(out); SHA-256 \(Hex.encode(info.sha256)) matches the signed one."
            )
        }
    }

    /// `amanat detach`: a signed change that stops listing an attachment; its content stays as evidence.
    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Detach an attachment from a record (a signed change; the content stays as evidence).",
            discussion: """
                The attachment is no longer listed, but the change that attached it and its encrypted chunks stay in \
                every replica's log as evidence until a coordinator purges the record. `attachments --detached` \
                still lists it.

                Example:
                  amanat detach 3f9a1c 9b2e07
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Argument(help: "The attachment id or a unique prefix of it (6+ characters).") var attachment: String

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let info = try vault.resolveAttachment(attachment, in: state)
            try vault.detach(record: state.id, attachment: info)
            note(
                "Detached attachment \(info.id.prefix(12)) from record \(state.id.hex.prefix(12)); its content stays in the vault as evidence."
            )
        }
    }
}
