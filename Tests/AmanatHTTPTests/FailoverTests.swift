import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// `amanat sync URL1 URL2`: a sync through several relays over one database goes on through the next relay when one
/// dies (``FailoverCarrier``).
@Suite struct FailoverTests {
    @Test func oneRelayKilledDuringALargeSyncTheClientFinishesThroughTheOther() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let a = try await TestRelay.start(spec)
        let b = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        try team[0].commitBatch(
            (0..<5000).map { i in (nil, [.create(kind: "statement"), .set(field: "title", value: "s\(i)", pred: [])]) })
        let total = try team[0].changeCount()  // 5000 records and the two membership entries

        // Push in batches of 100 through relay a, which is stopped for good a third of the way.
        let progress = Counter()
        let pushPause = SyncPause(at: 1500)
        let pusher = failoverSync(team[0].directory, [a.url, b.url], progress: progress, pause: pushPause)
        #expect(await pushPause.reached(), "the sync did not reach 1500 changes")
        await a.stop()
        pushPause.release()
        let (pushed, pushFailovers) = try await pusher.value
        #expect(pushFailovers == [b.url], "the sync went on through b")
        #expect(pushed.pushed <= total)
        #expect(try await b.storage.count(vaultID: team[0].vaultID) == total, "nothing lost, nothing twice")
        #expect(try await b.storage.versionVector(vaultID: team[0].vaultID) == team[0].versionVector())

        // Pull into the second replica through a new relay c, stopped in the middle too; b finishes.
        let c = try await TestRelay.start(spec)
        progress.set(0)
        let pullPause = SyncPause(at: 2000)
        let puller = failoverSync(team[1].directory, [c.url, b.url], progress: progress, pause: pullPause)
        #expect(await pullPause.reached(), "the sync did not reach 2000 changes")
        await c.stop()
        pullPause.release()
        let (pulled, pullFailovers) = try await puller.value
        #expect(pullFailovers == [b.url])
        #expect(pulled.pulled <= total)

        // The result is that of a sync without failure: the same state, the same changes, all verified, and the
        // relay holds each envelope once.
        let again = try Vault.open(at: team[1].directory, passphrase: passphrase)
        #expect(try again.changeCount() == total + 1, "and its own join")
        #expect(try again.status().stateDigest == team[0].status().stateDigest)
        #expect(try again.verify().problems == [])
        try await relaySync(team[0], b.url)
        try await relaySync(again, b.url)
        #expect(try again.status().stateDigest == team[0].status().stateDigest)
        #expect(try await b.storage.count(vaultID: team[0].vaultID) == total + 1)
        await b.stop()
    }

    @Test func aRefusalIsNotAFailoverAndNoRelayAtAllIsOneSentence() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.sqlite, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(1, in: dir)
        let stranger = SigningKeyPair.generate()
        // A relay that cannot be reached, then one that answers: the sync goes on through the second.
        let dead = "http://127.0.0.1:\(try PostgresTestServer.freePort())"
        let report = try await FailoverCarrier.with(
            urls: [dead, relay.url], vaultID: team[0].vaultID, key: team[0].relaySigningKey,
            options: testOptions(attempts: 1)
        ) { carrier in
            let report = try await ExchangeSession(vault: team[0], carrier: carrier).run()
            #expect(carrier.failovers.map(\.to) == [relay.url])
            #expect(carrier.name == relay.url)
            return report
        }
        #expect(report.pushed > 0)
        // A refusal (a key that is not the vault's: 403) is the same from every relay: no failover to the dead one.
        await #expect {
            try await FailoverCarrier.with(
                urls: [relay.url, dead], vaultID: team[0].vaultID, key: stranger, options: testOptions(attempts: 1)
            ) { carrier in
                _ = try await carrier.versionVector()
            }
        } throws: { ($0 as? RelayClientError)?.code == .forbidden }
        // No relay answers: one sentence naming them all.
        await relay.stop()
        do {
            try await FailoverCarrier.with(
                urls: [dead, relay.url], vaultID: team[0].vaultID, key: team[0].relaySigningKey,
                options: testOptions(attempts: 1)
            ) { carrier in
                _ = try await carrier.versionVector()
            }
            Issue.record("a sync with no relay answering succeeded")
        } catch let error as RelayClientError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("None of the 2 relays"), "\(error.message)")
        }
    }
}
