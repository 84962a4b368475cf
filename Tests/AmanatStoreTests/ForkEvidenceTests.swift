import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

/// Fork evidence: recorded for members only, capped, and dismissable by a coordinator while it stays stored.
@Suite struct ForkEvidenceTests {
    /// A member signs a different envelope at each of its held seqs, each arriving in its own batch.
    @Test func forkEvidenceOfOneDeviceIsCappedAndCanBeDismissedWhileItStays() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (coordinator, member) = (team[0], team[1])
        for _ in 0..<30 {
            _ = try member.createRecord(kind: "statement", fields: [("title", "honest")], tags: [], seal: false)
        }
        let stick = dir.path("stick.sync")
        for vault in [member, coordinator] { try await fileSync(vault, stick) }
        let honest = try member.envelopes(of: member.deviceID, after: 0, limit: 100)
        #expect(honest.count == 31)
        let key = try #require(member.key(epoch: 1))
        var forks = 0
        for original in honest.dropFirst() {
            // A genuinely signed, different change at the same seq and link: what a cloned laptop would sign.
            let change = Change(
                record: RecordID.derived(author: member.deviceID, seq: original.header.seq), timestamp: stampNow(),
                operations: [.create(kind: "statement"), .set(field: "title", value: "other branch", pred: [])])
            let conflicting = try Envelope.seal(
                change, vaultID: member.vaultID, key: key, signer: member.keyring.device, seq: original.header.seq,
                previousHash: original.header.previousHash)
            forks += try coordinator.ingest([conflicting]).forks.count
        }
        #expect(forks == 30, "every conflict is reported")
        let stored = try await coordinator.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork")
        }
        #expect(stored == Vault.forkEvidencePerDevice, "but at most \(Vault.forkEvidencePerDevice) are kept")
        #expect(try coordinator.verify().problems.contains { $0.contains("forked") })

        // A member may not dismiss; the coordinator may, and the evidence stays.
        #expect(throws: StoreError.self) { try member.dismissForks(of: member.deviceID) }
        try coordinator.dismissForks(of: member.deviceID)
        #expect(try coordinator.verify().problems == [])
        #expect(try coordinator.forks().allSatisfy(\.dismissed))
        let kept = try await coordinator.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork") }
        #expect(kept == stored)
        #expect(throws: StoreError.self) { try coordinator.dismissForks(of: member.deviceID) }
    }
}
