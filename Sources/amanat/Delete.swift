import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat delete`: hides a record; its history stays in the log, and `undelete` brings it back.
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a record (its history is kept; `amanat undelete ID` brings it back).",
            discussion: """
                The deletion is a signed change that reaches every replica at its next sync. A concurrent edit made \
                elsewhere keeps the record visible. `amanat list --deleted` lists deleted records; `amanat undelete ID` \
                restores one, on any device.

                Example:
                  amanat delete 3f9a1c
                  amanat undelete 3f9a1c
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Flag(help: "Print the record and the change as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let change = try vault.commit(record: state.id) { current in [(current ?? state).deleteOperation()] }
            let short = state.id.hex.prefix(12)
            note("Deleted \(short). To undo: amanat undelete \(short)")
            if json {
                let after = try vault.resolveRecord(state.id.hex, includeDeleted: true)
                try JSONOutput.print(
                    DeletedJSON(
                        record: state.id.hex, kind: state.creationKind, deleted: after.isDeleted,
                        change: SignedChangeJSON(change)))
            }
        }
    }
}

extension Amanat {
    /// `amanat undelete`: makes a deleted record visible again with a signed change that merges like any other.
    struct Undelete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a deleted record, with its values and tags as they were.",
            discussion: """
                The undelete is a signed change: it writes again every value and tag the record showed, as new \
                operations no delete has seen, so every replica that syncs it shows the record again, even one that \
                deleted it at the same time. A conflict the record had stays a conflict. The history keeps the deletion \
                and the undelete.

                Example:
                  amanat list --deleted
                  amanat undelete 3f9a1c
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The deleted record's id or a unique prefix of it.") var id: String
        @Flag(help: "Print the record and the change as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let short = state.id.hex.prefix(12)
            guard state.isDeleted else { throw CLIError(.usage, "Record \(short) is not deleted; nothing to undo.") }
            guard !state.undeleteOperations().isEmpty else {
                throw CLIError(.damaged, "Record \(short) has no value or tag left to restore.")
            }
            let change = try vault.commit(record: state.id) { current in (current ?? state).undeleteOperations() }
            note("Restored \(short).")
            if json {
                let after = try vault.resolveRecord(state.id.hex, includeDeleted: true)
                try JSONOutput.print(
                    DeletedJSON(
                        record: state.id.hex, kind: state.creationKind, deleted: after.isDeleted,
                        change: SignedChangeJSON(change)))
            }
        }
    }
}
