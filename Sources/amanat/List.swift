import AmanatCore
import ArgumentParser

/// `amanat list`: the visible records.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the records (deleted ones are absent).",
        discussion: """
            --json prints an array sorted by id of {"id","kind","fields","tags","conflicts"}.

            Example:
              amanat list --kind testimony --tag detention
              amanat list --json
            """)

    @OptionGroup var options: VaultOptions
    @Option(help: "Only records of this kind (statement or testimony).") var kind: String?
    @Option(help: "Only records with this tag.") var tag: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            if let kind, Kinds.fields[kind] == nil {
                throw CLIError(.usage, "\"\(kind)\" is not a kind: use statement or testimony.")
            }
            let views = try options.open().visibleRecords().filter { view in
                (kind == nil || view.kind == kind) && (tag == nil || view.tags.contains(tag!))
            }
            if json {
                print(try RecordJSON.render(views.map(RecordJSON.init)))
            } else {
                for view in views { print(RecordText.line(view)) }
                note("\(views.count) record\(views.count == 1 ? "" : "s")")
            }
        }
    }
}
