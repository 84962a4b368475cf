import AmanatCore
import ArgumentParser

/// `amanat search`: finds records whose fields or tags contain a text, searching decrypted records in memory.
struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find records whose fields or tags contain TEXT (case-insensitive).",
        discussion: """
            The search runs over records decrypted in memory; no plaintext index is ever written to disk.

            Example:
              amanat search "Herat"
              amanat search taliban --json
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "The text to look for.") var text: String
    @Flag(help: "Print JSON, as `list --json` does.") var json = false

    func run() throws {
        try runReportingErrors {
            guard !text.isEmpty else { throw CLIError(.usage, "Give a non-empty text to search for.") }
            let matches = try options.open().visibleRecords().filter { view in
                view.fields.values.contains { $0.localizedCaseInsensitiveContains(text) }
                    || view.conflicts.values.joined().contains { $0.localizedCaseInsensitiveContains(text) }
                    || view.tags.contains { $0.localizedCaseInsensitiveContains(text) }
            }
            if json {
                print(try RecordJSON.render(matches.map(RecordJSON.init)))
            } else {
                for view in matches { print(RecordText.line(view)) }
                note("\(matches.count) match\(matches.count == 1 ? "" : "es")")
            }
        }
    }
}
