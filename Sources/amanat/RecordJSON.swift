import AmanatCore
import AmanatCrypto
import Foundation

/// The JSON shape of a record in `list --json` and `show --json` (`amanat list --help`).
struct RecordJSON: Encodable {
    var id: String
    var kind: String
    var fields: [String: String]
    var tags: [String]
    var conflicts: [String: [String]]

    init(_ view: RecordView) {
        id = view.id.hex
        kind = view.kind
        fields = view.fields
        tags = view.tags
        conflicts = view.conflicts
    }

    /// Encodes any value as deterministic JSON (sorted keys), one document per call.
    static func render<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Human-readable rendering of one record (`show`); `list` and `search` use ``RecordTable``.
enum RecordText {
    /// Several lines: every field, conflicts with their alternatives and who wrote them, tags. A value with line
    /// breaks (LF or CRLF) is shown indented, one line per line; every line is escaped (``TerminalText``), so a
    /// value cannot draw a line of its own.
    static func detail(_ view: RecordView, state: RecordState, device: (DeviceID) -> String = { $0.hex }) -> String {
        var out = ["id:    \(view.id.hex)", "kind:  \(view.kind)"]
        if let seal = state.seal {
            out.append(
                "seal:  original content sealed \(Hex.encode(seal.contentHash).prefix(16))… (later edits are amendments)"
            )
        }
        out.append("tags:  \(view.tags.joined(separator: ", "))")
        for name in view.fields.keys.sorted() {
            var value = view.fields[name] ?? ""
            if name == "incident_date" || name == "issued_on" { value = Display.date(value) }
            let lines = value.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            if lines.count > 1 || value.count > 80 {
                out.append("\(name):")
                out.append(contentsOf: lines.map { "    " + $0 })
            } else {
                out.append("\(name): \(value)")
            }
            if let others = view.conflicts[name] {
                out.append(
                    "  ! conflict: \(others.count + 1) concurrent values; resolve with `amanat resolve \(view.id.hex.prefix(8)) \(name) --keep VALUE`"
                )
                for v in state.visibleValues(of: name) {
                    out.append(
                        "    - \(oneLine(v.value, 70))   [op \(v.op), by \(TerminalText.escape(device(v.op.device)))]")
                }
            }
        }
        return out.map(TerminalText.escape).joined(separator: "\n")
    }

    /// The text on one line, cut to `width` characters, escaped for the terminal.
    static func oneLine(_ text: String, _ width: Int) -> String {
        let flat = text.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
        return TerminalText.escape(flat.count > width ? String(flat.prefix(width - 1)) + "…" : flat)
    }
}
