import AmanatCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The columns of `list` and `search`: id, kind, date, place or title, tags, fitted to the terminal's width.
enum RecordTable {
    /// How `list` sorts.
    enum Sort: String, CaseIterable {
        case date, id, kind, place
    }

    /// The record's date: a testimony's incident date or a statement's issue date, or "".
    static func date(_ view: RecordView) -> String { view.fields[RecordFilter.dateField(of: view.kind)] ?? "" }

    /// A testimony's place, else the title, else the witness code.
    static func headline(_ view: RecordView) -> String {
        view.fields["location"] ?? view.fields["title"] ?? view.fields["witness"].map { "witness \($0)" } ?? ""
    }

    /// `views` in `order`; by date, undated records come last, and ties go by id.
    static func sorted(_ views: [RecordView], by order: Sort) -> [RecordView] {
        func key(_ v: RecordView) -> String {
            switch order {
            case .date: return date(v).isEmpty ? "\u{10FFFF}" : date(v)
            case .id: return ""
            case .kind: return v.kind
            case .place: return TextFolding.searchKey(headline(v))
            }
        }
        return views.sorted { a, b in
            let (ka, kb) = (key(a), key(b))
            return ka != kb ? ka < kb : a.id < b.id
        }
    }

    /// The terminal's width: $COLUMNS, else the terminal's own, else 100 (output to a file or pipe).
    static var width: Int {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let n = Int(text), n >= 40 { return n }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 { return Int(size.ws_col) }
        return 100
    }

    /// `text` cut or padded to `width` characters (after escaping, so an escape cannot break the columns).
    static func fit(_ text: String, _ width: Int) -> String {
        let flat = RecordText.oneLine(text, max(width, 2))
        return flat.count >= width
            ? String(flat.prefix(width)) : flat + String(repeating: " ", count: width - flat.count)
    }

    /// One line per record, columns fitted to `width`.
    static func lines(_ views: [RecordView], width: Int = RecordTable.width) -> [String] {
        let dateWidth = max(10, views.map { Display.date(date($0)).count }.max() ?? 10)
        let fixed = 12 + 2 + 9 + 2 + dateWidth + 2
        let rest = max(20, width - fixed)
        let placeWidth = max(12, rest * 3 / 5)
        let tagWidth = max(6, rest - placeWidth - 2)
        return views.map { view in
            let dated = date(view).isEmpty ? "-" : Display.date(date(view))
            var tags = view.tags.joined(separator: ",")
            if !view.conflicts.isEmpty { tags = "CONFLICT " + tags }
            let line =
                "\(view.id.hex.prefix(12))  \(fit(view.kind, 9))  \(fit(dated, dateWidth))  \(fit(headline(view), placeWidth))  \(RecordText.oneLine(tags, tagWidth))"
            return line.trimmingCharacters(in: .whitespaces)
        }
    }
}
