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
        let clients = [RelayHTTPClient(baseURL: a.url), RelayHTTPClient(baseURL: b.url)]
        let team = try makeTeam(1, in: dir)
        let original = team[0]
        _ = try original.createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
        try await relaySync(original, a.url)
        let base = "/v1/vaults/\(Hex.encode(original.vaultID))/envelopes"
        // Several rounds: in each, a cloned laptop and the original sign a different change with the same number, and
        // the two are pushed to the two relays at the same moment.
        for round in 0..<4 {
            let clone = try cloneVault(original, to: dir.path("clone\(round)"))
            let held = try #require(try original.versionVector()[original.deviceID]).seq
            _ = try original.createRecord(kind: "statement", fields: [("title", "o\(round)")], tags: [], seal: false)
            _ = try clone.createRecord(kind: "statement", fields: [("title", "c\(round)")], tags: [], seal: false)
            let mine = try original.envelopes(of: original.deviceID, after: held, limit: 10)
            let theirs = try clone.envelopes(of: clone.deviceID, after: held, limit: 10)
            #expect(mine.count == 1 && theirs.count == 1 && mine[0].hash != theirs[0].hash)
            let bodies = [mine, theirs].map { RelayWire.encodeEnvelopeList($0.map { $0.encoded() }) }
            let key = original.relaySigningKey
            let first = round % 2
            let statuses = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for side in 0..<2 {
                    let client = clients[(side + first) % 2]
                    let body = bodies[side]
                    group.addTask { (side, try await client.sendSigned("POST", base, key: key, body: body).status) }
                }
                var statuses = [0, 0]
                for try await (side, status) in group { statuses[side] = status }
                return statuses
            }
            #expect(statuses.sorted() == [200, 409], "round \(round): \(statuses)")
            let winner = statuses[0] == 200 ? mine[0] : theirs[0]
            for relay in [a, b] {
                let vector = try await relay.storage.versionVector(vaultID: original.vaultID)
                #expect(vector[original.deviceID] == ChainHead(seq: winner.header.seq, hash: winner.hash))
            }
            // When the clone's chain won, the original is the forked replica: the rounds end there.
            if statuses[0] != 200 { break }
        }
        for client in clients { await client.shutdown() }
        await a.stop()
        await b.stop()
    }

    @Test func aNonceReplayedToTheOtherRelayIsRefusedWith401() async throws {
        let dir = try TemporaryDirectory()
        let (_, a, b) = try await twoRelays(dir)
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
        try await relaySync(team[0], a.url)
        let clients = [RelayHTTPClient(baseURL: a.url), RelayHTTPClient(baseURL: b.url)]
        let vector = "/v1/vaults/\(Hex.encode(team[0].vaultID))/vector"
        let key = team[1].relaySigningKey
        for (first, second) in [(0, 1), (1, 0)] {
            let headers = RelayHTTPClient.signedHeaders(key: key, method: "GET", path: vector, body: [])
            #expect(try await clients[first].send("GET", vector, headers: headers).status == 200)
            let replay = try await clients[second].send("GET", vector, headers: headers)
            #expect(replay.status == 401)
            #expect(replay.errorMessage?.contains("replayed") == true, "\(replay.errorMessage ?? "")")
        }
        // A push replayed to the other relay changes nothing either.
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "second")], tags: [], seal: false)
        let pushPath = "/v1/vaults/\(Hex.encode(team[0].vaultID))/envelopes"
        let body = RelayWire.encodeEnvelopeList(
            try team[0].envelopes(of: team[0].deviceID, after: 0, limit: 100).map { $0.encoded() })
        let headers = RelayHTTPClient.signedHeaders(
            key: team[0].relaySigningKey, method: "POST", path: pushPath, body: body)
        #expect(try await clients[0].send("POST", pushPath, headers: headers, body: body).status == 200)
        #expect(try await clients[1].send("POST", pushPath, headers: headers, body: body).status == 401)
        for client in clients { await client.shutdown() }
        await a.stop()
        await b.stop()
    }
}
