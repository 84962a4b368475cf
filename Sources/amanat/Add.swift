import AmanatCore
import AmanatStore
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Amanat {
    /// `amanat add`: records a new statement or testimony.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record a new statement or testimony; prints its id.",
            discussion: """
                Example:
                  amanat add statement --title "Coalition statement" \\
                    --body-file statement.txt --tag women
                  amanat add testimony --witness W-017 \\
                    --consent restricted
                  (then type the testimony and end with Ctrl-D)
                """,
            subcommands: [AddStatement.self, AddTestimony.self])
    }
}

/// Shared by the `add` subcommands: validates fields, opens the vault, reads the long text, and writes the record.
///
/// The long text (`long`) is read after the passphrase, so a wrong passphrase does not waste a typed testimony; an
/// empty one is refused when `requireText` (a testimony without `--allow-empty`).
func addRecord(
    options: VaultOptions, kind: String, fields: [(String, String?)], long: (field: String, source: TextEntry.Source),
    what: String, requireText: Bool, tags: [String], calendar: RecordDates.Calendar, seal: Bool, json: Bool = false
) throws {
    var present = try Fields.normalize(
        kind: kind, fields.compactMap { name, value in value.map { (name, $0) } }, calendar: calendar, editing: false)
    let tags = try Fields.tags(tags)
    if requireText, long.source == .none, isatty(STDIN_FILENO) != 1 {
        throw CLIError(
            .usage,
            "No \(long.field): give --\(long.field)-file FILE or --\(long.field)-file - (standard input), or --allow-empty to seal an empty one."
        )
    }
    let vault = try options.open()
    let text = try TextEntry.read(long.source, what: what)
    if requireText, TextEntry.isBlank(text) {
        throw CLIError(
            .usage, "The \(long.field) is empty; nothing was recorded (give --allow-empty to seal an empty one).")
    }
    if let text, !(text.isEmpty && long.source == .none) { present.append((long.field, text)) }
    let id = try vault.createRecord(kind: kind, fields: present, tags: tags, seal: seal)
    guard json else {
        print(id.hex)
        return
    }
    let state = try vault.resolveRecord(id.hex, includeDeleted: true)
    let created = state.changes.filter { $0.author == vault.deviceID }.min { $0.seq < $1.seq }
    try JSONOutput.print(
        AddedJSON(
            id: id.hex, kind: kind, sealed: state.seal != nil, fields_set: present.map { $0.0 }.sorted(),
            tags: state.tags,
            change: created.map { SignedChangeJSON(author: $0.author, seq: $0.seq, timestamp: $0.timestamp) }))
}

extension Amanat {
    /// `amanat add statement`.
    struct AddStatement: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "statement",
            abstract: "Record a public statement of a group.",
            discussion: """
                Example:
                  amanat add statement \\
                    --title "Coalition condemns recognition" \\
                    --body-file seeds/coalition-statement.txt \\
                    --issued-by "Coalition of Women's Protest Movements" \\
                    --issued-on 2025-07 --tag afghanistan --tag women
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "The statement's title.") var title: String
        @Option(help: "The statement's text (kept in shell history: prefer --body-file).") var body: String?
        @Option(help: "Read the statement's text from this file; - reads standard input.") var bodyFile: String?
        @Option(help: "Who issued it.") var issuedBy: String?
        @Option(help: "When it was issued: YYYY-MM-DD (or YYYY-MM, YYYY).") var issuedOn: String?
        @Option(help: "A tag; repeat for several.") var tag: [String] = []
        @Option(help: "How to read dates: automatic, gregorian or persian (Solar Hijri).")
        var calendar: RecordDates.Calendar = .automatic
        @Flag(help: "Print the new record's id, kind, fields and change as JSON (Docs/json.md).") var json = false

        func run() throws {
            let source = try TextEntry.source(flag: "body", text: body, file: bodyFile)
            try addRecord(
                options: options, kind: "statement",
                fields: [("title", title), ("issued_by", issuedBy), ("issued_on", issuedOn)],
                long: ("body", source), what: "the statement's text", requireText: false, tags: tag, calendar: calendar,
                seal: false, json: json)
        }
    }
}

extension Amanat {
    /// `amanat add testimony`.
    struct AddTestimony: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "testimony",
            abstract: "Record a witness's testimony; its original content is sealed.",
            discussion: """
                The witness is named by a code, never by name. The original content is sealed: later edits are kept as \
                amendments and the original stays in the history.

                The narrative is read from --narrative-file FILE, from standard input with --narrative-file -, or, when \
                neither is given, typed at the terminal (end with Ctrl-D). It is never written to a temporary file. \
                Avoid --narrative "…": the text would stay in the shell's history and be visible to `ps`. An empty \
                narrative is refused unless --allow-empty.

                Example:
                  amanat add testimony --witness W-017 \\
                    --narrative-file w017.txt --incident-date 2024-03-08 \\
                    --location "Kabul" --consent restricted \\
                    --tag detention
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "The witness's code (not a name).") var witness: String
        @Option(help: "The testimony's text (kept in shell history and shown by ps: prefer --narrative-file).")
        var narrative: String?
        @Option(help: "Read the testimony's text from this file; - reads standard input.") var narrativeFile: String?
        @Flag(help: "Record the testimony even with an empty narrative.") var allowEmpty = false
        @Option(help: "When it happened: YYYY-MM-DD (or YYYY-MM, YYYY); Persian digits and --calendar persian work.")
        var incidentDate: String?
        @Option(help: "Where it happened.") var location: String?
        @Option(help: "What the witness consented to: share, anonymised (or anonymized) or restricted.") var consent:
            String = "restricted"
        @Option(help: "A tag; repeat for several.") var tag: [String] = []
        @Option(help: "How to read dates: automatic, gregorian or persian (Solar Hijri).")
        var calendar: RecordDates.Calendar = .automatic
        @Flag(help: "Print the new record's id, kind, fields and change as JSON (Docs/json.md).") var json = false

        func run() throws {
            let source = try TextEntry.source(flag: "narrative", text: narrative, file: narrativeFile)
            try addRecord(
                options: options, kind: "testimony",
                fields: [
                    ("witness", witness), ("incident_date", incidentDate), ("location", location),
                    ("consent", consent),
                ],
                long: ("narrative", source), what: "the testimony", requireText: !allowEmpty, tags: tag,
                calendar: calendar, seal: true, json: json)
        }
    }
}
