import AmanatCore
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// A carrier that counts the envelope reads a sync makes of it (each one a request on a relay).
final class CountingCarrier: Carrier, @unchecked Sendable {
    // @unchecked Sendable: `reads` is guarded by `lock`.
    let inner: FileCarrier
    private let lock = NSLock()
    private var count = 0

    init(_ inner: FileCarrier) { self.inner = inner }

    var reads: Int { lock.withLock { count } }
    var name: String { inner.name }
    var canWrite: Bool { inner.canWrite }

    func versionVector() async throws -> [DeviceID: ChainHead] { try await inner.versionVector() }

    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        lock.withLock { count += 1 }
        return try await inner.envelopes(of: author, after: seq, limit: limit)
    }

    func push(_ envelopes: [Envelope]) async throws -> Int { try await inner.push(envelopes) }
}

/// Content put back into a vault (Protocol/sync.md §2 step 5): consecutive changes of one author come in one read,
/// not one read each.
@Suite struct RestoreRunsTests {
    @Test func consecutiveChangesWithoutContentComeBackInOneRead() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        for i in 0..<300 {
            _ = try a.createRecord(kind: "testimony", fields: [("witness", "W-\(i)")], tags: [], seal: false)
        }
        let log = try a.envelopes(of: a.deviceID, after: 0, limit: 10_000)
        let stripped = try b.ingest(log.map { $0.isAuthority ? $0 : $0.purged() })
        #expect(stripped.withoutContent == 300)
        let stick = dir.path("full.amanat-sync")
        _ = try await fileSync(a, stick)

        let carrier = CountingCarrier(try FileCarrier(url: stick, vaultID: b.vaultID))
        let first = try await SyncSession(vault: b, carrier: carrier).run(push: false)
        #expect(first.restored == 256, "\(first)")
        #expect(carrier.reads == 1, "256 consecutive changes took \(carrier.reads) reads")
        let second = try await SyncSession(vault: b, carrier: carrier).run(push: false)
        #expect(second.restored == 44, "\(second)")
        #expect(carrier.reads == 2)
        #expect(try b.changesWithoutContent().isEmpty)
        #expect(try b.status().stateDigest == a.status().stateDigest)
    }
}
