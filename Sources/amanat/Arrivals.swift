import AmanatCore
import AmanatStore
import Foundation

/// What a sync or an import brought, record by record, and by which devices: the end of `sync` and `import`.
///
/// Found by comparing the record states before and after (decrypted in memory, as `list` does), so it names
/// exactly what changed on this replica, whatever carried it: records created, edited, deleted and undeleted, and
/// fields that are in conflict now and were not before.
struct Arrivals: Encodable {
    /// One record that changed.
    struct Event: Encodable {
        var record: String
        var title: String
        /// The names (or short ids) of the devices whose changes arrived for it.
        var by: [String]
        /// For a new conflict: the fields.
        var fields: [String]?
    }

    var pulled: Int
    var pushed: Int?
    var created: [Event] = []
    var edited: [Event] = []
    var deleted: [Event] = []
    var undeleted: [Event] = []
    var new_conflicts: [Event] = []
    /// Records a coordinator's purge that arrived destroyed here: by id only (their content is what it destroyed).
    var purged: [String]?
    // Set by `sync --json` and `import --json` only (JSONOutput.swift); left out of the JSON when nil.
    var target: String?
    var read_only: Bool?
    var kept_apart: Int?
    var forks: [ForkJSON]?
    var bundle: ImportedBundleJSON?

    /// Every record state by id.
    static func snapshot(_ vault: Vault) throws -> [RecordID: RecordState] {
        Dictionary(try vault.allStates().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    init(before: [RecordID: RecordState], after: [RecordID: RecordState], vault: Vault, pulled: Int, pushed: Int?) {
        self.pulled = pulled
        self.pushed = pushed
        let now = vault.wallClock()
        let destroyed = vault.purgedRecordIDs()
        let gone = before.keys.filter { after[$0] == nil && destroyed.contains($0) }.sorted()
        if !gone.isEmpty { purged = gone.map(\.hex) }
        for id in after.keys.sorted() {
            guard let state = after[id] else { continue }
            let old = before[id]
            let arrived = state.changes.filter { !(old?.changes.contains($0) ?? false) }
            guard !arrived.isEmpty else { continue }
            var names: [String] = []
            for author in arrived.map(\.author) where !names.contains(vault.deviceLabel(author)) {
                names.append(vault.deviceLabel(author))
            }
            let view = state.contentView(nowMillis: now)
            let title = view.map { $0.fields["title"] ?? $0.fields["witness"].map { "witness \($0)" } ?? "" } ?? ""
            let event = Event(record: id.hex, title: title, by: names, fields: nil)
            let wasVisible = old?.isVisible ?? false
            let wasDeleted = old?.isDeleted ?? false
            switch (wasVisible, state.isVisible) {
            case (false, true): if wasDeleted { undeleted.append(event) } else { created.append(event) }
            case (true, false): deleted.append(event)
            case (true, true): edited.append(event)
            case (false, false): continue
            }
            let conflictsBefore = Set(old?.contentView(nowMillis: now)?.conflicts.keys.map { $0 } ?? [])
            let fresh = Set(view?.conflicts.keys.map { $0 } ?? []).subtracting(conflictsBefore)
            if state.isVisible && !fresh.isEmpty {
                var conflict = event
                conflict.fields = fresh.sorted()
                new_conflicts.append(conflict)
            }
        }
    }

    var isEmpty: Bool {
        created.isEmpty && edited.isEmpty && deleted.isEmpty && undeleted.isEmpty && new_conflicts.isEmpty
            && purged == nil
    }

    /// At most this many records are named per kind of arrival (a first sync can bring thousands); `--json`
    /// lists them all.
    static let linesPerKind = 20

    /// The human lines (escaped by ``note(_:)``).
    var lines: [String] {
        var out: [String] = []
        func add(_ events: [Event], _ verb: String) {
            for e in events.prefix(Self.linesPerKind) {
                out.append(
                    "  \(verb) \(e.record.prefix(12)) \(RecordText.oneLine(e.title, 40)) by \(e.by.joined(separator: ", "))"
                )
            }
            if events.count > Self.linesPerKind {
                out.append("  … and \(events.count - Self.linesPerKind) more (--json lists them all)")
            }
        }
        add(created, "created")
        add(edited, "edited ")
        add(deleted, "DELETED")
        for id in (purged ?? []).prefix(Self.linesPerKind) {
            out.append("  PURGED \(id.prefix(12)) by a coordinator: its content is destroyed on this laptop")
        }
        if let purged, purged.count > Self.linesPerKind {
            out.append("  … and \(purged.count - Self.linesPerKind) more (--json lists them all)")
        }
        // A deleted record becomes visible again by an `undelete` or by an edit made while the delete had not been
        // seen (change.md §5): the arrivals cannot tell which, so they say both.
        add(undeleted, "VISIBLE AGAIN")
        if !undeleted.isEmpty {
            out.append("  (visible again: undeleted, or edited on another laptop before its deletion was seen there)")
        }
        if new_conflicts.count > Self.linesPerKind {
            out.append(
                "  \(new_conflicts.count) NEW CONFLICTS, the first \(Self.linesPerKind) below: `amanat list` marks every record in conflict"
            )
        }
        for e in new_conflicts.prefix(Self.linesPerKind) {
            out.append(
                "  NEW CONFLICT on \(e.fields?.joined(separator: ", ") ?? "") of \(e.record.prefix(12)) \(RecordText.oneLine(e.title, 40)) (by \(e.by.joined(separator: ", "))): `amanat show \(e.record.prefix(12))`"
            )
        }
        return out
    }

    /// The one-line count, as "2 records created, 1 record deleted, 1 record with a new conflict".
    var headline: String {
        var parts: [String] = []
        func count(_ n: Int, _ word: String) { if n > 0 { parts.append("\(n) record\(n == 1 ? "" : "s") \(word)") } }
        count(created.count, "created")
        count(edited.count, "edited")
        count(deleted.count, "deleted")
        count(purged?.count ?? 0, "purged")
        count(undeleted.count, "visible again")
        count(new_conflicts.count, "with a new conflict")
        return parts.isEmpty ? "no record changed" : parts.joined(separator: ", ")
    }

    /// Prints the summary: JSON on stdout with `json`, else lines on stderr.
    func report(json: Bool) throws {
        if json {
            print(try RecordJSON.render(self))
        } else {
            note("Arrived: \(headline).")
            for line in lines { note(line) }
        }
    }
}
