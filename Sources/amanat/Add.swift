import AmanatStore
import ArgumentParser
import Foundation

/// `amanat add`: records a new statement or testimony.
struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a new statement or testimony; prints its id.",
        discussion: """
            Example:
              amanat add statement --title "Coalition statement" --body-file statement.txt --tag women
              amanat add testimony --witness W-017 --narrative-file w017.txt --consent restricted
            """,
        subcommands: [AddStatement.self, AddTestimony.self])
}

/// Shared by the `add` subcommands: validates fields and writes the record.
func addRecord(
    options: VaultOptions, kind: String, fields: [(String, String?)], tags: [String], seal: Bool
) throws {
    let present = fields.compactMap { name, value in value.map { (name, $0) } }
    for (name, value) in present { try Kinds.validate(kind: kind, field: name, value: value) }
    for tag in tags { try Kinds.validateTag(tag) }
    let vault = try options.open()
    let id = try vault.createRecord(kind: kind, fields: present, tags: tags, seal: seal)
    print(id.hex)
}

/// `amanat add statement`.
struct AddStatement: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "statement",
        abstract: "Record a public statement of a group.",
        discussion: """
            Example:
              amanat add statement --title "Coalition condemns recognition of the Taliban" \\
                --body-file seeds/coalition-statement-on-russia-recognition.txt \\
                --issued-by "Independent Coalition of Women's Protest Movements of Afghanistan" \\
                --issued-on 2025-07 --tag afghanistan --tag women
            """)

    @OptionGroup var options: VaultOptions
    @Option(help: "The statement's title.") var title: String
    @Option(help: "The statement's text.") var body: String?
    @Option(help: "Read the statement's text from this file.") var bodyFile: String?
    @Option(help: "Who issued it.") var issuedBy: String?
    @Option(help: "When it was issued: YYYY-MM-DD (or YYYY-MM, YYYY).") var issuedOn: String?
    @Option(help: "A tag; repeat for several.") var tag: [String] = []

    func run() throws {
        try runReportingErrors {
            if body != nil && bodyFile != nil { throw CLIError(.usage, "Give --body or --body-file, not both.") }
            let text = try body ?? bodyFile.map(Kinds.readTextFile)
            try addRecord(
                options: options, kind: "statement",
                fields: [("title", title), ("body", text), ("issued_by", issuedBy), ("issued_on", issuedOn)],
                tags: tag, seal: false)
        }
    }
}

/// `amanat add testimony`.
struct AddTestimony: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testimony",
        abstract: "Record a witness's testimony; its original content is sealed.",
        discussion: """
            The witness is named by a code, never by name. The original content is sealed: later edits are kept as
            amendments and the original stays in the history.

            Example:
              amanat add testimony --witness W-017 --narrative-file w017.txt --incident-date 2024-03-08 \\
                --location "Kabul" --consent restricted --tag detention
            """)

    @OptionGroup var options: VaultOptions
    @Option(help: "The witness's code (not a name).") var witness: String
    @Option(help: "The testimony's text.") var narrative: String?
    @Option(help: "Read the testimony's text from this file.") var narrativeFile: String?
    @Option(help: "When it happened: YYYY-MM-DD (or YYYY-MM, YYYY).") var incidentDate: String?
    @Option(help: "Where it happened.") var location: String?
    @Option(help: "What the witness consented to: share, anonymised or restricted.") var consent: String = "restricted"
    @Option(help: "A tag; repeat for several.") var tag: [String] = []

    func run() throws {
        try runReportingErrors {
            if narrative != nil && narrativeFile != nil {
                throw CLIError(.usage, "Give --narrative or --narrative-file, not both.")
            }
            let text = try narrative ?? narrativeFile.map(Kinds.readTextFile)
            try addRecord(
                options: options, kind: "testimony",
                fields: [
                    ("witness", witness), ("narrative", text), ("incident_date", incidentDate),
                    ("location", location), ("consent", consent),
                ],
                tags: tag, seal: true)
        }
    }
}
