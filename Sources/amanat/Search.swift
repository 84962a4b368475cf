import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat search`: finds records whose fields or tags contain a text, searching decrypted records in memory.
    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Find records whose fields or tags contain TEXT (in any case, spelling of Arabic letters or digits).",
            discussion: """
                The search runs over records decrypted in memory; no plaintext index is ever written to disk.

                Text typed on an Arabic, Persian or Pashto keyboard finds the same records: ك and ک, ي, ى and ی, ة and \
                ه, and the hamza forms of alef, waw and yeh count as one letter; the zero-width non-joiner, tatweel and \
                vowel marks are ignored; Persian (۱۴۰۲), Arabic-Indic (١٤٠٢) and ASCII (1402) digits are alike.

                Takes the selection flags of `list` (--kind, --tag, --any-tag, --id, --since, --until). Exits with \
                status 2 when nothing matches.

                Example:
                  amanat search "Herat"
                  amanat search کابل --kind testimony
                  amanat search taliban --json
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var selection: FilterOptions
        @Argument(help: "The text to look for.") var text: String
        @Flag(help: "Print JSON, as `list --json` does.") var json = false

        func run() throws {
            let needle = TextFolding.searchKey(text)
            guard !needle.isEmpty else { throw CLIError(.usage, "Give a non-empty text to search for.") }
            let vault = try options.open()
            let filter = try selection.filter(in: vault)
            let found = { (value: String) in TextFolding.searchKey(value).contains(needle) }
            let matches = try vault.visibleRecords().filter { view in
                filter.matches(view)
                    && (view.fields.values.contains(where: found)
                        || view.conflicts.values.joined().contains(where: found)
                        || view.tags.contains(where: found))
            }
            if json {
                print(try RecordJSON.render(matches.map(RecordJSON.init)))
            } else {
                if matches.isEmpty { throw FilterOptions.nothingMatched(filter, search: text) }
                for line in RecordTable.lines(RecordTable.sorted(matches, by: .date)) { print(line) }
                note("\(matches.count) match\(matches.count == 1 ? "" : "es")")
            }
            if matches.isEmpty { throw FilterOptions.nothingMatched(filter, search: text) }
        }
    }
}
