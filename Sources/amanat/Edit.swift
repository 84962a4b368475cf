import AmanatCore
import ArgumentParser

/// `amanat edit`: sets fields of a record in one change.
struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set one or more fields of a record.",
        discussion: """
            Each --set overwrites the value this device sees; an edit made concurrently on another device is kept
            too and shown as a conflict until someone resolves it. Field names take - or _ (incident-date,
            incident_date). provenance, which an import writes, cannot be edited.

            Example:
              amanat edit 3f9a1c --set location="Herat" --set consent=anonymised
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "The record id or a unique prefix of it.") var id: String
    @Option(name: .customLong("set"), help: "FIELD=VALUE; repeat for several fields (incident-date or incident_date).")
    var assignments: [String] = []
    @Option(help: "How to read dates: automatic, gregorian or persian (Solar Hijri).")
    var calendar: RecordDates.Calendar = .automatic

    func run() throws {
        try runReportingErrors {
            guard !assignments.isEmpty else {
                throw CLIError(.usage, "Nothing to edit: give at least one --set FIELD=VALUE.")
            }
            let pairs = try assignments.map { text -> (String, String) in
                guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                    throw CLIError(.usage, "\"\(text)\" is not FIELD=VALUE.")
                }
                return (String(text[..<eq]), String(text[text.index(after: eq)...]))
            }
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let stored = try Fields.normalize(kind: state.creationKind, pairs, calendar: calendar, editing: true)
                .filter { field, value in !value.isEmpty || !state.visibleValues(of: field).isEmpty }
            try vault.commit(record: state.id) { current in
                let base = current ?? state
                return stored.map { base.setOperation(field: $0.0, value: $0.1) }
            }
            note("Edited \(state.id.hex.prefix(12)).")
        }
    }
}
