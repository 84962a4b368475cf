import AmanatCrypto
import Testing

@testable import AmanatCore

/// A seeded random history of edits by 3–5 devices that sync with each other now and then.
///
/// Every device edits its own replica through the editing API (`setOperation`, `deleteOperation`, …), so `pred` and
/// observed sets name exactly what that device had seen; partial syncs make many of those edits concurrent.
struct RandomHistory {
    static let fields = ["title", "body", "date"]
    static let tags = ["urgent", "verified", "kabul"]

    private var rng: SplitMix64
    let devices: [DeviceID]
    private(set) var records: [RecordID] = []
    /// Every change made, in the order it was made.
    private(set) var changes: [AuthoredChange] = []
    /// What each device has seen, in the order it saw it (a causal order).
    private var seen: [[AuthoredChange]]
    private var seenKeys: [Set<ChangeKey>]
    private var replicas: [[RecordID: RecordState]]
    private var clocks: [HybridLogicalClock]
    private var skews: [Int64]
    private var seqs: [UInt64]
    private var wall: UInt64 = 1_700_000_000_000

    struct ChangeKey: Hashable {
        var author: DeviceID
        var seq: UInt64
    }

    init(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let count = Int.random(in: 3...5, using: &rng)
        var devices: [DeviceID] = []
        for _ in 0..<count { devices.append(try DeviceID(rng.bytes(32))) }
        // Some devices share a clock skew, so equal stamps (and device-id tie-breaks) happen.
        let skewChoices: [Int64] = [0, 0, -3, 250, -7_200_000]
        skews = (0..<count).map { _ in skewChoices.randomElement(using: &rng) ?? 0 }
        self.rng = rng
        self.devices = devices
        seen = Array(repeating: [], count: count)
        seenKeys = Array(repeating: [], count: count)
        replicas = Array(repeating: [:], count: count)
        clocks = Array(repeating: HybridLogicalClock(), count: count)
        seqs = Array(repeating: 0, count: count)
        let steps = Int.random(in: 15...45, using: &rng)
        for _ in 0..<steps { try step() }
    }

    /// Every device receives everything; returns each replica's projection.
    mutating func syncEveryone() -> [[RecordID: RecordState]] {
        for d in devices.indices { deliver(changes, to: d) }
        return replicas
    }

    private mutating func step() throws {
        wall += UInt64.random(in: 0...2, using: &rng)
        let roll = Int.random(in: 0..<100, using: &rng)
        let d = Int.random(in: 0..<devices.count, using: &rng)
        switch roll {
        case 0..<22:
            partialSync(to: d)
        case 22..<30:
            // Two devices share a state, then both edit the same field: a conflict.
            let e = (d + 1 + Int.random(in: 0..<(devices.count - 1), using: &rng)) % devices.count
            fullSync(d, e)
            if let record = knownRecord(of: d) {
                let field = Self.fields.randomElement(using: &rng) ?? "title"
                let s = replicas[d][record] ?? RecordState(id: record)
                commit(d, record, [s.setOperation(field: field, value: "d\(d)-\(changes.count)")])
                commit(e, record, [s.setOperation(field: field, value: "e\(e)-\(changes.count)")])
            }
        case 30..<35:
            // One device deletes while another, having seen the same state, edits.
            let e = (d + 1) % devices.count
            fullSync(d, e)
            if let record = knownRecord(of: d) {
                let s = replicas[d][record] ?? RecordState(id: record)
                commit(d, record, [s.deleteOperation()])
                commit(e, record, [s.setOperation(field: "body", value: "edit-\(changes.count)")])
            }
        case 35..<42:
            if records.count < 4 || rng.chance(10) {
                let record = try RecordID(rng.bytes(16))
                records.append(record)
                let kind = rng.chance(50) ? "statement" : "testimony"
                var ops: [RecordOperation] = [.create(kind: kind), .set(field: "title", value: "new", pred: [])]
                if rng.chance(50) { ops.append(.addTag(Self.tags.randomElement(using: &rng) ?? "urgent")) }
                commit(d, record, ops)
            } else {
                localEdit(by: d)
            }
        default:
            localEdit(by: d)
        }
    }

