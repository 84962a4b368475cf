import ArgumentParser

/// `amanat show`: one record in full.
struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one record with every field, its tags and any conflicts.",
        discussion: """
            ID may be a unique prefix of 6 or more characters.

            Example:
              amanat show 3f9a1c
              amanat show 3f9a1c --json
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "The record id or a unique prefix of it.") var id: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            guard let view = state.view(nowMillis: vault.wallClock()) else {
                throw CLIError(.unknownID, "No record has the id \(id).")
            }
            print(
                json
                    ? try RecordJSON.render(RecordJSON(view))
                    : RecordText.detail(view, state: state, device: vault.deviceLabel))
        }
    }
}
