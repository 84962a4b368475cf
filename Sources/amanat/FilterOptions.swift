import AmanatCore
import AmanatStore
import ArgumentParser

/// The selection flags `list`, `search` and `export` share, read into the library's ``RecordFilter``.
struct FilterOptions: ParsableArguments {
    @Option(help: "Only records of this kind (statement or testimony).") var kind: String?
    @Option(help: "Only records with this tag; repeat to require every one of them.") var tag: [String] = []
    @Option(help: "Only records with at least one of these tags; repeat for several.") var anyTag: [String] = []
    @Option(help: "This record (id or unique prefix); repeat for several.") var id: [String] = []
    @Option(help: "Only records dated on or after this day (incident date, or a statement's issue date).")
    var since: String?
    @Option(help: "Only records dated on or before this day.") var until: String?
    @Option(help: "How to read --since and --until: automatic, gregorian or persian (Solar Hijri).")
    var calendar: RecordDates.Calendar = .automatic

    /// Whether any selection flag was given.
    var isGiven: Bool { kind != nil || !tag.isEmpty || !anyTag.isEmpty || !id.isEmpty || since != nil || until != nil }

    /// The filter, with ids resolved in `vault` (a deleted record's id too when `includeDeleted`).
    func filter(in vault: Vault, includeDeleted: Bool = false) throws -> RecordFilter {
        var f = RecordFilter()
        if let kind { f.kind = try RecordSchema.requireKind(kind) }
        f.allTags = try Fields.tags(tag)
        f.anyTags = try Fields.tags(anyTag)
        f.ids = try id.map { try vault.resolveRecord($0, includeDeleted: includeDeleted).id }
        f.since = try since.map { try RecordDates.parse($0, field: "--since", calendar: calendar).stored }
        f.until = try until.map { try RecordDates.parse($0, field: "--until", calendar: calendar).stored }
        if let s = f.since, let u = f.until, RecordFilter.firstDay(s) > RecordFilter.firstDay(u) {
            throw CLIError(.usage, "--since \(s) is after --until \(u): nothing could match.")
        }
        return f
    }

    /// The error for a selection that matched nothing: exit status 2, with the selection in words.
    static func nothingMatched(_ filter: RecordFilter, search: String? = nil) -> CLIError {
        var what = filter.summary
        if let search { what = "text \"\(search)\"" + (filter.isEmpty ? "" : "; " + what) }
        return CLIError(.noMatch, "No record matches the selection (\(what)).")
    }
}
