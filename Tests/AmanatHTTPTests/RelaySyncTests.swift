import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// Replicas syncing through a real relay on a loopback port, over a real HTTP client.
@Suite struct RelaySyncTests {
    /// One random step of a replica: a create, an edit, a tag, a delete, or a sync through `syncStep`.
    func randomStep(
        _ vault: Vault, rng: inout SeededGenerator, known: inout [RecordID], syncStep: () async throws -> Void
    ) async throws {
        // Candidates in creation order, not in the order of their random-key-derived ids: a seed replays exactly.
        let states = Dictionary(uniqueKeysWithValues: try vault.allStates().map { ($0.id, $0) })
        let visible = known.compactMap { states[$0] }.filter(\.isVisible)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1:
            known.append(
                try vault.createRecord(
                    kind: "testimony", fields: [("witness", "W-\(rng.next() % 100)"), ("location", "L0")],
                    tags: ["t\(rng.next() % 3)"], seal: true))
        case 2, 3, 4:
            guard let state = visible.randomElement(using: &rng) else { return }
            let field = ["location", "narrative", "consent"].randomElement(using: &rng) ?? "location"
            let value = "v\(rng.next() % 1000)"
            try vault.commit(record: state.id) { s in s.map { [$0.setOperation(field: field, value: value)] } ?? [] }
        case 5:
            guard let state = visible.randomElement(using: &rng) else { return }
            let tag = "t\(rng.next() % 3)"
            try vault.commit(record: state.id) { s in s.map { [$0.addTagOperation(tag)] } ?? [] }
        case 6:
            guard let state = visible.randomElement(using: &rng) else { return }
            try vault.commit(record: state.id) { s in s.map { [$0.deleteOperation()] } ?? [] }
        default:
            try await syncStep()
        }
    }

    func expectConverged(_ team: [Vault], known: [RecordID], _ label: String) throws {
        let digests = try team.map { Hex.encode(try $0.status().stateDigest) }
        #expect(Set(digests).count == 1, "\(label): digests differ \(digests)")
        let counts = try team.map { try $0.changeCount() }
        #expect(Set(counts).count == 1, "\(label): change counts differ \(counts)")
        let lists = try team.map { try $0.visibleRecords() }
        #expect(lists.dropFirst().allSatisfy { $0 == lists[0] }, "\(label): lists differ")
        for vault in team {
            #expect(try vault.verify().problems == [], "\(label)")
            #expect(Set(try vault.allStates().map(\.id)).isSuperset(of: known), "\(label): a replica lost a record")
        }
    }

    @Test(arguments: RelayStorageKind.allCases, [UInt64(11), 12, 13])
    func threeReplicasConvergeThroughTheRelay(_ kind: RelayStorageKind, seed: UInt64) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        let team = try makeTeam(3, in: dir)
        var rng = SeededGenerator(seed: seed)
        var known: [RecordID] = []
        for _ in 0..<40 {
            let vault = team[Int.random(in: 0..<3, using: &rng)]
            let batch = [1, 2, 1000].randomElement(using: &rng) ?? 1000
            try await randomStep(vault, rng: &rng, known: &known) {
                try await relaySync(vault, relay.url, batchSize: batch)
            }
        }
        for _ in 0..<2 { for vault in team { try await relaySync(vault, relay.url) } }
        try expectConverged(team, known: known, "seed \(seed)")
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func threeReplicasConvergeThroughAMixOfRelayAndSyncFiles(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        let team = try makeTeam(3, in: dir)
        var rng = SeededGenerator(seed: 77)
        var known: [RecordID] = []
        let sticks = (0..<2).map { dir.path("stick\($0).sync") }
        for _ in 0..<60 {
            let vault = team[Int.random(in: 0..<3, using: &rng)]
            let useRelay = Bool.random(using: &rng)
            let stick = sticks[Int.random(in: 0..<2, using: &rng)]
            try await randomStep(vault, rng: &rng, known: &known) {
                if useRelay { try await relaySync(vault, relay.url) } else { try await fileSync(vault, stick) }
            }
        }
        // Replica 2 never meets the relay again; it reaches the others only through a stick.
        let final = dir.path("final.sync")
        for _ in 0..<2 {
            try await relaySync(team[0], relay.url)
            try await relaySync(team[1], relay.url)
            try await fileSync(team[1], final)
            try await fileSync(team[2], final)
            try await fileSync(team[1], final)
        }
        try await relaySync(team[0], relay.url)
        try expectConverged(team, known: known, "mix")
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aSyncThatFitsInOneBatchTakesTwoRoundTrips(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "one")], tags: [], seal: false)
        try await relaySync(team[0], relay.url)  // registers the vault
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "two")], tags: [], seal: false)
        try await relaySync(team[0], relay.url)
        _ = try team[1].createRecord(kind: "statement", fields: [("title", "three")], tags: [], seal: false)
        let carrier = try CountingCarrier(
            HTTPCarrier(url: relay.url, vaultID: team[1].vaultID, key: team[1].relaySigningKey, options: testOptions()))
        let report = try await ExchangeSession(vault: team[1], carrier: carrier).run()
        await carrier.inner.shutdown()
        // Besides the records, team[0]'s log holds its two membership entries and team[1]'s its join.
        #expect(report.pulled == 2 + 2 && report.pushed == 1 + 1)
        #expect(carrier.calls.value == 2, "vector + one exchange")
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aRestartedRelayInTheMiddleOfALargeSyncIsResumed(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        var relay = try await TestRelay.start(spec)
        let port = relay.port
        let team = try makeTeam(2, in: dir)
        var items: [(RecordID?, [RecordOperation])] = []
        for i in 0..<5000 {
            items.append(
                (nil, [.create(kind: "statement"), .set(field: "title", value: "s\(i)", pred: [])]))
        }
        try team[0].commitBatch(items)

        // Push 5000 envelopes in batches of 100; the relay is restarted while it goes on.
        let progress = Counter()
        let dirs = team.map(\.directory)
        let pusher = Task {
            let vault = try Vault.open(at: dirs[0], passphrase: passphrase)
            return try await relaySync(vault, "http://127.0.0.1:\(port)", batchSize: 100) { progress.set($0.done) }
        }
        while progress.value < 1500 { try await Task.sleep(for: .milliseconds(5)) }
        await relay.stop()
        try await Task.sleep(for: .milliseconds(300))
        relay = try await TestRelay.start(spec, port: port)
        let pushReport = try await pusher.value
        // 5000 records and team[0]'s two membership entries (founding the vault, inviting team[1]).
        #expect(pushReport.pushed <= 5002)
        let store = try await spec.open()
        #expect(try await store.count(vaultID: team[0].vaultID) == 5002)
        await store.close()

        // Pull them into the second replica in batches of 100, with another restart in the middle.
        progress.set(0)
        let puller = Task {
            let vault = try Vault.open(at: dirs[1], passphrase: passphrase)
            return try await relaySync(vault, "http://127.0.0.1:\(port)", batchSize: 100) { progress.set($0.done) }
        }
        while progress.value < 2000 { try await Task.sleep(for: .milliseconds(5)) }
        await relay.stop()
        try await Task.sleep(for: .milliseconds(300))
        relay = try await TestRelay.start(spec, port: port)
        _ = try await puller.value
        #expect(try team[1].changeCount() == 5002 + 1, "and its own join")
        #expect(try team[0].status().stateDigest == team[1].status().stateDigest)
        #expect(try team[1].verify().problems == [])
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func anUnreachableRelayIsReportedAsUnavailable(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        let url = relay.url
        await relay.stop()
        let team = try makeTeam(1, in: dir)
        let started = ContinuousClock.now
        await #expect {
            try await relaySync(team[0], url, options: testOptions(attempts: 3))
        } throws: { error in
            (error as? RelayClientError)?.code == .unavailable
                && (error as? RelayClientError)?.message.contains("cannot be reached") == true
        }
        // It gives up after its three attempts instead of retrying for ever. By the schedule that is at most 6.2 s
        // (three 2 s connect timeouts and two short backoffs; a refused loopback connection is immediate). The bound
        // is a deadline, not a speed: with the whole suite running beside builds on two cores, the test's task
        // waited for a thread for most of a minute (12.7 s against a bound of 10 s once, 63 s against 60 s later).
        #expect(ContinuousClock.now - started < .seconds(300))
    }
}

/// Counts a carrier's round trips.
struct CountingCarrier: ExchangeCarrier {
    let inner: HTTPCarrier
    let calls = Counter()

    init(_ inner: HTTPCarrier) { self.inner = inner }

    var name: String { inner.name }
    var canWrite: Bool { inner.canWrite }

    func versionVector() async throws -> [DeviceID: ChainHead] {
        calls.set(calls.value + 1)
        return try await inner.versionVector()
    }

    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        calls.set(calls.value + 1)
        return try await inner.envelopes(of: author, after: seq, limit: limit)
    }

    func push(_ envelopes: [Envelope]) async throws -> Int {
        calls.set(calls.value + 1)
        return try await inner.push(envelopes)
    }

    func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult {
        calls.set(calls.value + 1)
        return try await inner.exchange(vector: vector, push: push, limit: limit)
    }
}
