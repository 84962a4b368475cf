import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import AmanatWire
import Foundation
import Testing

/// Two relay processes' worth of relays (each its own server and connection pool) over one PostgreSQL database,
/// with nothing shared but the database (Protocol/relay-postgres.md §3).
@Suite struct MultiRelayTests {
    /// Two relays over one new database.
    func twoRelays(_ dir: TemporaryDirectory) async throws -> (TestStorage, TestRelay, TestRelay) {
        let spec = try testStorage(.postgres, dir.path("relay"))
        let first = try await TestRelay.start(spec)
        do {
            return (spec, first, try await TestRelay.start(spec))
        } catch {
            await first.stop()
            throw error
        }
    }

    @Test(arguments: [UInt64(21), 22])
    func threeReplicasConvergeThroughTwoRelaysAndTheDumpHoldsNoPlaintext(seed: UInt64) async throws {
        let dir = try TemporaryDirectory()
        let (spec, a, b) = try await twoRelays(dir)
        let team = try makeTeam(3, in: dir)
        let urls = [a.url, b.url]
        var rng = SeededGenerator(seed: seed)
        var known: [RecordID] = []
        var syncs = 0
        let steps = RelaySyncTests()
        for _ in 0..<40 {
            let vault = team[Int.random(in: 0..<3, using: &rng)]
            let batch = [1, 2, 1000].randomElement(using: &rng) ?? 1000
            let url = urls[syncs % 2]
            try await steps.randomStep(vault, rng: &rng, known: &known) {
                syncs += 1
                try await relaySync(vault, url, batchSize: batch)
            }
        }
        // A known secret, then two rounds that alternate relays between syncs.
        known.append(
            try team[0].createRecord(
                kind: "testimony",
                fields: [("witness", "W-PG-SECRET-5150"), ("narrative", "taken from Herat at night")],
                tags: ["pgsecret"], seal: true))
        for round in 0..<2 {
            for (index, vault) in team.enumerated() { try await relaySync(vault, urls[(index + round) % 2]) }
        }
        try steps.expectConverged(team, known: known, "seed \(seed)")
        #expect(try await a.storage.count(vaultID: team[0].vaultID) == b.storage.count(vaultID: team[0].vaultID))
        await a.stop()
        await b.stop()

        let secrets: [(String, [UInt8])] = [
            ("witness", Array("W-PG-SECRET-5150".utf8)), ("narrative", Array("taken from Herat".utf8)),
            ("tag", Array("pgsecret".utf8)), ("vault key", team[0].keyring.currentKey.root.copyBytes()),
            ("relay seed", team[0].relaySigningKey.seed.copyBytes()),
        ]
        let dump = try #require(try spec.rawContents().first)
        #expect(dump.bytes.count > 10_000, "the dump holds the ciphertext")
        for (name, secret) in secrets {
            #expect(dump.bytes.range(of: Data(secret)) == nil, "\(name) found in the dump")
            #expect(dump.bytes.range(of: Data(Hex.encode(secret).utf8)) == nil, "\(name) found in hex in the dump")
        }
    }

    @Test func aForkPushedToBothRelaysAtOnceStoresOneChainAndTheOtherIsRefusedWith409() async throws {
        let dir = try TemporaryDirectory()
        let (_, a, b) = try await twoRelays(dir)
        let rounds = try await raceAFork(urls: [a.url, b.url], in: dir)
        await a.stop()
        await b.stop()
        let problems = oneChainProblems(rounds)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test func aNonceReplayedToTheOtherRelayIsRefusedWith401() async throws {
        let dir = try TemporaryDirectory()
        let (_, a, b) = try await twoRelays(dir)
        let replays = try await replayANonce(urls: [a.url, b.url], in: dir)
        await a.stop()
        await b.stop()
        #expect(replays.problems.isEmpty, "\(replays.problems)")
    }
}