    private mutating func localEdit(by d: Int) {
        guard let record = knownRecord(of: d) else { return }
        let s = replicas[d][record] ?? RecordState(id: record)
        let roll = Int.random(in: 0..<100, using: &rng)
        var ops: [RecordOperation] = []
        switch roll {
        case 0..<40:
            let field = Self.fields.randomElement(using: &rng) ?? "title"
            ops.append(s.setOperation(field: field, value: "v\(changes.count)"))
            if rng.chance(20) { ops.append(.addTag(Self.tags.randomElement(using: &rng) ?? "urgent")) }
        case 40..<60:
            ops.append(.addTag(Self.tags.randomElement(using: &rng) ?? "urgent"))
        case 60..<75:
            let tag = Self.tags.randomElement(using: &rng) ?? "urgent"
            if let remove = s.removeTagOperation(tag) { ops.append(remove) } else { ops.append(.addTag(tag)) }
        case 75..<88:
            ops.append(s.deleteOperation())
        default:
            let fields = (s.view?.fields ?? [:]).map { ($0.key, $0.value) }
            ops.append(.seal(contentHash: RecordState.sealHash(kind: s.creationKind, fields: fields)))
        }
        commit(d, record, ops)
    }

    /// A record device `d` knows was created: usually one it sees, sometimes one it saw deleted.
    private mutating func knownRecord(of d: Int) -> RecordID? {
        let known = records.filter { replicas[d][$0]?.creationOp != nil }
        let visible = known.filter { replicas[d][$0]?.isVisible == true }
        if !visible.isEmpty && rng.chance(85) { return visible.randomElement(using: &rng) }
        return known.randomElement(using: &rng)
    }

    private mutating func commit(_ d: Int, _ record: RecordID, _ operations: [RecordOperation]) {
        seqs[d] += 1
        let now = UInt64(max(Int64(wall) + skews[d], 0))
        // Now and then a device's wall clock jumps back by an hour.
        if rng.chance(3) { skews[d] -= 3_600_000 }
        let stamp = clocks[d].tick(wallMillis: now)
        let change = AuthoredChange(
            author: devices[d], seq: seqs[d], change: Change(record: record, timestamp: stamp, operations: operations))
        changes.append(change)
        deliver([change], to: d)
    }

    private mutating func partialSync(to d: Int) {
        let missing = changes.filter { !seenKeys[d].contains(ChangeKey(author: $0.author, seq: $0.seq)) }
        let some = missing.filter { _ in rng.chance(60) }
        deliver(some, to: d)
    }

    private mutating func fullSync(_ a: Int, _ b: Int) {
        deliver(seen[b], to: a)
        deliver(seen[a], to: b)
    }

    private mutating func deliver(_ incoming: [AuthoredChange], to d: Int) {
        for c in incoming where seenKeys[d].insert(ChangeKey(author: c.author, seq: c.seq)).inserted {
            seen[d].append(c)
            clocks[d].observe(c.change.timestamp)
            replicas[d][c.change.record, default: RecordState(id: c.change.record)].apply(c)
        }
    }
}

@Suite("Convergence: projection does not depend on arrival order")
struct ConvergenceTests {
    /// Seeds that once failed, or that exercise something worth keeping; add any failing seed here.
    static let regressionSeeds: [UInt64] = [0, 1, 2, 42, 0xdead_beef, 0x1234_5678_9abc_def0, UInt64.max]

    /// Checks that `history` projects to the same bytes in `shuffles` random orders with duplicates.
    static func checkOrderIndependence(seed: UInt64, shuffles: Int) throws {
        var history = try RandomHistory(seed: seed)
        let changes = history.changes
        let reference = project(changes)
        let referenceDigest = digest(reference)
        let referenceBytes = reference.mapValues { $0.encoded() }
        var rng = SplitMix64(seed: seed ^ 0x5eed)
        for shuffle in 0..<shuffles {
            var order = changes.shuffled(using: &rng)
            // Replays: some changes arrive again later.
            for _ in 0..<Int.random(in: 0...max(changes.count / 4, 1), using: &rng) {
                if let c = changes.randomElement(using: &rng) {
                    order.insert(c, at: Int.random(in: 0...order.count, using: &rng))
                }
            }
            let states = project(order)
            #expect(states.keys == reference.keys, "seed \(seed) shuffle \(shuffle)")
            for (id, bytes) in referenceBytes where states[id]?.encoded() != bytes {
                Issue.record("seed \(seed) shuffle \(shuffle): record \(id) differs")
            }
            #expect(digest(states) == referenceDigest, "seed \(seed) shuffle \(shuffle)")
        }
        // Each device's incrementally merged replica converges to the same state once it has seen everything.
        for (index, replica) in history.syncEveryone().enumerated() {
            #expect(digest(replica) == referenceDigest, "seed \(seed): replica \(index) did not converge")
            #expect(replica == reference, "seed \(seed): replica \(index) did not converge")
        }
        // Random states survive the canonical encoding.
        for state in reference.values {
            #expect(try RecordState(decoding: state.encoded()) == state, "seed \(seed): record \(state.id)")
        }
    }

