import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// One signed envelope whose content does not open must never stop honest syncs through a shared carrier.
@Suite struct PoisonedCarrierTests {
    /// An outsider who knows only the vault id appends an epoch-0 envelope whose plaintext is not an entry.
    @Test func anOutsidersGarbageInASyncFileDoesNotStopHonestSyncs() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let sync = dir.path("team.sync")
        for v in [a, b, a, b] { try await fileSync(v, sync) }
        var outsider = ForgedChain(vaultID: a.vaultID, signer: SigningKeyPair.generate())
        #expect(try writeSyncFile(sync, vaultID: a.vaultID, [try outsider.unreadable(epoch: 0)]) == 1)
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST AFTER POISON")], tags: [], seal: false)
        try await fileSync(b, sync)
        let report = try await fileSync(a, sync)
        #expect(report.keptApart == 1, "kept apart as a stranger's evidence, not applied")
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST AFTER POISON" })
        #expect(try a.verify().problems == [])
    }

    /// A member pushes a record change of the current epoch whose ciphertext does not decrypt, through a relay.
    @Test func aMembersUndecryptableChangeOnARelayDoesNotStopHonestSyncs() async throws {
        let dir = try TemporaryDirectory()
        let relay = try await startRelay(data: dir.path("relay"))
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        for v in [a, b, c, a, b, c] { try await relaySync(v, relay.url) }
        var hostile = ForgedChain(vaultID: c.vaultID, signer: c.keyring.device, head: try ownHead(of: c))
        let junk = try hostile.unreadable(epoch: writingKey(of: c).epoch)
        let pushed = try await HTTPCarrier.with(
            url: relay.url, vaultID: c.vaultID, key: c.relaySigningKey, device: c.keyring.device, options: testOptions()
        ) { try await $0.push([junk]) }
        #expect(pushed == 1, "the relay cannot tell: it cannot decrypt")
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST AFTER POISON")], tags: [], seal: false)
        try await relaySync(b, relay.url)
        try await relaySync(a, relay.url)
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST AFTER POISON" })
        // Kept as the member's signed evidence, never applied, and named by verify without failing it.
        let report = try a.verify()
        #expect(report.problems == [])
        #expect(report.heldBack.contains { $0.device == c.deviceID && $0.reason == .undecryptable })
        #expect(try a.status().stateDigest == b.status().stateDigest)
        await relay.stop()
    }
}
