import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat tag`: adds and removes tags.
    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove tags of a record.",
            discussion: """
                Removing a tag removes only the additions this device has seen: a concurrent addition elsewhere survives. \
                Tags are stored trimmed and in lower case, so Detention and detention are one tag; a tag cannot hold a \
                comma: give --add once per tag.

                Example:
                  amanat tag 3f9a1c --add verified --remove draft
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Option(help: "A tag to add; repeat for several.") var add: [String] = []
        @Option(help: "A tag to remove; repeat for several.") var remove: [String] = []
        @Flag(help: "Print the tags added and removed, the record's tags and the change as JSON (Docs/json.md).")
        var json = false

        func run() throws {
            guard !add.isEmpty || !remove.isEmpty else { throw CLIError(.usage, "Give --add TAG or --remove TAG.") }
            let adding = try Fields.tags(add)
            let removing = try Fields.tags(remove)
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            for tag in removing where !state.tags.contains(where: { RecordSchema.tagMatches($0, tag) }) {
                throw CLIError(.usage, "Record \(state.id.hex.prefix(12)) has no tag \"\(tag)\".")
            }
            let change = try vault.commit(record: state.id) { current in
                let base = current ?? state
                // A tag stored before tags were normalised (`Detention`) is removed with any spelling of it.
                let stored = removing.flatMap { tag in base.tags.filter { RecordSchema.tagMatches($0, tag) } }
                return adding.map(base.addTagOperation) + stored.compactMap(base.removeTagOperation)
            }
            note("Tagged \(state.id.hex.prefix(12)).")
            if json {
                try JSONOutput.print(
                    TaggedJSON(
                        record: state.id.hex, added: adding, removed: removing,
                        tags: try vault.resolveRecord(state.id.hex, includeDeleted: true).tags,
                        change: SignedChangeJSON(change)))
            }
        }
    }
}
