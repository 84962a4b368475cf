import Foundation

/// The record kinds and their fields, with the rules each value must follow.
enum Kinds {
    /// A field a kind has, and how its values are checked.
    struct Field {
        var name: String
        var rule: Rule
    }

    /// How a field's value is checked.
    enum Rule {
        case text
        case date
        case oneOf([String])
    }

    static let consentValues = ["share", "anonymised", "restricted"]

    /// Fields by kind.
    static let fields: [String: [Field]] = [
        "statement": [
            Field(name: "title", rule: .text), Field(name: "body", rule: .text),
            Field(name: "issued_by", rule: .text), Field(name: "issued_on", rule: .date),
            Field(name: "provenance", rule: .text),
        ],
        "testimony": [
            Field(name: "witness", rule: .text), Field(name: "narrative", rule: .text),
            Field(name: "incident_date", rule: .date), Field(name: "location", rule: .text),
            Field(name: "consent", rule: .oneOf(consentValues)), Field(name: "provenance", rule: .text),
        ],
    ]

    /// Checks that `field` exists for `kind` and `value` follows its rule; throws a usage error naming the fix.
    static func validate(kind: String, field: String, value: String) throws {
        switch try requireField(kind: kind, field: field).rule {
        case .text:
            break
        case .date:
            guard isValidDate(value) else {
                throw CLIError(.usage, "\"\(value)\" is not a date for \(field): use YYYY-MM-DD (or YYYY-MM, YYYY).")
            }
        case .oneOf(let allowed):
            guard allowed.contains(value) else {
                throw CLIError(
                    .usage, "\"\(value)\" is not a value for \(field): use one of \(allowed.joined(separator: ", ")).")
            }
        }
    }

    /// The field `field` of `kind`, or a usage error listing the fields there are.
    @discardableResult
    static func requireField(kind: String, field: String) throws -> Field {
        guard let spec = fields[kind]?.first(where: { $0.name == field }) else {
            let names = (fields[kind] ?? []).map(\.name).joined(separator: ", ")
            throw CLIError(.usage, "A \(kind) has no field \"\(field)\"; its fields are: \(names).")
        }
        return spec
    }

    /// Whether `text` is a real calendar date as YYYY-MM-DD, or a partial YYYY-MM or YYYY.
    static func isValidDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count), parts[0].count == 4,
            parts.dropFirst().allSatisfy({ $0.count == 2 }),
            parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let year = Int(parts[0]), year >= 1900
        else { return false }
        guard parts.count >= 2, let month = Int(parts[1]) else { return true }
        guard (1...12).contains(month) else { return false }
        guard parts.count == 3, let day = Int(parts[2]) else { return true }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day)
    }

    /// Reads a body or narrative file, failing with one sentence if it cannot.
    static func readTextFile(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError(.noInput, "The file \(path) cannot be read.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError(.usage, "The file \(path) is not UTF-8 text.")
        }
        return text
    }

    /// Checks a tag: non-empty, no whitespace at its ends, no control characters.
    static func validateTag(_ tag: String) throws {
        guard !tag.isEmpty, tag.trimmingCharacters(in: .whitespacesAndNewlines) == tag,
            !tag.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) })
        else { throw CLIError(.usage, "\"\(tag)\" is not a tag: tags are non-empty words without control characters.") }
    }
}
