/// One visible value of a field: the operation that set it, the text, and when.
public struct FieldValue: Hashable, Sendable {
    /// The `set` operation that wrote this value.
    public var op: OpID
    /// The value's text.
    public var value: String
    /// The stamp of the change that wrote it.
    public var timestamp: HLCTimestamp

    /// Creates a field value.
    public init(op: OpID, value: String, timestamp: HLCTimestamp) {
        self.op = op
        self.value = value
        self.timestamp = timestamp
    }

    /// Whether `self` wins over `other` as the displayed value: greater (stamp, device id), then op id.
    public func wins(over other: FieldValue) -> Bool {
        if timestamp != other.timestamp { return timestamp > other.timestamp }
        if op.device != other.op.device { return op.device > other.op.device }
        return op > other.op
    }
}

/// A pointer from a record to one change that touched it, for `history`.
public struct ChangeRef: Hashable, Comparable, Sendable {
    /// The change's author.
    public var author: DeviceID
    /// The change's seq in the author's log.
    public var seq: UInt64
    /// The change's stamp.
    public var timestamp: HLCTimestamp

    /// Creates a reference.
    public init(author: DeviceID, seq: UInt64, timestamp: HLCTimestamp) {
        self.author = author
        self.seq = seq
        self.timestamp = timestamp
    }

    public static func < (a: ChangeRef, b: ChangeRef) -> Bool {
        if a.timestamp != b.timestamp { return a.timestamp < b.timestamp }
        if a.author != b.author { return a.author < b.author }
        return a.seq < b.seq
    }
}

/// The seal of a testimony's original content.
public struct SealInfo: Hashable, Sendable {
    /// The `seal` operation.
    public var op: OpID
    /// BLAKE2b-256 of the sealed content (Protocol/change.md §4).
    public var contentHash: [UInt8]
    /// When it was sealed.
    public var timestamp: HLCTimestamp
}

/// The merged state of one record: a deterministic function of the *set* of changes applied to it.
///
/// Every component is a grow-only set or is derived from one, so applying the same changes in any order,
/// any number of times, gives an equal state (Protocol/change.md §6).
///
/// ```swift
/// var state = RecordState(id: id)
/// state.apply(authoredChange)
/// let view = state.view   // nil while deleted or not yet created
/// ```
public struct RecordState: Hashable, Sendable {
    /// The record's id.
    public let id: RecordID
    /// The create operation with the smallest id (normally the only one).
    public internal(set) var creationOp: OpID?
    /// The kind that create operation gave (`statement`, `testimony`, …); empty until it is known.
    public internal(set) var creationKind: String = ""
    /// Visible values per field: those no known operation overwrote. More than one is a conflict.
    public internal(set) var values: [String: [FieldValue]] = [:]
    /// Every value operation some known `set` lists in its `pred`.
    public internal(set) var overwritten: Set<OpID> = []
    /// Visible tag additions, by their operation id.
    public internal(set) var tagAdds: [OpID: String] = [:]
    /// Tag additions some known `removeTag` observed.
    public internal(set) var removedTags: Set<OpID> = []
    /// Operations some known `delete` observed.
    public internal(set) var deleteObserved: Set<OpID> = []
    /// The seal, if the record was sealed.
    public internal(set) var seal: SealInfo?
    /// Every change that touched this record, in (stamp, author, seq) order.
    public internal(set) var changes: [ChangeRef] = []
    /// The record of another vault this one was imported from, if it was (the origin with the smallest op id).
    public internal(set) var origin: OriginInfo?
    /// The original envelopes kept with an imported record: grow-only, checked by `verify` and shown by `history`.
    public internal(set) var custody: Set<CustodyItem> = []
    /// Every attachment ever added, by its `attach` operation: grow-only (Protocol/attachments.md §3).
    public internal(set) var attachmentOps: [OpID: AttachmentInfo] = [:]
    /// The `attach` operations some known `detach` names.
    public internal(set) var detached: Set<OpID> = []

    /// An empty state for `id`.
    public init(id: RecordID) { self.id = id }

