/// Which records a command works on: the one selection rule `list`, `search` and `export` share.
///
/// Every criterion given must hold (they are joined by *and*); within `ids` and `anyTags` one match is enough
/// (*or*), within `allTags` every tag must be present. Tags compare in their normalised form
/// (``RecordSchema/normalizeTag(_:)``), so `Detention` finds a record tagged `detention`. `since` and `until`
/// bound the incident date of a testimony and the issue date of a statement (inclusive); a record without such a
/// date is left out when either is given, and a partial date (`2024-03`) counts as its first day for `since` and
/// its last for `until`.
public struct RecordFilter: Equatable, Sendable {
    public var kind: String?
    public var allTags: [String] = []
    public var anyTags: [String] = []
    /// Full record ids (resolved from prefixes by the caller).
    public var ids: [RecordID] = []
    /// Gregorian `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
    public var since: String?
    public var until: String?

    public init(
        kind: String? = nil, allTags: [String] = [], anyTags: [String] = [], ids: [RecordID] = [],
        since: String? = nil, until: String? = nil
    ) {
        self.kind = kind
        self.allTags = allTags
        self.anyTags = anyTags
        self.ids = ids
        self.since = since
        self.until = until
    }

    /// Whether nothing narrows the selection.
    public var isEmpty: Bool {
        kind == nil && allTags.isEmpty && anyTags.isEmpty && ids.isEmpty && since == nil && until == nil
    }

    /// The date field a filter by date reads for a kind.
    public static func dateField(of kind: String) -> String { kind == "statement" ? "issued_on" : "incident_date" }

    /// Whether `view` is selected.
    public func matches(_ view: RecordView) -> Bool {
        if !ids.isEmpty && !ids.contains(view.id) { return false }
        if let kind, view.kind != kind { return false }
        for tag in allTags where !view.tags.contains(where: { RecordSchema.tagMatches($0, tag) }) { return false }
        if !anyTags.isEmpty && !anyTags.contains(where: { t in view.tags.contains { RecordSchema.tagMatches($0, t) } })
        {
            return false
        }
        if since != nil || until != nil {
            guard let date = view.fields[Self.dateField(of: view.kind)] else { return false }
            if let since, Self.lastDay(date) < Self.firstDay(since) { return false }
            if let until, Self.firstDay(date) > Self.lastDay(until) { return false }
        }
        return true
    }

    /// A partial date's first day, for comparison as text (`2024` → `2024-01-01`).
    public static func firstDay(_ date: String) -> String {
        switch date.count {
        case 4: return date + "-01-01"
        case 7: return date + "-01"
        default: return date
        }
    }

    /// A partial date's last day, for comparison as text (`2024-03` → `2024-03-99`, after every real day).
    public static func lastDay(_ date: String) -> String {
        switch date.count {
        case 4: return date + "-99-99"
        case 7: return date + "-99"
        default: return date
        }
    }

    /// The selection in words, for a note or an error: "kind testimony, tags detention and education".
    public var summary: String {
        var parts: [String] = []
        if !ids.isEmpty { parts.append("id " + ids.map { String($0.hex.prefix(12)) }.joined(separator: " or ")) }
        if let kind { parts.append("kind \(kind)") }
        if !allTags.isEmpty {
            parts.append((allTags.count == 1 ? "tag " : "all of the tags ") + allTags.joined(separator: ", "))
        }
        if !anyTags.isEmpty {
            parts.append((anyTags.count == 1 ? "tag " : "any of the tags ") + anyTags.joined(separator: ", "))
        }
        if let since { parts.append("dated from \(since)") }
        if let until { parts.append("dated until \(until)") }
        return parts.isEmpty ? "every record" : parts.joined(separator: "; ")
    }
}
