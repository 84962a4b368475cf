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

/// A real relay on loopback enforcing the vault's membership log (Protocol/membership.md §10, http-api.md §3).
@Suite struct RelayMembershipTests {
    @Test(arguments: RelayStorageKind.allCases)
    func aRevokedDeviceIsRefusedByTheRelayAndItsLaterChangesAreNeverStored(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(3, in: dir)
        let (coordinator, revoked, offline) = (team[0], team[1], team[2])
        for vault in team + team { try await relaySync(vault, relay.url) }
        let store = relay.storage

        // The revoked laptop writes while it does not know yet; the coordinator revokes it first.
        try coordinator.revoke(revoked.deviceID)
        _ = try revoked.createRecord(kind: "statement", fields: [("title", "after the cut")], tags: [], seal: false)
        try await relaySync(coordinator, relay.url)
        let before = try await store.count(vaultID: coordinator.vaultID)

        // Every request of the revoked device is refused with 403, reads and writes alike.
        await #expect {
            _ = try await relaySync(revoked, relay.url, options: testOptions(attempts: 1))
        } throws: { ($0 as? RelayClientError)?.code == .forbidden }
        let client = RelayHTTPClient(baseURL: relay.url)
        defer { Task { await client.shutdown() } }
        let vaultPath = "/v1/vaults/\(Hex.encode(coordinator.vaultID))"
        let read = try await client.sendSigned(
            "GET", vaultPath + "/vector", key: revoked.relaySigningKey, device: revoked.keyring.device)
        #expect(read.status == 403 && read.errorMessage?.contains("revoked") == true)
        // Without naming its device, it is refused too, once the relay holds a revocation.
        let anonymous = try await client.sendSigned("GET", vaultPath + "/vector", key: revoked.relaySigningKey)
        #expect(anonymous.status == 401)

        // Even an honest member forwarding the revoked device's later change cannot get it stored.
        let later = try revoked.envelopes(of: revoked.deviceID, after: 0, limit: 100)
        let forwarded = try await client.sendSigned(
            "POST", vaultPath + "/envelopes", key: coordinator.relaySigningKey,
            body: RelayWire.encodeEnvelopeList(later.map { $0.encoded() }), device: coordinator.keyring.device)
        #expect(forwarded.status == 200)
        #expect(try await store.count(vaultID: coordinator.vaultID) == before, "nothing after the cut is stored")

        // The member who was away receives the revocation and the new key through the relay, and reads what
        // the coordinator writes after it.
        let after = try coordinator.createRecord(
            kind: "testimony", fields: [("witness", "W-NEW"), ("narrative", "written after the revocation")], tags: [],
            seal: true)
        try await relaySync(coordinator, relay.url)
        try await relaySync(offline, relay.url)
        #expect(try offline.resolveRecord(after.hex).view?.fields["narrative"] == "written after the revocation")
        #expect(try offline.status().stateDigest == coordinator.status().stateDigest)
        #expect(offline.membership.members[revoked.deviceID]?.isRevoked == true)

        // The relay still holds exactly one registered key, and the members keep syncing.
        #expect(try await store.registeredKey(of: coordinator.vaultID) == coordinator.relaySigningKey.publicKey)
        _ = try offline.createRecord(kind: "statement", fields: [("title", "still syncing")], tags: [], seal: false)
        try await relaySync(offline, relay.url)
        try await relaySync(coordinator, relay.url)
        #expect(try coordinator.status().stateDigest == offline.status().stateDigest)
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func theRelayDoesNotStoreChangesOfADeviceNobodyAdmitted(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        try await relaySync(team[0], relay.url)
        // A device minted from a copied vault key: a keyring that no invitation admitted.
        let minted = SigningKeyPair.generate()
        let change = Change(
            record: RecordID.derived(author: try DeviceID(minted.publicKey), seq: 1),
            timestamp: HLCTimestamp(wallMillis: 1, counter: 0),
            operations: [.create(kind: "statement"), .set(field: "title", value: "planted", pred: [])])
        let envelope = try Envelope.seal(
            change, vaultID: team[0].vaultID, key: try #require(team[0].key(epoch: 1)), signer: minted, seq: 1,
            previousHash: ChainHead.empty.hash)
        let store = relay.storage
        let before = try await store.count(vaultID: team[0].vaultID)
        let client = RelayHTTPClient(baseURL: relay.url)
        defer { Task { await client.shutdown() } }
        let answer = try await client.sendSigned(
            "POST", "/v1/vaults/\(Hex.encode(team[0].vaultID))/envelopes", key: team[0].relaySigningKey,
            body: RelayWire.encodeEnvelopeList([envelope.encoded()]), device: minted)
        #expect(answer.status == 200)
        #expect(try await store.count(vaultID: team[0].vaultID) == before)
        try await relaySync(team[1], relay.url)
        #expect(try team[1].visibleRecords().allSatisfy { $0.fields["title"] != "planted" })
        await relay.stop()
    }
}
