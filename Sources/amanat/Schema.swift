import AmanatCore
import ArgumentParser
import Foundation

/// The `--calendar` option of the commands that take dates.
extension RecordDates.Calendar: ExpressibleByArgument {}

/// Field values typed on the command line, checked and normalised by the library's ``RecordSchema`` (so every front
/// end applies the same rules); warnings about implausible dates go to stderr.
enum Fields {
    /// The stored (field, value) pairs for `typed`, with the typed form of a converted date kept beside it.
    static func normalize(
        kind: String, _ typed: [(String, String)], calendar: RecordDates.Calendar, editing: Bool
    ) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for (field, value) in typed {
            let n =
                editing
                ? try RecordSchema.normalizeEdit(kind: kind, field: field, value: value, calendar: calendar)
                : try RecordSchema.normalize(kind: kind, field: field, value: value, calendar: calendar)
            for warning in n.warnings { note("Warning: \(warning)") }
            if out.contains(where: { $0.0 == n.field }) {
                throw CLIError(.usage, "The field \(n.field) is given twice.")
            }
            out.append((n.field, n.value))
            if case .date = try RecordSchema.requireField(kind: kind, field: n.field).rule {
                if let entered = n.entered {
                    out.append((RecordSchema.enteredField(of: n.field), entered))
                    note("Stored \(n.field) as \(n.value) (Gregorian), keeping \"\(entered)\" as typed.")
                } else if editing {
                    out.append((RecordSchema.enteredField(of: n.field), ""))
                }
            }
        }
        return out
    }

    /// Normalised tags, without duplicates, in the order given.
    static func tags(_ typed: [String]) throws -> [String] {
        var out: [String] = []
        for tag in typed {
            let n = try RecordSchema.normalizeTag(tag)
            if !out.contains(n) { out.append(n) }
        }
        return out
    }
}
