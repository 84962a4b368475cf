import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@Suite struct ChunkPushTests {
    /// A member signs a second `attach` that lists the first attachment's good chunk under another key epoch (the
    /// vault's key was rotated when a member was revoked). That attachment cannot open the chunk, but the chunk is
    /// whole on its own terms: a sync still sends it, so the first attachment reaches the carrier, and nothing is
    /// set aside. Only a chunk damaged on its own terms stays. Another member pulling it stores it, and never asks
    /// the carrier to drop it.
    @Test func aGoodChunkListedWrongByAnotherAttachmentIsStillSent() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let vault = team[0]
        let record = try vault.createRecord(kind: "testimony", fields: [("witness", "W-1")], tags: [], seal: false)
        let media = Sodium.randomBytes(10_000)
        let stored = try vault.storeTestFile(media, name: "a.bin", in: dir)
        _ = try vault.attach(record: record, spec: stored.spec)
        let address = try #require(stored.spec.chunks.first)
        for member in [team[1], team[2], vault] { try await fileSync(member, dir.path("join.sync")) }
        try vault.revoke(team[1].deviceID)
        let epochs = vault.allKeys.map(\.epoch)
        let other = try #require(epochs.first { $0 != stored.spec.epoch }, "no second key epoch: \(epochs)")
        var wrong = stored.spec
        wrong.epoch = other
        wrong.name = "b.bin"
        _ = try vault.attach(record: record, spec: wrong)

        let stick = dir.path("team.amanat-sync")
        let carrier = try FileCarrier(url: stick, vaultID: vault.vaultID)
        _ = try await SyncSession(vault: vault, carrier: carrier).run()
        let report = try await ChunkSync(vault: vault, carrier: carrier).run()
        #expect(report.pushed == 1 && report.damaged == 0, "\(report)")
        #expect(carrier.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead))
        #expect(vault.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead), "the chunk stays in place")

        // A third member pulls it: whichever listing it checks it against, the chunk is whole on its own terms, so
        // it is stored (the first attachment is complete there), and the carrier is never asked to drop it.
        let third = team[2]
        _ = try await SyncSession(vault: third, carrier: carrier).run()
        let pulled = try await ChunkSync(vault: third, carrier: carrier).run()
        #expect(pulled.pulled == 1 && pulled.refused == 0 && pulled.discardedOnCarrier == 0, "\(pulled)")
        #expect(third.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead))
        #expect(carrier.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead))
        let first = try #require(try third.resolveRecord(record.hex).attachments.first { $0.name == "a.bin" })
        var out: [UInt8] = []
        try third.extract(first, record: record) { out += $0 }
        #expect(out == media)
    }

    /// A hostile member signs an `attach` listing another attachment's chunk with another length: a member pulling
    /// asks the carrier at every length listed, so the chunk still reaches it and the first attachment is complete
    /// there; the hostile listing stays incomplete (its own check fails), and nothing is set aside.
    @Test func aListingOfAnotherLengthDoesNotHideAChunkFromAMemberPullingIt() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, hostile, third) = (team[0], team[1], team[2])
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-2")], tags: [], seal: false)
        let media = Sodium.randomBytes(10_000)
        let stored = try a.storeTestFile(media, name: "a.bin", in: dir)
        _ = try a.attach(record: record, spec: stored.spec)
        let address = try #require(stored.spec.chunks.first)
        let stick = dir.path("team.amanat-sync")
        let carrier = try FileCarrier(url: stick, vaultID: a.vaultID)
        _ = try await SyncSession(vault: a, carrier: carrier).run()
        #expect(try await ChunkSync(vault: a, carrier: carrier).run().pushed == 1)

        _ = try await SyncSession(vault: hostile, carrier: carrier).run()
        var wrong = stored.spec
        wrong.size = 5_000
        wrong.name = "b.bin"
        _ = try hostile.attach(record: record, spec: wrong)
        _ = try await SyncSession(vault: hostile, carrier: carrier).run()

        _ = try await SyncSession(vault: third, carrier: carrier).run()
        #expect(try third.resolveRecord(record.hex).attachments.count == 2)
        let pulled = try await ChunkSync(vault: third, carrier: carrier).run()
        #expect(pulled.pulled == 1 && pulled.refused == 0 && pulled.discardedOnCarrier == 0, "\(pulled)")
        // Said as `status` says it: the hostile listing's attachment lacks its chunk of 5000 bytes, and only it.
        #expect(pulled.incompleteAttachments == 1 && pulled.missingChunks == 1 && pulled.missingBytes == 5_000)
        #expect(carrier.chunkStore.has(address, sealedLength: 10_000 + ChunkKeys.overhead))
        let first = try #require(try third.resolveRecord(record.hex).attachments.first { $0.name == "a.bin" })
        var out: [UInt8] = []
        try third.extract(first, record: record) { out += $0 }
        #expect(out == media)
        // A sync again moves nothing: the chunk is held here at one of its listed lengths.
        let again = try await ChunkSync(vault: third, carrier: carrier).run()
        #expect(again.pulled == 0 && again.pushed == 0 && again.refused == 0, "\(again)")
    }

    /// A read-only stick holding two damaged copies: both are refused, neither is moved, and the stick is asked to set
    /// one aside only once in the sync (a carrier that could not is not asked again: over a relay that does not
    /// answer, each question would cost up to 30 s).
    @Test func aCarrierThatCannotSetACopyAsideIsAskedOncePerSync() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-3")], tags: [], seal: false)
        let stored = try a.storeTestFile(
            Sodium.randomBytes(3 * Int(AttachmentSpec.defaultChunkSize)), name: "a.bin", in: dir)
        _ = try a.attach(record: record, spec: stored.spec)
        let stick = dir.path("team.amanat-sync")
        let writable = try FileCarrier(url: stick, vaultID: a.vaultID)
        _ = try await SyncSession(vault: a, carrier: writable).run()
        #expect(try await ChunkSync(vault: a, carrier: writable).run().pushed == 3)
        _ = try await SyncSession(vault: b, carrier: writable).run()
        var damaged: [URL: Data] = [:]
        for address in stored.spec.chunks.prefix(2) {
            let url = writable.chunkStore.url(for: address)
            var bytes = try Data(contentsOf: url)
            bytes[bytes.count / 2] ^= 0x08
            try bytes.write(to: url)
            damaged[url] = bytes
        }

        let counting = DiscardCountingCarrier(try FileCarrier(url: stick, vaultID: a.vaultID, readOnly: true))
        let report = try await ChunkSync(vault: b, carrier: counting).run()
        #expect(report.pulled == 1 && report.refused == 2 && report.discardedOnCarrier == 0, "\(report)")
        #expect(counting.discardRequests == 1)
        for (url, bytes) in damaged { #expect(try Data(contentsOf: url) == bytes, "a read-only stick was changed") }
        #expect(writable.chunkStore.setAsideCount() == 0)
    }
}

/// A real carrier with its requests to set a copy aside counted.
final class DiscardCountingCarrier: ChunkCarrier, @unchecked Sendable {
    // @unchecked Sendable: one sync at a time uses it; the count is guarded by `lock`.
    let inner: any ChunkCarrier
    private let lock = NSLock()
    private var discards = 0

    init(_ inner: any ChunkCarrier) { self.inner = inner }

    /// How many times the sync asked to set a copy aside.
    var discardRequests: Int { lock.withLock { discards } }

    func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]> { try await inner.heldChunks(chunks) }
    func chunk(_ address: [UInt8]) async throws -> [UInt8]? { try await inner.chunk(address) }
    func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws {
        try await inner.storeChunk(address, sealed: sealed)
    }
    func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool {
        lock.withLock { discards += 1 }
        return await inner.discardDamaged(address, copy: copy)
    }
}
