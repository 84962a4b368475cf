import AmanatCore
import AmanatStore
import AmanatWire

/// The comparisons of version vectors that both sync sessions make (Protocol/sync.md §2).
enum VersionVectors {
    /// How many envelopes `vector` holds beyond `other`, summed over authors. A carrier's vector comes from outside,
    /// so the sum saturates at `Int.max` instead of overflowing.
    static func count(_ vector: [DeviceID: ChainHead], beyond other: [DeviceID: ChainHead]) -> Int {
        vector.reduce(0) { total, entry in
            let theirs = other[entry.key]?.seq ?? 0
            return saturatingSum(total, entry.value.seq > theirs ? Int(clamping: entry.value.seq - theirs) : 0)
        }
    }

    /// `a + b` for non-negative counts, `Int.max` when the sum does not fit.
    static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
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
                report.add(forks: try vault.ingest(evidence).forks)
                forked.insert(author)
            }
        }
        return forked
    }

    /// Puts back content the vault holds without (envelopes that arrived purged while no purge known here names
    /// them) from full copies the carrier has: at most 256 per sync, taking turns across syncs among those the
    /// carrier holds (``Vault/nextChangesWithoutContent(limit:available:)``). Consecutive changes of one author are
    /// fetched together (one request a run, more when the run passes one answer's 4 MiB); what comes back is kept
    /// only for the changes asked for, each once, and handed to the vault in batches of about 4 MiB, so a carrier
    /// that answers with more than it was asked for fills no memory.
    nonisolated(nonsending) static func restoreContent(
        vault: Vault, carrier: any Carrier, theirs: [DeviceID: ChainHead], report: inout SyncReport
    ) async throws {
        var runs: [(author: DeviceID, seqs: [UInt64])] = []
        for (author, seq) in try vault.nextChangesWithoutContent(limit: 256, available: theirs) {
            if let last = runs.last, last.author == author, last.seqs.last.map({ $0 &+ 1 }) == seq {
                runs[runs.count - 1].seqs.append(seq)
            } else {
                runs.append((author, [seq]))
            }
        }
        var batch: [Envelope] = []
        var bytes = 0
        for run in runs {
            var wanted = Set(run.seqs)
            var after: UInt64 = 0
            // Each request starts at the next change still wanted after the previous start: at most one a change.
            while let next = run.seqs.first(where: { wanted.contains($0) && $0 > after }) {
                let got = try await carrier.envelopes(
                    of: run.author, after: next - 1, limit: Int(run.seqs.last! - next + 1))
                for envelope in got
                where envelope.header.author == run.author && !envelope.isPurged
                    && wanted.remove(envelope.header.seq) != nil
                {
                    batch.append(envelope)
                    bytes += envelope.encodedLength
                    if bytes >= RelayWire.batchBytes {
                        report.restored += try vault.restoreContent(batch)
                        batch = []
                        bytes = 0
                    }
                }
                after = next
            }
        }
        if !batch.isEmpty { report.restored += try vault.restoreContent(batch) }
    }

    /// Gives the carrier the vault's full copies of envelopes the carrier holds without content — a member pushed
    /// them stripped before their author synced — where no purge known here names them (the vault then holds them
    /// without content too): at most 256 per sync, sent in requests of about 4 MiB, at most 4 of them, and none more
    /// once one is not taken (Protocol/sync.md §2, step 6). Runs only after a pull that took all the carrier had and
    /// met no fork, so a purge the carrier holds is known here first.
    ///
    /// An extra to a sync that has already pulled and pushed: a failure here (a relay that stalls or garbles these
    /// requests, a full stick) is reported in ``SyncReport/putBackProblem``, never as the sync's failure.
    nonisolated(nonsending) static func putBackOnCarrier(vault: Vault, carrier: any Carrier, report: inout SyncReport)
        async throws
    {
        do {
            try await putBack(vault: vault, carrier: carrier, report: &report)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            report.putBackProblem = String(describing: error)
        }
    }

    private nonisolated(nonsending) static func putBack(vault: Vault, carrier: any Carrier, report: inout SyncReport)
        async throws
    {
        guard carrier.canWrite else { return }
        let membership = vault.membership
        func fullCopy(of stripped: Envelope) throws -> Envelope? {
            guard stripped.isPurged, stripped.header.vaultID == vault.vaultID,
                let mine = try vault.envelope(author: stripped.header.author, seq: stripped.header.seq),
                !mine.isPurged, mine.hash == stripped.hash, !membership.isPurged(mine)
            else { return nil }
            return mine
        }
        let listed = try await carrier.copiesWithoutContent(limit: 256) { try fullCopy(of: $0) != nil }
        // One batch in memory at a time: a full copy may be up to 8 MiB. A carrier that takes none of a batch (a relay
        // that lists what it then refuses) is given nothing more in this sync, and no sync sends more than 4 batches.
        var batch: [Envelope] = []
        var bytes = 0
        var sent = 0
        func send() async throws -> Bool {
            let restored = try await carrier.putBackContent(batch)
            report.restoredOnCarrier += restored
            sent += 1
            batch = []
            bytes = 0
            return restored > 0 && sent < 4
        }
        for stripped in listed {
            guard let full = try fullCopy(of: stripped) else { continue }
            if !batch.isEmpty && bytes + full.encodedLength > RelayWire.batchBytes {
                guard try await send() else { return }
            }
            batch.append(full)
            bytes += full.encodedLength
        }
        if !batch.isEmpty { _ = try await send() }
    }
}
