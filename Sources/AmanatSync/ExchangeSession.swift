import AmanatCore
import AmanatStore
import AmanatWire

/// What a relay answered to one exchange (Protocol/http-api.md §4.5).
public struct ExchangeResult: Sendable {
    /// Pushed envelopes the carrier stored.
    public var stored: Int
    /// Envelopes the client still lacks after this answer.
    public var remaining: UInt64
    /// Authors whose chain on the carrier does not continue the client's head (a fork).
    public var diverged: [DeviceID]
    /// Envelopes the client lacks, by author in seq order.
    public var envelopes: [Envelope]

    /// Creates a result.
    public init(stored: Int, remaining: UInt64, diverged: [DeviceID], envelopes: [Envelope]) {
        self.stored = stored
        self.remaining = remaining
        self.diverged = diverged
        self.envelopes = envelopes
    }
}

/// An optional capability of a carrier: push a batch and pull a batch in one round trip.
///
/// A carrier with it is synced by ``ExchangeSession``, which needs two round trips for a sync that fits in one
/// batch (the vector, then one exchange). Carriers without it (the sync file) keep using ``SyncSession``.
public protocol ExchangeCarrier: Carrier {
    /// Stores `push` (envelopes the carrier lacks) and answers with up to `limit` envelopes that a replica whose
    /// version vector is `vector` lacks.
    func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult
}

/// A sync through an ``ExchangeCarrier`` (an HTTP relay): read the carrier's vector, then exchange batches, each
/// carrying what the carrier lacks and bringing back what the vault lacks, until both sides are even.
///
/// Same guarantees as ``SyncSession`` (Protocol/sync.md): every pulled batch is verified and applied in one
/// transaction, forks are recorded and never extended, and an interrupted sync resumes from the vectors.
public struct ExchangeSession {
    /// The vault being synced.
    public let vault: Vault
    /// The carrier on the other side.
    public let carrier: any ExchangeCarrier
    /// Most envelopes pushed, and most pulled, per exchange.
    public var batchSize: Int
    /// Most bytes of envelopes pushed per exchange (one envelope is always sent).
    public var batchBytes: Int

    /// Creates a session.
    public init(
        vault: Vault, carrier: any ExchangeCarrier, batchSize: Int = 1000, batchBytes: Int = RelayWire.batchBytes
    ) {
        self.vault = vault
        self.carrier = carrier
        self.batchSize = max(1, batchSize)
        self.batchBytes = batchBytes
    }

