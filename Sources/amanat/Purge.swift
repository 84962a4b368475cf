import AmanatCore
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat purge`: destroys a record's content on every replica, sync file and relay that syncs after it.
    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a record's content everywhere (coordinators; when a witness withdraws consent).",
            discussion: """
                Unlike delete, a purge cannot be undone. Every field value and attachment of every change that \
                touched the record is destroyed here at once, and on every replica, sync file and relay when they \
                next sync with a device that has the purge. What stays is what proves the log is whole: each \
                change's header, the hash of its destroyed content and its signature, so `amanat verify` still \
                passes everywhere. `amanat history ID` then shows only who purged the record, when, and why.

                A replica that still has the content drops it when it learns of the purge, and an old copy of a \
                sync file never brings it back. An evidence bundle exported before the purge is a file elsewhere \
                and is not affected. A device that never syncs again keeps its copy; flash storage may keep old \
                blocks (see the threat model).

                The reason is sealed with the vault key: relays learn only that a coordinator purged some changes. \
                On a terminal the command asks for confirmation; scripts pass --yes.

                Example:
                  amanat purge 3f9a1c --reason "consent withdrawn"
                  amanat purge 3f9a1c --reason "…" --yes
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it (a deleted record too).") var id: String
        @Option(help: "Why the record is purged (sealed; shown by `amanat history`).") var reason: String
        @Flag(help: "Purge without asking (for scripts).") var yes = false
        @Flag(help: "Print what was purged as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let short = state.id.hex.prefix(12)
            guard !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw CLIError(
                    .usage, "A purge needs a reason: add --reason TEXT (it is sealed, and shown in `amanat history`).")
            }
            if !yes {
                guard let ask = askOnTerminal else {
                    throw CLIError(
                        .usage,
                        "Purging destroys record \(short) on every device for good; add --yes to confirm.")
                }
                guard
                    ask(
                        "Destroy record \(short) (\(state.creationKind)) and its attachments on every device? This cannot be undone. [y/N] "
                    )
                else { throw CLIError(.usage, "Nothing was purged.") }
            }
            let info = try vault.purge(record: state.id, reason: reason)
            note(
                "Purged \(short): the content of \(info.changes) change\(info.changes == 1 ? "" : "s") and \(info.chunks) attachment chunk\(info.chunks == 1 ? "" : "s") is destroyed here; sync to carry the purge to the other devices, sync files and relays."
            )
            if json { try JSONOutput.print(PurgeJSON(info, vault: vault)) }
        }
    }
}

/// A purge as `purge --json` and `history --json` print it.
struct PurgeJSON: Encodable {
    var record: String
    var purged: Details

    struct Details: Encodable {
        var by: String
        var by_name: String?
        var time_millis: UInt64
        var time: String?
        var reason: String
        var changes: Int
        var chunks: Int
    }

    init(_ info: PurgeInfo, vault: Vault) {
        record = info.record.hex
        purged = Details(
            by: info.by.hex, by_name: vault.memberName(info.by), time_millis: info.at.wallMillis,
            time: JSONOutput.iso(info.at.wallMillis),
            reason: info.reason, changes: info.changes, chunks: info.chunks)
    }
}