    public static func == (a: RecordState, b: RecordState) -> Bool {
        a.id == b.id && a.creationOp == b.creationOp && a.creationKind == b.creationKind && a.values == b.values
            && a.overwritten == b.overwritten && a.tagAdds == b.tagAdds && a.removedTags == b.removedTags
            && a.deleteObserved == b.deleteObserved && a.seal == b.seal && a.changes == b.changes
            && a.origin == b.origin && a.custody == b.custody && a.attachmentOps == b.attachmentOps
            && a.detached == b.detached
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(changes)
    }

    /// Applies a change to this record; returns false if it was already applied (idempotence).
    @discardableResult
    public mutating func apply(_ authored: AuthoredChange) -> Bool {
        precondition(authored.change.record == id, "change applied to the wrong record")
        let ref = ChangeRef(author: authored.author, seq: authored.seq, timestamp: authored.change.timestamp)
        let position = changes.insertionIndex(of: ref)
        if position < changes.count && changes[position] == ref { return false }
        changes.insert(ref, at: position)
        let stamp = authored.change.timestamp
        for (index, operation) in authored.change.operations.enumerated() {
            let op = authored.opID(index)
            switch operation {
            case .create(let kind):
                if creationOp.map({ op < $0 }) ?? true {
                    creationOp = op
                    creationKind = kind
                }
            case .set(let field, let value, let pred):
                if !pred.isEmpty {
                    overwritten.formUnion(pred)
                    let gone = Set(pred)
                    for key in values.keys {
                        values[key]!.removeAll { gone.contains($0.op) }
                        if values[key]!.isEmpty { values[key] = nil }
                    }
                }
                if !overwritten.contains(op) {
                    values[field, default: []].append(FieldValue(op: op, value: value, timestamp: stamp))
                    values[field]!.sort { $0.wins(over: $1) }
                }
            case .addTag(let tag):
                if !removedTags.contains(op) { tagAdds[op] = tag }
            case .removeTag(_, let observed):
                removedTags.formUnion(observed)
                for id in observed { tagAdds[id] = nil }
            case .delete(let observed):
                deleteObserved.formUnion(observed)
            case .seal(let hash):
                if seal.map({ op < $0.op }) ?? true { seal = SealInfo(op: op, contentHash: hash, timestamp: stamp) }
            case .origin(let vault, let record):
                if origin.map({ op < $0.op }) ?? true { origin = OriginInfo(op: op, vault: vault, record: record) }
            case .custody(let envelope, let key):
                custody.insert(CustodyItem(envelope: envelope, key: key))
            case .attach(let spec):
                attachmentOps[op] = AttachmentInfo(op: op, timestamp: stamp, spec: spec)
            case .detach(let attachment):
                detached.insert(attachment)
            }
        }
        return true
    }

    /// The attachments listed (not detached), oldest first (by stamp, then operation id).
    public var attachments: [AttachmentInfo] {
        attachmentOps.values.filter { !detached.contains($0.op) }.sorted {
            $0.timestamp != $1.timestamp ? $0.timestamp < $1.timestamp : $0.op < $1.op
        }
    }

    /// Every attachment ever added, detached ones included, oldest first (their content stays as evidence).
    public var allAttachments: [AttachmentInfo] {
        attachmentOps.values.sorted { $0.timestamp != $1.timestamp ? $0.timestamp < $1.timestamp : $0.op < $1.op }
    }

    /// The operations that keep the record alive: its creation, visible values and visible tags.
    public var liveOperations: Set<OpID> {
        var live = Set(tagAdds.keys)
        if let c = creationOp { live.insert(c) }
        for list in values.values { for v in list { live.insert(v.op) } }
        return live
    }

    /// Whether the record exists and some live operation escaped every delete.
    public var isVisible: Bool {
        guard creationOp != nil else { return false }
        return liveOperations.contains { !deleteObserved.contains($0) }
    }

