import AmanatCore
import ArgumentParser

/// `amanat delete`: hides a record; its history stays in the log.
struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a record (its history is kept; a concurrent edit elsewhere keeps it visible).",
        discussion: """
            Example:
              amanat delete 3f9a1c
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "The record id or a unique prefix of it.") var id: String

    func run() throws {
        try runReportingErrors {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            try vault.commit(record: state.id) { current in [(current ?? state).deleteOperation()] }
            note("Deleted \(state.id.hex.prefix(12)).")
        }
    }
}
