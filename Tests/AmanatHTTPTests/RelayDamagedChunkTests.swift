import AmanatCore
import AmanatCrypto
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatHTTP

/// A relay's copy of a chunk damaged after it stored it (its disk, or a member's broken device that sent it): the
/// relay says it holds the address, so nobody would send the good copy again. A member that fetches it and finds it
/// damaged on its own terms asks the relay to set that copy aside (Protocol/http-api.md §10, attachments.md §8).
@Suite struct RelayDamagedChunkTests {
    /// Flips one bit of the relay's stored copy of `address`, keeping its length: in its chunk files, or in its
    /// database's row.
    static func damage(_ spec: TestStorage, vaultID: [UInt8], address: [UInt8]) throws {
        if let location = spec.location {
            let changed = try PostgresTestServer.shared.get().psql(
                "UPDATE relay_chunk SET sealed = set_byte(sealed, 100, get_byte(sealed, 100) # 16) "
                    + "WHERE address = '\\x\(Hex.encode(address))' RETURNING length(sealed)",
                database: location.database)
            #expect(changed.contains("(1 row)"), "\(changed)")
        } else {
            let store = ChunkStore(root: spec.data.appendingPathComponent(Hex.encode(vaultID) + ".chunks"))
            var bytes = try Data(contentsOf: store.url(for: address))
            bytes[100] ^= 0x10
            try bytes.write(to: store.url(for: address))
        }
    }

    /// How many copies the relay holds set aside.
    static func setAsideCopies(_ spec: TestStorage, vaultID: [UInt8]) throws -> Int {
        if let location = spec.location {
            let rows = try PostgresTestServer.shared.get().psql(
                "SELECT 'copies=' || count(*) FROM relay_chunk_damaged", database: location.database)
            return rows.split(separator: "\n").lazy.compactMap { line in
                line.trimmingCharacters(in: .whitespaces).hasPrefix("copies=")
                    ? Int(line.trimmingCharacters(in: .whitespaces).dropFirst("copies=".count)) : nil
            }.first ?? -1
        }
        return ChunkStore(root: spec.data.appendingPathComponent(Hex.encode(vaultID) + ".chunks")).setAsideCount()
    }

    static func chunkSync(_ vault: Vault, _ url: String) async throws -> ChunkSyncReport {
        try await HTTPCarrier.with(
            url: url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
            options: testOptions()
        ) { try await ChunkSync(vault: vault, carrier: $0).run() }
    }