    /// The visible tags in NFC, without duplicates, sorted by UTF-8 bytes (Protocol/change.md §5).
    public var tags: [String] {
        Array(Set(tagAdds.values.map(\.nfc))).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// The tag-add operations that currently make `tag` visible.
    public func tagOperations(for tag: String) -> [OpID] {
        tagAdds.filter { $0.value == tag }.map(\.key).sorted()
    }

    /// What a person sees of the record in pure stamp order, or nil if it is deleted or its creation is not known
    /// yet. Reading devices use ``view(nowMillis:)``, which keeps stamps from the future from deciding.
    public var view: RecordView? { view(nowMillis: .max) }

    /// What a person sees of the record on a device whose clock reads `nowMillis`, or nil if it is deleted or its
    /// creation is not known yet.
    ///
    /// Among a field's concurrent values, one stamped more than ``HybridLogicalClock/maximumDriftMillis`` ahead of
    /// `nowMillis` never wins over one that is not: a wrong or hostile clock cannot decide what is displayed. It
    /// stays visible as a conflict, and wins in stamp order once the reading clock catches up with it
    /// (Protocol/change.md §5). The state itself, and so `state_digest`, does not depend on the clock.
    public func view(nowMillis: UInt64) -> RecordView? {
        guard isVisible else { return nil }
        return contentView(nowMillis: nowMillis)
    }

    /// What the record showed, deleted or not (for `show --deleted`, `list --deleted` and `history`), or nil if its
    /// creation is not known yet.
    public func contentView(nowMillis: UInt64) -> RecordView? {
        guard creationOp != nil else { return nil }
        let kind = creationKind
        let horizon = HybridLogicalClock.horizon(nowMillis)
        var fields: [String: String] = [:]
        var conflicts: [String: [String]] = [:]
        for (name, list) in values {
            let ranked =
                list.filter { $0.timestamp.wallMillis <= horizon } + list.filter { $0.timestamp.wallMillis > horizon }
            guard let winner = ranked.first else { continue }
            fields[name.nfc] = winner.value
            if ranked.count > 1 { conflicts[name.nfc] = ranked.dropFirst().map(\.value) }
        }
        return RecordView(id: id, kind: kind, fields: fields, conflicts: conflicts, tags: tags, isSealed: seal != nil)
    }

    /// The earliest wall time among visible values stamped beyond the horizon of `nowMillis`, if any: when the
    /// clock reaches it, the displayed values may change.
    public func earliestFutureStamp(nowMillis: UInt64) -> UInt64? {
        let horizon = HybridLogicalClock.horizon(nowMillis)
        return values.values.lazy.flatMap { $0 }.map(\.timestamp.wallMillis).filter { $0 > horizon }.min()
    }
}

/// What a person sees of one record (the `list --json` object of README.md and `amanat list --help`).
public struct RecordView: Hashable, Sendable {
    /// The record's id.
    public var id: RecordID
    /// `statement`, `testimony`, …
    public var kind: String
    /// The displayed value of each field: the winner among its visible values.
    public var fields: [String: String]
    /// For each field with several visible values, the values that did not win, best first.
    public var conflicts: [String: [String]]
    /// The visible tags, sorted.
    public var tags: [String]
    /// Whether the record's original content is sealed.
    public var isSealed: Bool
}

extension Array where Element: Comparable {
    /// The first index whose element is not less than `element` (binary search in a sorted array).
    func insertionIndex(of element: Element) -> Int {
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if self[mid] < element { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// Where an imported record came from: the `origin` operation that counts.
public struct OriginInfo: Hashable, Sendable {
    /// The `origin` operation.
    public var op: OpID
    /// The origin's 16-byte vault id.
    public var vault: [UInt8]
    /// The origin's record id in that vault.
    public var record: RecordID
}

/// One original envelope kept with an imported record, and the key that opens it (empty for a membership entry).
public struct CustodyItem: Hashable, Sendable {
    /// The envelope's wire form (Protocol/envelope.md §1).
    public var envelope: [UInt8]
    /// Its 32-byte envelope key, or empty.
    public var key: [UInt8]

    /// Creates an item.
    public init(envelope: [UInt8], key: [UInt8]) {
        self.envelope = envelope
        self.key = key
    }
}
