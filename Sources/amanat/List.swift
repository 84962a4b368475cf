import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat list`: the visible records.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the records (deleted ones only with --deleted).",
            discussion: """
                Columns: id, kind, date (a testimony's incident date, a statement's issue date; in the Solar Hijri \
                calendar too with AMANAT_CALENDAR=persian), place (or title), tags; fitted to the terminal's width \
                ($COLUMNS). Sorted by date unless --sort says otherwise (undated records last).

                --json prints an array of records (id, kind, fields, tags, conflicts; Docs/json.md has the exact \
                shape), sorted by id unless --sort is given.

                Selection (the same flags as `search` and `export`): --kind, --tag (repeat: every tag), --any-tag \
                (repeat: any of them), --id (repeat), --since and --until (incident date, or a statement's issue date). \
                Tags match in any case. A selection that matches nothing exits with status 2.

                Example:
                  amanat list --kind testimony --tag detention
                  amanat list --any-tag detention --any-tag torture \\
                    --since 2024-01-01
                  amanat list --json
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var selection: FilterOptions
        @Flag(help: "List only deleted records (`amanat undelete ID` restores one).") var deleted = false
        @Option(help: "Sort by date (incident or issue date; the default), id, kind or place.") var sort: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let vault = try options.open()
            let filter = try selection.filter(in: vault, includeDeleted: deleted)
            let now = vault.wallClock()
            let all =
                deleted
                ? try vault.deletedRecords().compactMap { $0.contentView(nowMillis: now) } : try vault.visibleRecords()
            guard let order = RecordTable.Sort(rawValue: sort ?? (json ? "id" : "date")) else {
                throw CLIError(.usage, "\"\(sort ?? "")\" is not a sort order: use date, id, kind or place.")
            }
            let views = RecordTable.sorted(all.filter(filter.matches), by: order)
            // A selection that matched nothing is an error, said once (with --json, after the empty array).
            if views.isEmpty && selection.isGiven && !json { throw FilterOptions.nothingMatched(filter) }
            if json {
                print(try RecordJSON.render(views.map(RecordJSON.init)))
            } else {
                for line in RecordTable.lines(views) { print(line) }
                note("\(views.count) \(deleted ? "deleted " : "")record\(views.count == 1 ? "" : "s")")
            }
            if views.isEmpty && selection.isGiven { throw FilterOptions.nothingMatched(filter) }
        }
    }
}
