import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// A purge reaching a relay over either storage (Protocol/membership.md §12, http-api.md §6): the relay replaces what
/// the purge names by its purged form, removes the record's chunks, stores a named change that arrives later only in
/// purged form, and never stores a destroyed chunk again.
@Suite struct RelayPurgeTests {
    /// 48-byte slices an attacker who stole the storage must not find after the purge.
    struct Traces {
        var slices: [(label: String, bytes: [UInt8])] = []

        mutating func add(_ label: String, _ bytes: ArraySlice<UInt8>) { slices.append((label, Array(bytes))) }

        /// The labels of the slices found in `contents`, as bytes or as hex (a pg_dump writes bytea as hex).
        func found(in contents: [(name: String, bytes: Data)]) -> [String] {
            slices.compactMap { slice in
                let hex = Data(Hex.encode(slice.bytes).utf8)
                let hit = contents.first {
                    $0.bytes.range(of: Data(slice.bytes)) != nil || $0.bytes.range(of: hex) != nil
                }
                return hit.map { "\(slice.label) in \($0.name)" }
            }
        }
    }

    /// Slices of each change of `record` that `vault` holds in full, and of each of its chunks.
    static func traces(of record: RecordID, in vault: Vault, author: DeviceID? = nil) throws -> Traces {
        let state = try vault.resolveRecord(record.hex, includeDeleted: true)
        var traces = Traces()
        for (envelope, _) in try vault.history(of: state) where author == nil || envelope.header.author == author {
            traces.add(
                "change \(envelope.header.seq) of \(envelope.header.author.hex.prefix(8))", envelope.ciphertext[16..<64]
            )
        }
        if author == nil {
            for info in state.allAttachments {
                for address in try vault.chunkAddresses(of: info) {
                    let sealed = try #require(try vault.chunkStore.read(address))
                    traces.add(
                        "chunk \(Hex.encode(address).prefix(8))",
                        sealed.suffix(min(48, sealed.count - ChunkKeys.headerLength)))
                }
            }
        }
        return traces
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aPurgeDestroysTheRelaysCopiesAndALateCopyIsStoredPurged(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let kept = try a.createRecord(kind: "testimony", fields: [("witness", "W-kept")], tags: [], seal: false)
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-77")], tags: [], seal: false)
        let stored = try a.storeTestFile(Sodium.randomBytes(1_048_576 + 5), name: "video.bin", in: dir)
        _ = try a.attach(record: record, spec: stored.spec)
        try await relaySync(a, relay.url)
        _ = try await HTTPCarrier.with(
            url: relay.url, vaultID: a.vaultID, key: a.relaySigningKey, device: a.keyring.device,
            options: testOptions()
        ) { try await ChunkSync(vault: a, carrier: $0).run() }

        // B learns of the record, edits it and hands the edit to A on a stick, not to the relay.
        try await relaySync(b, relay.url)
        let bHead = try #require(try b.versionVector()[b.deviceID])
        try b.commit(record: record) { _ in [.set(field: "location", value: "Herat", pred: [])] }
        let fullEdit = try b.envelopes(of: b.deviceID, after: bHead.seq, limit: 1)
        let stick = dir.path("stick.amanat-sync")
        try await fileSync(b, stick)
        try await fileSync(a, stick)

        let onRelay = try Self.traces(of: record, in: a)
        let lateEdit = try Self.traces(of: record, in: a, author: b.deviceID)
        #expect(onRelay.slices.count == 5, "create, attach, B's edit and two chunks")
        #expect(
            onRelay.found(in: try spec.rawContents()).count == 4,
            "before the purge the relay holds the record's changes and chunks, but not B's edit")
        let chunks = try a.chunkAddresses(of: try #require(try a.resolveRecord(record.hex).attachments.first))
        let sealedChunks = try chunks.map { try #require(try a.chunkStore.read($0)) }

        _ = try a.purge(record: record, reason: "consent withdrawn")
        try await relaySync(a, relay.url)
        #expect(onRelay.found(in: try spec.rawContents()) == [], "the relay kept what the purge destroyed")

        // A pushed B's edit purged (A holds it so); the full copy from before the purge is a duplicate by hash.
        let pushed = try await HTTPCarrier.with(
            url: relay.url, vaultID: b.vaultID, key: b.relaySigningKey, device: b.keyring.device,
            options: testOptions()
        ) { try await $0.push(fullEdit) }
        #expect(pushed == 0)
        try await relaySync(b, relay.url)
        #expect(b.membership.purges.count == 1)
        #expect(lateEdit.found(in: try spec.rawContents()) == [], "the relay stored a named change in full")

        // A second relay learns the purge before the change it names, which arrives in full: stored purged.
        let secondSpec = try testStorage(kind, dir.path("relay2"))
        let second = try await TestRelay.start(secondSpec)
        let aLog = try a.envelopes(of: a.deviceID, after: 0, limit: 1000)
        let bJoin = try b.envelopes(of: b.deviceID, after: 0, limit: Int(bHead.seq))
        let late = try await HTTPCarrier.with(
            url: second.url, vaultID: a.vaultID, key: a.relaySigningKey, device: a.keyring.device,
            options: testOptions()
        ) { carrier in
            #expect(try await carrier.push(aLog + bJoin) == aLog.count + bJoin.count)
            return try await carrier.push(fullEdit)
        }
        #expect(late == 1)
        #expect(lateEdit.found(in: try secondSpec.rawContents()) == [], "the relay stored a named change in full")
        let held = try await second.storage.envelopes(
            vaultID: a.vaultID, author: b.deviceID, after: bHead.seq, limit: 1, byteBudget: 1 << 20)
        #expect(try held.map { try Envelope(decoding: $0).isPurged } == [true])
        await second.stop()

        // B's media phase began before it learned of the purge: the relay refuses the destroyed chunks.
        try await HTTPCarrier.with(
            url: relay.url, vaultID: b.vaultID, key: b.relaySigningKey, device: b.keyring.device,
            options: testOptions()
        ) { carrier in
            for (address, sealed) in zip(chunks, sealedChunks) { try await carrier.storeChunk(address, sealed: sealed) }
            let held = try await carrier.heldChunks(
                zip(chunks, sealedChunks).map { ChunkRef(address: $0, sealedLength: $1.count) })
            #expect(held.isEmpty, "the relay stored a chunk a purge destroyed")
        }
        // The storage's own answer to such an upload (the HTTP answer is 200 {"stored":false} for it and for a
        // chunk already held), and a destroyed chunk is never served.
        for (address, sealed) in zip(chunks, sealedChunks) {
            #expect(
                try await relay.storage.storeChunk(vaultID: a.vaultID, address: address, sealed: sealed, quota: nil)
                    == .purged)
            #expect(try await relay.storage.readChunk(vaultID: a.vaultID, address: address) == nil)
        }
        // A pg_dump shows live rows only: the old row versions a purge leaves until they are overwritten are named in
        // Protocol/relay-postgres.md §4, not checked here.
        #expect(onRelay.found(in: try spec.rawContents()) == [])

        // What is left still verifies and converges: a third replica joins through the relay alone.
        let c = try addMember(to: a, at: dir.path("c"), name: "c")
        try await relaySync(a, relay.url)
        try await relaySync(c, relay.url)
        #expect(try c.allStates().map(\.id) == [kept])
        #expect(try c.status().stateDigest == a.status().stateDigest)
        #expect(try c.verify().problems.isEmpty)
        #expect(try c.verify().withoutContent == 0)
        // The database's per-vault counts of bytes (for --quota) followed the purge's rewrites and removals.
        #expect(try RelayQuotaTests.countsAgree(spec))
        await relay.stop()
    }
}
