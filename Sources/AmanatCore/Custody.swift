import AmanatCrypto

/// What the original envelopes kept with an imported record prove (Protocol/change.md §3, `origin` and `custody`).
///
/// Every check needs only the kept envelopes and the origin: each change envelope must carry a valid signature of
/// its author, name the origin vault, and decrypt with its kept key to a change of the origin record; each
/// membership entry must be signed and open with the origin vault's authority key. The entries are evaluated by
/// the membership rules, so a signer is "proven" only if the kept entries admit it from the origin vault's founder.
///
/// ```swift
/// let custody = CustodyReport(origin: origin, items: state.custody)
/// for change in custody.changes { print(change.authored.author, change.label ?? "") }
/// ```
public struct CustodyReport: Sendable {
    /// One original change, verified.
    public struct OriginalChange: Sendable {
        /// The envelope as its author signed it.
        public var envelope: Envelope
        /// Its change.
        public var authored: AuthoredChange
        /// `original, sealed` or `amendment` for a sealed testimony, else nil.
        public var label: String?
    }

    /// The verified original changes, in (stamp, author, seq) order.
    public private(set) var changes: [OriginalChange] = []
    /// The origin vault's membership as the kept entries prove it.
    public private(set) var membership: MembershipState
    /// The origin record replayed from the verified changes.
    public private(set) var state: RecordState
    /// Whether the origin's seal (if any) matches the values of its sealing change.
    public private(set) var sealMatches = true
    /// What does not verify, one sentence each; empty if everything does.
    public private(set) var problems: [String] = []
    /// Every value a kept original change sets, by the NFC form of its field name, as UTF-8 bytes.
    private var keptValues: [String: Set<[UInt8]>] = [:]
    /// Every tag a kept original change adds, in NFC.
    private var keptTags: Set<String> = []

    /// Verifies `items` as the custody of `origin`.
    public init(origin: OriginInfo, items: Set<CustodyItem>) {
        state = RecordState(id: origin.record)
        var entries: [AuthoredEntry] = []
        var opened: [(Envelope, AuthoredChange)] = []
        for item in items.sorted(by: { $0.envelope.lexicographicallyPrecedes($1.envelope) }) {
            let name = Hex.encode(BLAKE2b.hash(item.envelope)).prefix(12)
            guard let envelope = try? Envelope(decoding: item.envelope) else {
                problems.append("Kept envelope \(name) does not decode.")
                continue
            }
            guard envelope.header.vaultID == origin.vault else {
                problems.append("Kept envelope \(name) belongs to another vault than the record's origin.")
                continue
            }
            guard envelope.hasValidSignature() else {
                problems.append("Kept envelope \(name) does not carry a valid signature of its device.")
                continue
            }
            if item.key.isEmpty {
                guard let entry = try? envelope.openEntry() else {
                    problems.append("Kept membership entry \(name) does not open with the origin vault's key.")
                    continue
                }
                entries.append(entry)
            } else {
                guard let change = try? envelope.open(withEnvelopeKey: SecureBytes(item.key)) else {
                    problems.append("Kept envelope \(name) does not decrypt with its key.")
                    continue
                }
                guard change.record == origin.record else {
                    problems.append("Kept envelope \(name) is a change of another record than the origin.")
                    continue
                }
                opened.append(
                    (envelope, AuthoredChange(author: envelope.header.author, seq: envelope.header.seq, change: change))
                )
            }
        }
        membership = MembershipState.evaluate(vaultID: origin.vault, entries: entries)
        if opened.isEmpty { problems.append("No original signed change of the record is kept with it.") }
        for (_, authored) in opened {
            state.apply(authored)
            for op in authored.change.operations {
                switch op {
                case .set(let field, let value, _): keptValues[field.nfc, default: []].insert(Array(value.utf8))
                case .addTag(let tag): keptTags.insert(tag.nfc)
                default: break
                }
            }
        }
        if let seal = state.seal {
            let sealing = opened.first { $0.1.author == seal.op.device && $0.1.seq == seal.op.seq }
            if let sealing {
                var fields: [(String, String)] = []
                var kind = ""
                for op in sealing.1.change.operations {
                    switch op {
                    case .create(let k): kind = k
                    case .set(let field, let value, _): fields.append((field, value))
                    default: break
                    }
                }
                sealMatches = RecordState.sealHash(kind: kind, fields: fields) == seal.contentHash
            } else {
                sealMatches = false
            }
            if !sealMatches { problems.append("The original seal does not match the values of its sealing change.") }
        }
        for (envelope, authored) in opened {
            let label = state.label(forChangeBy: authored.author, seq: authored.seq, at: authored.change.timestamp)
            changes.append(OriginalChange(envelope: envelope, authored: authored, label: label))
        }
        changes.sort {
            let a = ($0.authored.change.timestamp, $0.authored.author, $0.authored.seq)
            let b = ($1.authored.change.timestamp, $1.authored.author, $1.authored.seq)
            return a < b
        }
        for change in changes where role(of: change.authored.author, at: change.authored.seq) == nil {
            let device = change.authored.author.hex.prefix(12)
            problems.append(
                "Change \(change.authored.seq) of device \(device) is not proven to be by a member of the origin vault."
            )
        }
    }

    /// What the change that imported the record (the one holding its `origin`) claims beyond the kept originals, one
    /// sentence each: a kind other than the original's, a field value or a tag no kept original change holds, or a
    /// field that a change kept by this very change sets and the import leaves out. A member who copies another
    /// record's custody under invented values is caught here; the kept envelopes alone cannot show it.
    public func problems(ofImport importing: Change) -> [String] {
        var found: [String] = []
        var imported: Set<String> = []
        var ownKept: Set<CustodyItem> = []
        for op in importing.operations {
            switch op {
            case .create(let kind) where kind != state.creationKind:
                found.append("The import names the kind \(kind), not the original's.")
            case .set(let field, let value, _) where field != "provenance":
                imported.insert(field.nfc)
                if keptValues[field.nfc]?.contains(Array(value.utf8)) != true {
                    found.append("The import sets \(field) to a value no kept original change holds.")
                }
            case .addTag(let tag) where !keptTags.contains(tag.nfc):
                found.append("The import adds the tag \(tag), which no kept original change adds.")
            case .custody(let envelope, let key):
                ownKept.insert(CustodyItem(envelope: envelope, key: key))
            default: break
            }
        }
        var leftOut: Set<String> = []
        for change in changes where ownKept.contains(where: { $0.envelope == change.envelope.encoded() }) {
            for case .set(let field, _, _) in change.authored.change.operations
            where field.nfc != "provenance" && !imported.contains(field.nfc)
                && state.values[field.nfc]?.isEmpty == false
            {
                leftOut.insert(field.nfc)
            }
        }
        for field in leftOut.sorted() { found.append("The import leaves out the original's field \(field).") }
        return found
    }

    /// The role `device` had in the origin vault at `seq`, or nil if the kept entries do not prove it a member.
    public func role(of device: DeviceID, at seq: UInt64) -> Role? {
        guard membership.founded, let member = membership.members[device], member.isActive(at: seq) else {
            return nil
        }
        return member.role(at: seq)
    }
}
