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
    /// set aside. Only a chunk damaged on its own terms stays.
    @Test func aGoodChunkListedWrongByAnotherAttachmentIsStillSent() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
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
        for member in [team[1], vault] { try await fileSync(member, dir.path("join.sync")) }
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
    }
}
