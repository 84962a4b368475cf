import Foundation
import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat edit`: sets fields of a record in one change.
    struct Edit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set one or more fields of a record.",
            discussion: """
                Each --set overwrites the value this device sees; an edit made concurrently on another device is kept \
                too and shown as a conflict until someone resolves it. Field names take - or _ (incident-date, \
                incident_date). provenance, which an import writes, cannot be edited.

                Example:
                  amanat edit 3f9a1c --set location="Herat" \\
                    --set consent=anonymised
                  amanat edit 3f9a1c --set narrative=- < amended.txt
                  (FIELD=- reads the value from standard input)
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Option(
            name: .customLong("set"), help: "FIELD=VALUE; repeat for several fields (incident-date or incident_date).")
        var assignments: [String] = []
        @Option(help: "How to read dates: automatic, gregorian or persian (Solar Hijri).")
        var calendar: RecordDates.Calendar = .automatic
        @Flag(help: "Allow emptying a testimony's narrative.") var allowEmpty = false
        @Flag(help: "Print the record, the fields set and the change as JSON (Docs/json.md).") var json = false

        func run() throws {
            guard !assignments.isEmpty else {
                throw CLIError(.usage, "Nothing to edit: give at least one --set FIELD=VALUE.")
            }
            guard assignments.filter({ $0.hasSuffix("=-") }).count <= 1 else {
                throw CLIError(.usage, "Only one --set may read standard input (FIELD=-).")
            }
            let pairs = try assignments.map { text -> (String, String) in
                guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                    throw CLIError(.usage, "\"\(text)\" is not FIELD=VALUE.")
                }
                let value = String(text[text.index(after: eq)...])
                // FIELD=- reads the value from standard input, as every --…-file option does: long amendments never
                // pass through the shell's history or `ps`.
                guard value == "-" else { return (String(text[..<eq]), value) }
                let input = FileHandle.standardInput.readDataToEndOfFile()
                guard let read = String(data: input, encoding: .utf8) else {
                    throw CLIError(.usage, "Standard input is not UTF-8 text.")
                }
                return (String(text[..<eq]), read.hasSuffix("\n") ? String(read.dropLast()) : read)
            }
            if !allowEmpty,
                pairs.contains(where: {
                    $0.0 == "narrative" && $0.1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                })
            {
                throw CLIError(
                    .usage,
                    "That would empty the narrative; give the new text (FIELD=- reads it from standard input), or --allow-empty."
                )
            }
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let stored = try Fields.normalize(kind: state.creationKind, pairs, calendar: calendar, editing: true)
                .filter { field, value in !value.isEmpty || !state.visibleValues(of: field).isEmpty }
            let change = try vault.commit(record: state.id) { current in
                let base = current ?? state
                return stored.map { base.setOperation(field: $0.0, value: $0.1) }
            }
            note("Edited \(state.id.hex.prefix(12)).")
            if json {
                let after = try vault.resolveRecord(state.id.hex, includeDeleted: true)
                let conflicts = after.contentView(nowMillis: vault.wallClock())?.conflicts.keys.sorted() ?? []
                try JSONOutput.print(
                    EditedJSON(
                        record: state.id.hex, kind: state.creationKind, fields_set: stored.map { $0.0 }.sorted(),
                        conflicts: conflicts, change: SignedChangeJSON(change)))
            }
        }
    }
}
