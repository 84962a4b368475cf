import AmanatCore
import AmanatStore

/// Progress of a sync, reported after each batch.
public struct SyncProgress: Sendable {
    /// Whether envelopes are coming in or going out.
    public enum Phase: String, Sendable {
        case pull, push
    }

    /// The current phase.
    public var phase: Phase
    /// Envelopes done in this phase so far.
    public var done: Int
    /// Envelopes to do in this phase, as the version vectors say.
    public var total: Int
    /// Bytes of the envelopes done in this phase so far (as encoded on the carrier).
    public var bytes: Int = 0

    /// Creates a progress report.
    public init(phase: Phase, done: Int, total: Int, bytes: Int = 0) {
        self.phase = phase
        self.done = done
        self.total = total
        self.bytes = bytes
    }
}

/// What a sync did.
public struct SyncReport: Sendable, Equatable {
    /// Envelopes verified and applied to the vault.
    public var pulled = 0
    /// Envelopes the vault already had.
    public var duplicates = 0
    /// Envelopes written to the carrier.
    public var pushed = 0
    /// Forks found: devices that signed two different envelopes with one seq, each fork (device and seq) once.
    public var forks: [ForkReport] = []
    /// True if the carrier could only be read.
    public var pullOnly = false
    /// Envelopes of devices that are not members, kept apart as evidence and not applied.
    public var keptApart = 0
    /// Changes that arrived without content while no purge known here names them.
    public var withoutContent = 0
    /// Changes whose content was put back from the carrier's full copies.
    public var restored = 0
    /// The carrier's copies of purged changes replaced by their purged forms (a sync file).
    public var purgedOnCarrier = 0
    /// The carrier's copies without content (stripped) whose content this vault put back.
    public var restoredOnCarrier = 0
    /// Why putting content back on the carrier stopped, when it failed (an extra to the sync: the sync itself went
    /// through, and the next one tries again).
    public var putBackProblem: String?
    /// The carrier's sentence when it had no room for this vault's records (a relay's `--quota`: 507); the pull went
    /// on without pushing.
    public var carrierFullReason: String?
    /// Changes not pushed because the carrier had no room for them; they stay here and go at a later sync.
    public var unpushed = 0

    /// An empty report.
    public init() {}

    /// Adds forks not listed yet: a carrier that offers the same conflicting envelope again (in the vectors' check
    /// and again in a batch, as a hostile relay may) reports one fork, not two.
    mutating func add(forks found: [ForkReport]) {
        for fork in found where !forks.contains(fork) { forks.append(fork) }
    }
}

/// One sync between a vault and a carrier: read its vector, pull what the vault lacks, push what it lacks
/// (Protocol/sync.md §2). Resumable and idempotent: every batch is applied in its own transaction, so an
/// interrupted sync keeps what it verified and the next run continues from the version vectors.
public struct SyncSession {
    /// The vault being synced.
    public let vault: Vault
    /// The carrier on the other side.
    public let carrier: any Carrier
    /// Envelopes per batch.
    public var batchSize = 1000

    /// Creates a session.
    public init(vault: Vault, carrier: any Carrier, batchSize: Int = 1000) {
        self.vault = vault
        self.carrier = carrier
        self.batchSize = batchSize
    }

