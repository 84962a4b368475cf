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
        let file = dir.path("a.bin")
        try Data(media).write(to: file)
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var source = FileDescriptorSource(fd: handle.fileDescriptor, name: file.path)
        let stored = try vault.storeFile(from: &source, name: "a.bin", note: "")
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
        let file = dir.path("a.bin")
        try Data(media).write(to: file)
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var source = FileDescriptorSource(fd: handle.fileDescriptor, name: file.path)
        let stored = try a.storeFile(from: &source, name: "a.bin", note: "")
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
}