    /// Pulls and (when `push` is true and the carrier is writable) pushes, in as few exchanges as the batch size
    /// allows.
    public func run(push: Bool = true, progress: (SyncProgress) -> Void = { _ in }) async throws -> SyncReport {
        var report = SyncReport()
        let theirs = try await carrier.versionVector()
        var ours = try vault.syncVector()
        let pushing = push && carrier.canWrite
        if push && !carrier.canWrite { report.pullOnly = true }

        // Forks visible from the vectors: evidence is ingested, and those authors are never extended.
        let blocked = try await VersionVectors.forkedAuthors(
            theirs: theirs, ours: ours, vault: vault, carrier: carrier, report: &report)

        // What to push: per author, from the carrier's head on.
        var cursors: [(author: DeviceID, after: UInt64, target: UInt64)] = []
        if pushing {
            for (author, head) in ours.sorted(by: { $0.key < $1.key }) where !blocked.contains(author) {
                let after = theirs[author]?.seq ?? 0
                if head.seq > after { cursors.append((author, after, head.seq)) }
            }
        }
        let toPush = cursors.reduce(0) { VersionVectors.saturatingSum($0, Int(clamping: $1.target - $1.after)) }
        var toPull = VersionVectors.count(theirs, beyond: ours)
        try await VersionVectors.restoreContent(vault: vault, carrier: carrier, theirs: theirs, report: &report)
        // Nothing to push and nothing to pull (forks were checked above): one round trip is the whole sync.
        if cursors.isEmpty && toPull == 0 {
            if pushing && blocked.isEmpty {
                try await VersionVectors.putBackOnCarrier(vault: vault, carrier: carrier, report: &report)
            }
            return report
        }
        var pushedCount = 0
        var pulledCount = 0
        var pushedBytes = 0
        var pulledBytes = 0
        var reportedDivergence = blocked  // forks already handled above
        // Set when the loop ends with nothing left to pull and no fork met: only then is anything put back.
        var pullComplete = false
        // Set once the carrier refused a batch for want of room: each batch then holds one author's changes.
        var oneAuthorPerBatch = false

        while true {
            let unsent = cursors
            // Fill one push batch across authors, bounded in count and bytes.
            var batch: [Envelope] = []
            var bytes = 0
            var index = 0
            while index < cursors.count, batch.count < batchSize, bytes < batchBytes,
                !(oneAuthorPerBatch && !batch.isEmpty)
            {
                let cursor = cursors[index]
                let got = try vault.envelopes(
                    of: cursor.author, after: cursor.after,
                    limit: min(batchSize - batch.count, Int(clamping: cursor.target - cursor.after)))
                var taken = 0
                for envelope in got {
                    let size = envelope.encoded().count
                    if !batch.isEmpty && bytes + size > batchBytes { break }
                    batch.append(envelope)
                    bytes += size
                    taken += 1
                }
                if taken > 0 { cursors[index].after = got[taken - 1].header.seq }
                if taken < got.count { break }  // out of bytes
                if got.isEmpty { cursors[index].after = cursor.target }
                if cursors[index].after >= cursor.target { index += 1 }
            }
            cursors.removeAll { $0.after >= $0.target }

            let result: ExchangeResult
            do {
                result = try await carrier.exchange(vector: ours, push: batch, limit: batchSize)
            } catch let error as CarrierFullError where !batch.isEmpty {
                // No room for this vault's records (a relay's --quota), and nothing of the batch was stored. Each
                // author's changes then go on their own (a coordinator's are always stored: a revocation or a purge
                // must get through; another's may still fit); an author refused on its own is not pushed further in
                // this sync, and the pull goes on (http-api.md §8).
                report.carrierFullReason = error.message
                let authors = Set(batch.map(\.header.author))
                let refused = oneAuthorPerBatch || authors.count == 1 ? authors : []
                oneAuthorPerBatch = true
                cursors = unsent.filter { !refused.contains($0.author) }
                report.unpushed = unsent.filter { refused.contains($0.author) }.reduce(report.unpushed) {
                    VersionVectors.saturatingSum($0, Int(clamping: $1.target - $1.after))
                }
                continue
            }
            report.pushed += result.stored
            pushedCount += batch.count
            pushedBytes += bytes
            if !batch.isEmpty {
                progress(SyncProgress(phase: .push, done: pushedCount, total: toPush, bytes: pushedBytes))
            }

            var advanced = false
            if !result.envelopes.isEmpty {
                let ingested = try vault.ingest(result.envelopes)
                report.pulled += ingested.applied
                report.keptApart += ingested.keptApart
                report.withoutContent += ingested.withoutContent
                report.duplicates += ingested.duplicates
                report.add(forks: ingested.forks)
                advanced = ingested.applied > 0 || ingested.keptApart > 0
                pulledCount += result.envelopes.count
                // `remaining` comes from the carrier: the sum saturates rather than overflow.
                toPull = max(toPull, VersionVectors.saturatingSum(pulledCount, Int(clamping: result.remaining)))
                pulledBytes += result.envelopes.reduce(0) { $0 + $1.encodedLength }
                progress(SyncProgress(phase: .pull, done: pulledCount, total: toPull, bytes: pulledBytes))
            }
            for author in result.diverged where !reportedDivergence.contains(author) {
                // The carrier's chain of this author does not contain our head: fetch its envelope at our head as
                // evidence (it is recorded as a fork when genuinely signed), and stop pushing that author.
                reportedDivergence.insert(author)
                cursors.removeAll { $0.author == author }
                if let seq = ours[author]?.seq, seq > 0 {
                    let evidence = try await carrier.envelopes(of: author, after: seq - 1, limit: 1)
                    report.add(forks: try vault.ingest(evidence).forks)
                }
            }
            if advanced { ours = try vault.syncVector() }

            if cursors.isEmpty && result.remaining == 0 {
                pullComplete = reportedDivergence == blocked && report.forks.isEmpty
                break
            }
            // Nothing moved in either direction although the carrier announces more: stop instead of looping (the
            // next sync starts again from the vectors).
            if batch.isEmpty && !advanced { break }
        }
        // After a complete pull: a purge the relay holds is known here by now, so nothing it destroyed is offered back.
        if pushing && pullComplete && blocked.isEmpty {
            try await VersionVectors.putBackOnCarrier(vault: vault, carrier: carrier, report: &report)
        }
        return report
    }
}