    @Test("200 seeded histories × 20 shuffled orders with replays give identical states and digests")
    func manySeeds() throws {
        var seeds = SplitMix64(seed: 0xa3a7a7)
        for _ in 0..<200 {
            try Self.checkOrderIndependence(seed: seeds.next(), shuffles: 20)
        }
    }

    @Test("regression seeds", arguments: regressionSeeds)
    func regression(seed: UInt64) throws {
        try Self.checkOrderIndependence(seed: seed, shuffles: 50)
    }

    @Test("fresh random seeds (the seed is printed on failure)")
    func freshSeeds() throws {
        for _ in 0..<10 {
            try Self.checkOrderIndependence(seed: UInt64.random(in: .min ... .max), shuffles: 10)
        }
    }

    @Test("the histories actually contain conflicts, concurrent deletes, removed tags and seals")
    func generatorCoverage() throws {
        var conflicts = 0
        var survivingDeletes = 0
        var hidden = 0
        var removedTags = 0
        var sealed = 0
        for seed in 0..<60 as Range<UInt64> {
            let states = project(try RandomHistory(seed: seed).changes).values
            conflicts += states.filter { !($0.view?.conflicts.isEmpty ?? true) }.count
            survivingDeletes += states.filter { !$0.deleteObserved.isEmpty && $0.isVisible }.count
            hidden += states.filter { $0.creationOp != nil && !$0.isVisible }.count
            removedTags += states.filter { !$0.removedTags.isEmpty }.count
            sealed += states.filter { $0.seal != nil }.count
        }
        #expect(conflicts > 20)
        #expect(survivingDeletes > 20)
        #expect(hidden > 5)
        #expect(removedTags > 8)
        #expect(sealed > 15)
    }
}

@Suite("Merge laws: replicas as sets of changes, merged by union")
struct MergeLawTests {
    /// Three overlapping random subsets of one history (not causally closed: projection must not need that).
    static func subsets(seed: UInt64) throws -> ([AuthoredChange], [AuthoredChange], [AuthoredChange]) {
        let changes = try RandomHistory(seed: seed).changes
        var rng = SplitMix64(seed: ~seed)
        func pick() -> [AuthoredChange] { changes.filter { _ in rng.chance(45) }.shuffled(using: &rng) }
        return (pick(), pick(), pick())
    }

    static func merged(_ base: [AuthoredChange], _ more: [AuthoredChange]...) -> [RecordID: RecordState] {
        var states = project(base)
        for changes in more { merge(changes, into: &states) }
        return states
    }

    @Test("merge is commutative, associative and idempotent", arguments: 0..<100 as Range<UInt64>)
    func laws(seed: UInt64) throws {
        let (a, b, c) = try Self.subsets(seed: seed)
        let ab = Self.merged(a, b)
        #expect(ab == Self.merged(b, a), "seed \(seed): commutativity")
        #expect(digest(ab) == digest(Self.merged(b, a)), "seed \(seed): commutativity")

        let abThenC = Self.merged(a, b, c)
        let aThenBC = Self.merged(a, b + c)
        let cThenBA = Self.merged(c, b, a)
        #expect(digest(abThenC) == digest(aThenBC), "seed \(seed): associativity")
        #expect(digest(abThenC) == digest(cThenBA), "seed \(seed): associativity")
        #expect(abThenC == project(a + b + c), "seed \(seed)")

        var again = project(a)
        let before = again
        for change in a {
            let id = change.change.record
            let changed = again[id]?.apply(change)
            #expect(changed == false, "seed \(seed): re-applying reported a change")
        }
        #expect(again == before, "seed \(seed): idempotence")
        #expect(digest(Self.merged(a, a, a)) == digest(project(a)), "seed \(seed): idempotence")
    }

    @Test("different sets of changes give different digests")
    func digestsDistinguish() throws {
        let changes = try RandomHistory(seed: 7).changes
        let all = digest(project(changes))
        for index in changes.indices {
            var fewer = changes
            fewer.remove(at: index)
            #expect(digest(project(fewer)) != all, "dropping change \(index) went unnoticed")
        }
    }
}