    /// Pulls, then (when `push` is true and the carrier is writable) pushes.
    public nonisolated(nonsending) func run(push: Bool = true, progress: (SyncProgress) -> Void = { _ in }) async throws
        -> SyncReport
    {
        var report = SyncReport()
        let theirs = try await carrier.versionVector()
        let ours = try vault.syncVector()

        let toPull = VersionVectors.count(theirs, beyond: ours)
        let forked = try await VersionVectors.forkedAuthors(
            theirs: theirs, ours: ours, vault: vault, carrier: carrier, report: &report)
        // Cursors of the authors to pull, filled into batches that span authors, so a sync that fits in one
        // batch is applied in one transaction: all of it, or (if anything is refused) none of it.
        var cursors: [(author: DeviceID, after: UInt64, target: UInt64)] = []
        for (author, head) in theirs.sorted(by: { $0.key < $1.key }) {
            let after = ours[author]?.seq ?? 0
            if head.seq > after { cursors.append((author, after, head.seq)) }
        }
        var pulled = 0
        var pulledBytes = 0
        // Whether the pull took everything the carrier's vector announced, with no fork on the way (before it or in it).
        var pullComplete = forked.isEmpty
        while !cursors.isEmpty {
            var batch: [Envelope] = []
            var bytes = 0
            var index = 0
            // A batch stops at `batchSize` envelopes or 64 MiB, so a file of huge envelopes cannot fill the memory.
            while index < cursors.count && batch.count < batchSize && bytes < 64 * 1024 * 1024 {
                let cursor = cursors[index]
                let got = try await carrier.envelopes(
                    of: cursor.author, after: cursor.after, limit: batchSize - batch.count)
                batch += got
                bytes += got.reduce(0) { $0 + $1.ciphertext.count + Envelope.overhead }
                if let last = got.last, last.header.seq > cursor.after, last.header.seq < cursor.target {
                    cursors[index].after = last.header.seq
                } else {
                    cursors[index].after = cursor.target
                }
                index += 1
            }
            if batch.isEmpty {
                pullComplete = false
                break
            }
            let result = try vault.ingest(batch)
            report.pulled += result.applied
            report.keptApart += result.keptApart
            report.withoutContent += result.withoutContent
            report.duplicates += result.duplicates
            report.add(forks: result.forks)
            if !result.forks.isEmpty { pullComplete = false }
            let forked = Set(result.forks.map(\.device))
            cursors.removeAll { $0.after >= $0.target || forked.contains($0.author) }
            pulled += batch.count
            pulledBytes += batch.reduce(0) { $0 + $1.encodedLength }
            progress(SyncProgress(phase: .pull, done: pulled, total: toPull, bytes: pulledBytes))
        }

        try await VersionVectors.restoreContent(vault: vault, carrier: carrier, theirs: theirs, report: &report)
        guard push else { return report }
        guard carrier.canWrite else {
            report.pullOnly = true
            return report
        }
        let mine = try vault.versionVector()
        let toPush = VersionVectors.count(mine, beyond: theirs)
        var pushedTotal = 0
        var pushedBytes = 0
        // An author forked on the carrier is never extended; an author whose pull stopped at a fork is still
        // behind the carrier's head, so the loop below sends it nothing.
        for (author, head) in mine.sorted(by: { $0.key < $1.key }) where !forked.contains(author) {
            var after = theirs[author]?.seq ?? 0
            while after < head.seq {
                let batch = try vault.envelopes(of: author, after: after, limit: batchSize)
                guard let last = batch.last else { break }
                // Each batch starts after the last one; a vault whose rows say otherwise is damaged (never a loop).
                guard last.header.seq > after else {
                    throw StoreError(
                        .damaged,
                        "The vault is damaged: the log of device \(author.hex.prefix(12)) does not go on after change \(after). Run `amanat verify`."
                    )
                }
                report.pushed += try await carrier.push(batch)
                pushedTotal += batch.count
                pushedBytes += batch.reduce(0) { $0 + $1.encodedLength }
                progress(SyncProgress(phase: .push, done: pushedTotal, total: toPush, bytes: pushedBytes))
                after = last.header.seq
            }
        }
        if pullComplete { try await VersionVectors.putBackOnCarrier(vault: vault, carrier: carrier, report: &report) }
        // A purge this vault knows reaches the carrier's older copies too (an authority decided by the vault).
        if !vault.membership.purges.isEmpty {
            report.purgedOnCarrier = try await carrier.applyPurges(
                envelopes: try vault.purgedEnvelopes(), chunks: vault.purgedChunks)
        }
        return report
    }
}
