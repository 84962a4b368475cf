import Foundation

/// A value or name that breaks the record schema's rules; the message says how to fix it.
public struct SchemaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, in one sentence that names the fix.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The record kinds, their fields, and the rules every value and tag must follow.
///
/// It lives in the library, not in a front end, so the command line, the relay's future web front end and any
/// importer apply the same rules: a field name is accepted with `-` or `_` (`incident-date`, `incident_date`), a
/// consent value with British or American spelling, a date with Persian or Arabic-Indic digits or in the Solar
/// Hijri calendar (``RecordDates``), and a tag is normalised (``normalizeTag(_:)``) before it is stored.
public enum RecordSchema {
    /// A field a kind has, and how its values are checked.
    public struct Field: Sendable {
        /// The stored name (`incident_date`).
        public var name: String
        /// How its values are checked.
        public var rule: Rule
        /// Whether only the system writes it (an import's `provenance`); `edit` refuses it.
        public var isProtected: Bool

        init(_ name: String, _ rule: Rule, protected: Bool = false) {
            self.name = name
            self.rule = rule
            self.isProtected = protected
        }
    }

    /// How a field's value is checked.
    public enum Rule: Sendable {
        case text
        case date
        case oneOf([String])
    }

    /// The stored consent values.
    public static let consentValues = ["share", "anonymised", "restricted"]

    /// Other spellings accepted on entry, and the stored value each stands for.
    static let consentSpellings = ["anonymized": "anonymised", "anonymous": "anonymised", "shared": "share"]

    /// Fields by kind.
    public static let fields: [String: [Field]] = [
        "statement": [
            Field("title", .text), Field("body", .text), Field("issued_by", .text), Field("issued_on", .date),
            Field("issued_on_entered", .text, protected: true), Field("provenance", .text, protected: true),
        ],
        "testimony": [
            Field("witness", .text), Field("narrative", .text), Field("incident_date", .date),
            Field("incident_date_entered", .text, protected: true), Field("location", .text),
            Field("consent", .oneOf(consentValues)),
            Field("provenance", .text, protected: true),
        ],
    ]

    /// The field that keeps a converted date as it was typed (`incident_date_entered`), for a date field.
    public static func enteredField(of field: String) -> String { field + "_entered" }

    /// The kinds there are, sorted.
    public static var kinds: [String] { fields.keys.sorted() }

    /// `kind` if it is a kind, else an error listing the kinds.
    public static func requireKind(_ kind: String) throws -> String {
        let folded = kind.lowercased()
        guard fields[folded] != nil else {
            throw SchemaError("\"\(kind)\" is not a kind: use \(kinds.joined(separator: " or ")).")
        }
        return folded
    }

    /// The stored form of a field name typed by a person: lower case, `-` read as `_`.
    public static func fieldName(_ typed: String) -> String {
        typed.lowercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The field `field` of `kind` (`-` or `_`, any case), or an error listing the fields there are.
    @discardableResult
    public static func requireField(kind: String, field: String) throws -> Field {
        let name = fieldName(field)
        guard let spec = fields[kind]?.first(where: { $0.name == name }) else {
            let names = (fields[kind] ?? []).map(\.name).joined(separator: ", ")
            throw SchemaError("A \(kind) has no field \"\(field)\"; its fields are: \(names).")
        }
        return spec
    }

    /// A field value made ready to store: the field's stored name and the value in its stored form (a consent
    /// spelling mapped, a date in Gregorian ASCII form). `entered` is the date as typed when it was converted
    /// (Persian digits or Solar Hijri), so the caller can keep it.
    public struct Normalized: Equatable, Sendable {
        public var field: String
        public var value: String
        public var entered: String?
        public var warnings: [String]
    }

    /// Checks `value` for `field` of `kind` and returns it in its stored form, or an error naming the fix.
    /// `calendar` says how to read a date (``RecordDates/Calendar``); `nowMillis` is the clock for the
    /// plausibility warning.
    public static func normalize(
        kind: String, field: String, value: String, calendar: RecordDates.Calendar = .automatic,
        nowMillis: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)
    ) throws -> Normalized {
        let spec = try requireField(kind: kind, field: field)
        switch spec.rule {
        case .text:
            return Normalized(field: spec.name, value: value, entered: nil, warnings: [])
        case .date:
            let date = try RecordDates.parse(value, field: spec.name, calendar: calendar, nowMillis: nowMillis)
            return Normalized(
                field: spec.name, value: date.stored, entered: date.stored == value ? nil : value,
                warnings: date.warnings)
        case .oneOf(let allowed):
            let folded = value.trimmingCharacters(in: .whitespaces).lowercased()
            let stored = consentSpellings[folded] ?? folded
            guard allowed.contains(stored) else {
                throw SchemaError(
                    "\"\(value)\" is not a value for \(spec.name): use one of \(allowed.joined(separator: ", ")).")
            }
            return Normalized(field: spec.name, value: stored, entered: nil, warnings: [])
        }
    }

    /// Checks a value for a field a person edits: as ``normalize(kind:field:value:calendar:nowMillis:)``, and the
    /// field must not be protected.
    public static func normalizeEdit(
        kind: String, field: String, value: String, calendar: RecordDates.Calendar = .automatic,
        nowMillis: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)
    ) throws -> Normalized {
        let spec = try requireField(kind: kind, field: field)
        if spec.isProtected {
            let why =
                spec.name == "provenance"
                ? "is written by `amanat import` to record where the record came from"
                : "keeps a date as it was typed, and is written with the date"
            throw SchemaError("\(spec.name) \(why); it cannot be edited.")
        }
        return try normalize(kind: kind, field: field, value: value, calendar: calendar, nowMillis: nowMillis)
    }

    /// A tag in its stored form: trimmed, Unicode NFC, lower case. Refuses an empty tag, one with a comma (a list
    /// typed as one tag: the message shows how to give several) and one with control characters.
    public static func normalizeTag(_ typed: String) throws -> String {
        let tag = typed.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
            .lowercased()
        if tag.contains(",") || tag.contains("،") {
            let parts = tag.split(whereSeparator: { $0 == "," || $0 == "،" })
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let hint = parts.map { "--add \($0)" }.joined(separator: " ")
            throw SchemaError(
                "\"\(typed)\" is not one tag: a tag has no comma; give each tag on its own (\(hint), or --tag for add and the filters)."
            )
        }
        guard !tag.isEmpty, !tag.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) })
        else { throw SchemaError("\"\(typed)\" is not a tag: tags are non-empty words without control characters.") }
        return tag
    }

    /// Whether a stored tag (perhaps written before tags were normalised, like `Detention`) is `tag`.
    public static func tagMatches(_ stored: String, _ normalized: String) -> Bool {
        stored.precomposedStringWithCanonicalMapping.lowercased()
            .trimmingCharacters(in: .whitespacesAndNewlines) == normalized
    }
}
