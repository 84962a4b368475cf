import AmanatCore
import AmanatStore

/// The comparisons of version vectors that both sync sessions make (Protocol/sync.md §2).
enum VersionVectors {
    /// How many envelopes `vector` holds beyond `other`, summed over authors.
    static func count(_ vector: [DeviceID: ChainHead], beyond other: [DeviceID: ChainHead]) -> Int {
        vector.reduce(0) { total, entry in
            let theirs = other[entry.key]?.seq ?? 0
            return total + (entry.value.seq > theirs ? Int(entry.value.seq - theirs) : 0)
        }
    }

    /// Authors whose chain on the carrier differs from the vault's at the carrier's head: forks. The carrier's
    /// envelope there is fetched and ingested as evidence (recorded when genuinely signed); such authors are never
    /// extended on the carrier.
    nonisolated(nonsending) static func forkedAuthors(
        theirs: [DeviceID: ChainHead], ours: [DeviceID: ChainHead], vault: Vault, carrier: any Carrier,
        report: inout SyncReport
    ) async throws -> Set<DeviceID> {
        var forked: Set<DeviceID> = []
        for (author, head) in theirs.sorted(by: { $0.key < $1.key }) where head.seq <= (ours[author]?.seq ?? 0) {
            if let mine = try vault.envelope(author: author, seq: head.seq), mine.hash != head.hash {
                let evidence = try await carrier.envelopes(of: author, after: head.seq - 1, limit: 1)
                report.forks += try vault.ingest(evidence).forks
                forked.insert(author)
            }
        }
        return forked
    }
}
