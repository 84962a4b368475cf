import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// A purge a device cannot read yet still keeps a purged record from coming back out of an older bundle.
@Suite struct PurgeImportTests {
    /// A purge's note is sealed with the key the vault writes with; a member that has not received that key yet
    /// (its grant is on its way) cannot open it, so it does not know the record's id. The envelopes the purge names
    /// are in the clear, though: a bundle exported before the purge, whose kept originals the purge names, must not
    /// bring the record back on that member's laptop.
    @Test func aBundleDoesNotBringBackARecordWhosePurgeThisDeviceCannotOpen() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let file = dir.path("team.sync")
        let id = try a.createRecord(kind: "statement", fields: [("title", "consent withdrawn")], tags: [], seal: false)
        for vault in team + team { try await fileSync(vault, file) }
        let state = try #require(try b.allStates().first { $0.id == id })
        let archive = try BundleExporter.archive(from: b, records: [state], now: Date())

        // a's purge of the record, its note sealed with a key b does not hold.
        let targets = try a.envelopes(of: a.deviceID, after: 0, limit: 1000).filter { !$0.isAuthority }.map {
            PurgeTarget(author: $0.header.author, seq: $0.header.seq, ciphertextHash: $0.ciphertextHash)
        }
        #expect(targets.count == 1)
        let unknown = VaultKey(epoch: 999_999, root: SecureBytes(Sodium.randomBytes(32)))
        let note = try SealedNote.seal(
            record: id, reason: "consent withdrawn", key: unknown, vaultID: a.vaultID, author: a.deviceID)
        var coordinator = ForgedChain(vaultID: a.vaultID, signer: a.keyring.device, head: try ownHead(of: a))
        let purge = try coordinator.entry(.purge(Purge(targets: targets, chunks: [], note: note)), at: stampNow())
        #expect(try writeSyncFile(file, vaultID: a.vaultID, [purge]) == 1)
        try await fileSync(b, file)
        #expect(b.membership.purges.count == 1 && b.purges().isEmpty, "b could open the note, or has no purge")
        #expect(try !b.visibleRecords().contains { $0.id == id }, "the purge did not take the record")

        let report = BundleVerifier.verify(try TarArchive(decoding: BundleExporter.padded(archive.encoded())))
        #expect(report.outcome == .verified)
        let summary = try BundleImporter.importRecords(of: report, into: b, kinds: ["statement"])
        #expect(summary.skipped == 1)
        #expect(
            try !b.allStates().contains { $0.id == id || $0.origin?.record == id },
            "the purged record came back from the bundle")
    }
}
