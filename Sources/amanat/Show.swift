import ArgumentParser

extension Amanat {
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
        @Flag(help: "Also show a deleted record (`amanat undelete ID` restores it).") var deleted = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: deleted)
            guard let view = state.contentView(nowMillis: vault.wallClock()) else {
                throw CLIError(.unknownID, "No record has the id \(id).")
            }
            if json {
                print(try RecordJSON.render(RecordJSON(view)))
            } else {
                if state.isDeleted {
                    print("DELETED: restore with `amanat undelete \(state.id.hex.prefix(12))`")
                }
                print(RecordText.detail(view, state: state, device: vault.deviceLabel))
                for info in state.attachments {
                    print("attachment: " + Amanat.Attachments.line(info, try vault.presence(of: info), state: state))
                }
            }
        }
    }
}