    /// A hostile member, with the relay key, through the relay's own routes: it says the good copy is damaged, sends
    /// junk of another length under the address, and says the junk is damaged too. Nothing is destroyed: both copies
    /// are kept aside (and counted), and the holder's next sync serves the chunk again.
    @Test(arguments: RelayStorageKind.allCases)
    func aHostileMemberCanMakeAChunkTravelAgainButNeverDestroyIt(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        let (a, hostile) = (team[0], team[1])
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-32")], tags: [], seal: false)
        let stored = try a.storeTestFile(Sodium.randomBytes(40_000), name: "photo.bin", in: dir)
        _ = try a.attach(record: record, spec: stored.spec)
        try await relaySync(a, relay.url)
        #expect(try await Self.chunkSync(a, relay.url).pushed == 1)
        let address = try #require(stored.spec.chunks.first)
        let good = try #require(try a.chunkStore.read(address))
        let held = try await relay.storage.totals().chunkBytes

        try await relaySync(hostile, relay.url)
        let junk = Array(good.prefix(ChunkKeys.headerLength)) + Sodium.randomBytes(1000)
        try await HTTPCarrier.with(
            url: relay.url, vaultID: hostile.vaultID, key: hostile.relaySigningKey, device: hostile.keyring.device,
            options: testOptions()
        ) { carrier in
            #expect(await carrier.discardDamaged(address, copy: good), "the relay did not take the member's word")
            try await carrier.storeChunk(address, sealed: junk)
            #expect(try await carrier.chunk(address) == junk)
            #expect(await carrier.discardDamaged(address, copy: junk))
            // Junk of another length over a copy held: the held one is set aside, not replaced.
            try await carrier.storeChunk(address, sealed: junk)
            try await carrier.storeChunk(address, sealed: junk + [0])
        }
        #expect(try Self.setAsideCopies(spec, vaultID: a.vaultID) == 2)
        let kept = try await relay.storage.totals().chunkBytes
        #expect(kept == held + 2 * UInt64(junk.count) + 1, "every copy set aside still counts")

        // The holder's next sync sends the chunk again (the relay holds another length), and a member gets it.
        #expect(try await Self.chunkSync(a, relay.url).pushed == 1)
        #expect(try await relay.storage.readChunk(vaultID: a.vaultID, address: address) == good)
        #expect(try Self.setAsideCopies(spec, vaultID: a.vaultID) == 3)
        #expect(try RelayQuotaTests.countsAgree(spec), "a copy moved aside is still counted, once")
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aCopyDamagedOnTheRelayIsDroppedWhenAMemberFindsItAndTheGoodCopyTravelsAgain(_ kind: RelayStorageKind)
        async throws
    {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-31")], tags: [], seal: false)
        let media = Sodium.randomBytes(2 * 1_048_576 + 5)
        let stored = try a.storeTestFile(media, name: "video.bin", in: dir)
        let info = try a.attach(record: record, spec: stored.spec)
        try await relaySync(a, relay.url)
        #expect(try await Self.chunkSync(a, relay.url).pushed == 3)
        let addresses = try a.chunkAddresses(of: info)
        let bytesHeld = try await relay.storage.totals().chunkBytes
        try Self.damage(spec, vaultID: a.vaultID, address: addresses[1])

        // B fetches the three chunks: the damaged one is refused, and the relay drops that copy when asked.
        try await relaySync(b, relay.url)
        let first = try await Self.chunkSync(b, relay.url)
        #expect(first.pulled == 2 && first.refused == 1 && first.discardedOnCarrier == 1, "\(first)")
        #expect(first.missingChunks == 1)
        #expect(try await relay.storage.readChunk(vaultID: a.vaultID, address: addresses[1]) == nil)
        // Set aside, not destroyed (the relay may hold the only copy, on a member's word): its bytes are kept, and
        // they still count.
        #expect(try Self.setAsideCopies(spec, vaultID: a.vaultID) == 1)
        #expect(try await relay.storage.totals().chunkBytes == bytesHeld)

        // A, who holds the good copy, sends it again at its next sync; B gets it, and the media is whole.
        #expect(try await Self.chunkSync(a, relay.url).pushed == 1)
        let chunkLength = UInt64(try #require(try a.chunkStore.read(addresses[1])).count)
        #expect(try await relay.storage.totals().chunkBytes == bytesHeld + chunkLength)
        let healed = try await Self.chunkSync(b, relay.url)
        #expect(healed.pulled == 1 && healed.refused == 0 && healed.missingChunks == 0, "\(healed)")
        var out: [UInt8] = []
        let state = try b.resolveRecord(record.hex)
        try b.extract(try #require(state.attachments.first), record: record) { out += $0 }
        #expect(out == media)

        // Only the bytes a member saw go: another SHA-256 removes nothing, and a body that is not one is a 400.
        let held = try #require(try await relay.storage.readChunk(vaultID: a.vaultID, address: addresses[0]))
        #expect(
            try await !relay.storage.discardDamagedChunk(
                vaultID: a.vaultID, address: addresses[0], sha256: SHA256.hash(held + [0])))
        #expect(try await relay.storage.readChunk(vaultID: a.vaultID, address: addresses[0]) == held)
        let path = "/chunks/" + Hex.encode(addresses[0]) + "/damaged"
        try await HTTPCarrier.with(
            url: relay.url, vaultID: a.vaultID, key: a.relaySigningKey, device: a.keyring.device,
            options: testOptions()
        ) { carrier in
            do {
                _ = try await carrier.exchangeRaw(
                    "POST", carrier.vaultPath + path, body: Array(repeating: 0, count: 31))
                Issue.record("a body of 31 bytes was taken")
            } catch let error as RelayClientError {
                #expect(error.message.contains("32-byte SHA-256"), "\(error.message)")
            }
        }
        #expect(try await relay.storage.readChunk(vaultID: a.vaultID, address: addresses[0]) == held)
        await relay.stop()
    }
}
