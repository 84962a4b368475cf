import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// Replicas that pass sync files around in any order end identical, without losing an edit.
@Suite struct ConvergenceTests {
    /// Seeds that once failed stay here as regression cases.
    static let regressionSeeds: [UInt64] = [1, 2, 3]

    /// How many random seeds to run beyond the regression table (AMANAT_CONVERGENCE_SEEDS raises it).
    static let randomSeeds: [UInt64] = {
        let n = Int(ProcessInfo.processInfo.environment["AMANAT_CONVERGENCE_SEEDS"] ?? "") ?? 12
        return (0..<n).map { UInt64(1000 + $0) }
    }()

    /// Forty random steps of seed `seed` on a team of three in `dir`: creations, edits, tags, deletions and syncs
    /// through three sticks. Returns the team, the records created (in creation order) and a trace of every choice,
    /// written with positions (which replica, which record in creation order), never with ids or keys, which are
    /// random on every run.
    static func randomSteps(seed: UInt64, in dir: TemporaryDirectory) async throws
        -> (team: [Vault], created: [RecordID], trace: [String])
    {
        let team = try makeTeam(3, in: dir)
        var rng = SeededGenerator(seed: seed)
        let files = (0..<3).map { dir.path("stick\($0).sync") }
        var knownIDs: [RecordID] = []
        var trace: [String] = []

        for _ in 0..<40 {
            let replica = Int.random(in: 0..<3, using: &rng)
            let vault = team[replica]
            // Candidates in creation order, not in the order of their ids (which derive from random device keys),
            // so a seed replays exactly the same choices.
            let states = Dictionary(uniqueKeysWithValues: try vault.allStates().map { ($0.id, $0) })
            let visible = knownIDs.compactMap { states[$0] }.filter(\.isVisible)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0, 1:
                let id = try vault.createRecord(
                    kind: "testimony", fields: [("witness", "W-\(rng.next() % 100)"), ("location", "L0")],
                    tags: ["t\(rng.next() % 3)"], seal: true)
                knownIDs.append(id)
                trace.append("\(replica) creates #\(knownIDs.count - 1)")
            case 2, 3, 4:
                guard let state = visible.randomElement(using: &rng) else { continue }
                let field = ["location", "narrative", "consent"].randomElement(using: &rng)!
                let value = "v\(rng.next() % 1000)"
                try vault.commit(record: state.id) { s in [s!.setOperation(field: field, value: value)] }
                trace.append("\(replica) sets \(field)=\(value) of #\(knownIDs.firstIndex(of: state.id)!)")
            case 5:
                guard let state = visible.randomElement(using: &rng) else { continue }
                let tag = "t\(rng.next() % 3)"
                try vault.commit(record: state.id) { s in [s!.addTagOperation(tag)] }
                trace.append("\(replica) tags #\(knownIDs.firstIndex(of: state.id)!) \(tag)")
            case 6:
                guard let state = visible.randomElement(using: &rng), let tag = state.tags.randomElement(using: &rng)
                else { continue }
                try vault.commit(record: state.id) { s in [s!.removeTagOperation(tag)].compactMap { $0 } }
                trace.append("\(replica) untags #\(knownIDs.firstIndex(of: state.id)!) \(tag)")
            case 7:
                guard let state = visible.randomElement(using: &rng) else { continue }
                try vault.commit(record: state.id) { s in [s!.deleteOperation()] }
                trace.append("\(replica) deletes #\(knownIDs.firstIndex(of: state.id)!)")
            default:
                let stick = Int.random(in: 0..<3, using: &rng)
                try await fileSync(vault, files[stick])
                trace.append("\(replica) syncs stick \(stick)")
            }
        }
        return (team, knownIDs, trace)
    }

    /// What seed 1003 did when this test was written, in another process with other random device keys.
    static let seed1003Steps = [
        "1 creates #0",
        "1 creates #1",
        "1 syncs stick 1",
        "1 syncs stick 2",
        "0 creates #2",
        "1 sets narrative=v219 of #1",
        "0 sets location=v653 of #2",
        "0 sets consent=v903 of #2",
        "1 sets consent=v904 of #1",
        "1 deletes #0",
        "0 creates #3",
        "0 syncs stick 2",
        "1 creates #4",
        "1 syncs stick 1",
        "0 syncs stick 0",
        "0 untags #1 t0",
        "0 sets consent=v155 of #0",
        "0 sets narrative=v438 of #2",
        "2 creates #5",
        "1 deletes #4",
        "0 sets narrative=v592 of #1",
        "0 creates #6",
        "1 sets location=v313 of #1",
        "2 sets location=v926 of #5",
        "0 sets location=v696 of #1",
        "0 sets consent=v241 of #6",
        "0 deletes #1",
        "2 deletes #5",
        "1 untags #1 t0",
        "0 sets consent=v19 of #0",
        "0 syncs stick 0",
        "1 creates #7",
        "1 deletes #1",
        "0 tags #3 t2",
        "0 sets narrative=v510 of #2",
        "1 creates #8",
    ]

    /// A seed picks the same steps on every run: run twice, and in any process (against the steps recorded when the
    /// test was written), it makes the same choices (which replica, which record, which field, which value) and ends
    /// in a state with the same visible content.
    @Test func aSeedReplaysExactlyTheSameSteps() async throws {
        let seed: UInt64 = 1003
        let first = try await Self.randomSteps(seed: seed, in: try TemporaryDirectory())
        let second = try await Self.randomSteps(seed: seed, in: try TemporaryDirectory())
        #expect(first.trace == Self.seed1003Steps, "seed \(seed) replayed differently: \(first.trace)")
        #expect(first.trace == second.trace, "seed \(seed) replayed differently")
        #expect(first.trace.filter { $0.contains("syncs") }.count > 0 && first.trace.contains { $0.contains("sets") })
        let contents = { (vault: Vault) throws -> [String] in
            try vault.visibleRecords().map { "\($0.kind) \($0.fields.sorted { $0.key < $1.key }) \($0.tags.sorted())" }
                .sorted()
        }
        for (a, b) in zip(first.team, second.team) { #expect(try contents(a) == contents(b)) }
        let other = try await Self.randomSteps(seed: seed + 1, in: try TemporaryDirectory())
        #expect(other.trace != first.trace, "another seed makes other choices")
    }

    @Test(arguments: regressionSeeds + randomSeeds)
    func threeReplicasConvergeThroughSyncFiles(seed: UInt64) async throws {
        let dir = try TemporaryDirectory()
        let (team, knownIDs, _) = try await Self.randomSteps(seed: seed, in: dir)
        // Final full exchange: everyone through one stick, twice around.
        let final = dir.path("final.sync")
        for _ in 0..<2 { for vault in team { try await fileSync(vault, final) } }

        let digests = try team.map { Hex.encode(try $0.status().stateDigest) }
        #expect(Set(digests).count == 1, "seed \(seed): digests differ \(digests)")
        let lists = try team.map { try $0.visibleRecords() }
        #expect(lists[0] == lists[1] && lists[1] == lists[2], "seed \(seed): lists differ")
        let changeCounts = try team.map { try $0.changeCount() }
        #expect(Set(changeCounts).count == 1, "seed \(seed): change counts differ \(changeCounts)")
        for vault in team { #expect(try vault.verify().problems == [], "seed \(seed)") }
        // Nothing was lost: every record ever created is known to every replica (visible or deleted).
        for vault in team {
            let ids = Set(try vault.allStates().map(\.id))
            #expect(ids.isSuperset(of: knownIDs), "seed \(seed): a replica lost a record")
        }
    }

    @Test func concurrentEditsConflictEverywhereAndOneResolveClearsThemEverywhere() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let stick = dir.path("stick.sync")
        let id = try team[0].createRecord(kind: "testimony", fields: [("location", "Kabul")], tags: [], seal: true)
        for vault in team + team { try await fileSync(vault, stick) }
        // Offline, all three edit the same field.
        for (i, vault) in team.enumerated() {
            try vault.commit(record: id) { s in [s!.setOperation(field: "location", value: "place \(i)")] }
        }
        for vault in team + team { try await fileSync(vault, stick) }
        for vault in team {
            let view = try #require(try vault.visibleRecords().first)
            #expect(
                Set([view.fields["location"]!] + view.conflicts["location", default: []]) == [
                    "place 0", "place 1", "place 2",
                ])
        }
        try team[1].commit(record: id) { s in [s!.setOperation(field: "location", value: "place 1")] }
        for vault in team + team { try await fileSync(vault, stick) }
        for vault in team {
            let view = try #require(try vault.visibleRecords().first)
            #expect(view.fields["location"] == "place 1")
            #expect(view.conflicts.isEmpty)
        }
    }

    @Test func anEditConcurrentWithADeleteKeepsTheRecordEverywhere() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let stick = dir.path("stick.sync")
        let id = try team[0].createRecord(kind: "statement", fields: [("title", "t")], tags: [], seal: false)
        for vault in team { try await fileSync(vault, stick) }
        try team[0].commit(record: id) { s in [s!.deleteOperation()] }
        try team[1].commit(record: id) { s in [s!.setOperation(field: "title", value: "kept")] }
        for vault in team + team { try await fileSync(vault, stick) }
        for vault in team { #expect(try vault.visibleRecords().map(\.fields) == [["title": "kept"]]) }
    }

    @Test func syncingAgainMovesNothingAndSmallBatchesGiveTheSameResult() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        for i in 0..<25 {
            _ = try team[0].createRecord(kind: "statement", fields: [("title", "s\(i)")], tags: [], seal: false)
        }
        let stick = dir.path("stick.sync")
        // team[0]'s log also holds its two membership entries: founding the vault and inviting team[1].
        let first = try await fileSync(team[0], stick, batchSize: 7)
        #expect(first.pushed == 25 + 2)
        let pulled = try await fileSync(team[1], stick, batchSize: 7)
        #expect(pulled.pulled == 25 + 2)
        let again = try await fileSync(team[1], stick, batchSize: 7)
        #expect(again.pulled == 0 && again.pushed == 0)
        #expect(try team[0].status().stateDigest == team[1].status().stateDigest)
    }
}
