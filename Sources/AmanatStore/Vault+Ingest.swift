import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// What one ingested batch did.
public struct IngestResult: Sendable, Equatable {
    /// Envelopes that were new and are now in the vault (applied, held back or kept apart).
    public var applied: Int = 0
    /// Envelopes the vault already had (idempotence).
    public var duplicates: Int = 0
    /// Forks found in this batch: a member device signed two different envelopes with one seq.
    public var forks: [ForkReport] = []
    /// New envelopes of devices that are not members, kept apart as evidence and not applied.
    public var keptApart: Int = 0
    /// Envelopes of non-members dropped because the kept-apart store is full, or forks of non-members.
    public var dropped: Int = 0
    /// Envelopes that arrived without their ciphertext while no purge known here names them (a purge that has not
    /// arrived yet, or a carrier that stripped them): stored so, and counted as changes without content.
    public var withoutContent: Int = 0
    /// Envelopes that arrived with content a purge had destroyed: stored purged.
    public var purgedOnArrival: Int = 0

    /// An empty result.
    public init() {}
}

extension Vault {
    /// Kept-apart envelopes of one device that are stored at most.
    static let keptApartPerDevice = 1_000
    /// Kept-apart envelopes stored at most in all.
    static let keptApartTotal = 10_000
    /// Fork evidence envelopes stored at most per device, and in all.
    static let forkEvidencePerDevice = 16
    static let forkEvidenceTotal = 1_000

    /// Verifies and takes in envelopes from another replica in one transaction (Protocol/sync.md §3,
    /// Protocol/membership.md §5).
    ///
    /// Per author, `RunClassifier` sorts the run into duplicates, new envelopes that continue the chain, or a fork.
    /// A member's new envelopes join the log; a device the membership log does not know has its envelopes kept
    /// apart (capped) until it is admitted. Membership entries in the batch are evaluated before any record
    /// change is applied, and a record change is applied only if its author's role allowed it at that point of
    /// its log. A forged, foreign, gapped or undecryptable run throws and the whole batch is rolled back.
    @discardableResult
    public func ingest(_ envelopes: [Envelope]) throws -> IngestResult {
        guard !envelopes.isEmpty else { return IngestResult() }
        var byAuthor: [DeviceID: [Envelope]] = [:]
        for envelope in envelopes {
            guard envelope.header.vaultID == vaultID else {
                throw StoreError(.rejected, "Refused: the data belongs to another vault.")
            }
            guard envelope.ciphertext.count + Envelope.overhead <= Envelope.maximumLength else {
                throw StoreError(
                    .rejected,
                    "Refused: change \(envelope.header.seq) of device \(envelope.header.author.hex.prefix(12)) is over the \(Envelope.maximumLength >> 20) MiB an envelope may have."
                )
            }
            byAuthor[envelope.header.author, default: []].append(envelope)
        }
        let before = membership
        let keysBefore = rotatedKeys
        do {
            let result = try mapErrors {
                try database.write { db in try ingest(db, byAuthor) }
            }
            if membership.purges.count != before.purges.count || result.purgedOnArrival > 0 { finishPurges() }
            return result
        } catch {
            membership = before
            rotatedKeys = keysBefore
            throw error
        }
    }

    private func ingest(_ db: Database, _ byAuthor: [DeviceID: [Envelope]]) throws -> IngestResult {
        var result = IngestResult()
        let purgesBefore = membership.purges.count
        // 1. Classify each author's run against where its chain is: the log, or kept apart.
        var runs: [(author: DeviceID, fresh: [Envelope], apart: ChainHead, inLog: Bool)] = []
        for author in byAuthor.keys.sorted() {
            let inLog = try head(db, author: author)
            let apart = try heldHead(db, author: author)
            // A device's chain may be in the log, kept apart, or in the log and continued apart (a device whose
            // admission a later entry voided): classify against its furthest head, looking in both places.
            let base = apart.seq > inLog.seq ? apart : inLog
            let outcome: RunClassifier.Outcome
            do {
                outcome = try RunClassifier.classify(byAuthor[author]!, vaultID: vaultID, head: base) { seq in
                    let arguments: StatementArguments = [Data(author.bytes), Int64(clamping: seq)]
                    return try
                        (Data.fetchOne(
                            db.cachedStatement(sql: "SELECT hash FROM envelope WHERE author = ? AND seq = ?"),
                            arguments: arguments)
                        ?? Data.fetchOne(
                            db.cachedStatement(sql: "SELECT hash FROM held WHERE author = ? AND seq = ?"),
                            arguments: arguments)).map(Array.init)
                }
            } catch let error as CoreError {
                throw StoreError(.rejected, "Refused: \(error.message)")
            }
            result.duplicates += outcome.duplicates
            if let fork = outcome.fork {
                // Fork evidence only of member devices: a stranger's equivocation frames nobody and fills nothing.
                if membership.isKnown(author) {
                    try recordFork(db, fork, into: &result)
                } else {
                    result.dropped += 1
                }
                continue
            }
            if !outcome.fresh.isEmpty { runs.append((author, outcome.fresh, apart, inLog.seq > 0)) }
        }
        // 2. Membership first: the batch's own entries decide who is admitted, before anything is placed, so
        //    strangers filling the kept-apart store can never crowd out a device this batch admits.
        let fresh = runs.flatMap(\.fresh)
        let strangers = runs.contains { !$0.inLog && !membership.isKnown($0.author) }
        var admitted = membership
        if fresh.contains(where: \.isAuthority) || strangers {
            admitted = try evaluateMembership(db, adding: fresh)
        }
        // 3. Place each run: an admitted device's into the log (its kept-apart chain first), a stranger's apart.
        //    The record changes are opened on every core first; this thread then only places them.
        let opened = openAll(fresh.filter { !$0.isAuthority && !$0.isPurged && !admitted.isPurged($0) })
        var newInLog: [AuthoredChange] = []
        var keptApartTotal = try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM held")) ?? 0
        for run in runs {
            var known = admitted.isKnown(run.author)
            if known && run.apart.seq > 0 { try promoteHeld(db, author: run.author) }
            if known, let first = run.fresh.first, try head(db, author: run.author).seq + 1 != first.header.seq {
                known = false  // its kept-apart chain did not continue the log: keep this run apart with it
            }
            var keptApartHere = 0
            for envelope in run.fresh {
                if known {
                    // A purge already names it (an old copy of a sync file, a replica that had not synced): only
                    // its purged form is stored. One that arrives purged is kept so (no purge may name it yet).
                    if envelope.isPurged || admitted.isPurged(envelope) {
                        try insertEnvelope(db, envelope.purged())
                        if envelope.isPurged && !admitted.isPurged(envelope) { result.withoutContent += 1 }
                        if !envelope.isPurged { result.purgedOnArrival += 1 }
                    } else {
                        try insertEnvelope(db, envelope)
                        if let change = opened[envelope.hash] ?? nil { newInLog.append(change) }
                    }
                    result.applied += 1
                } else if run.apart.seq + UInt64(keptApartHere) < UInt64(Self.keptApartPerDevice),
                    keptApartTotal < Self.keptApartTotal
                {
                    try db.cachedStatement(sql: "INSERT INTO held(author, seq, hash, body) VALUES (?, ?, ?, ?)")
                        .execute(arguments: [
                            Data(run.author.bytes), Int64(clamping: envelope.header.seq), Data(envelope.hash),
                            Data(envelope.encoded()),
                        ])
                    keptApartTotal += 1
                    keptApartHere += 1
                    result.keptApart += 1
                } else {
                    // The chain must stay contiguous: once one is dropped, the rest of the run is too.
                    result.dropped += 1
                }
            }
        }
        // 4. Reload what the log now says and open the keys it grants; then apply, or rebuild when the membership
        //    or the keys held changed (the rebuild also applies changes whose key arrived only now).
        if admitted != membership || fresh.contains(where: \.isAuthority) { try reloadMembership(db) }
        if !membership.purges.isEmpty {
            // A change to a purged record written before its author learned of the purge: dropped as well, and
            // a coordinator's device names it in a follow-up purge so that relays and sync files drop it too.
            let purged = purgedRecordIDs()
            var late: [(record: RecordID, target: PurgeTarget)] = []
            if membership.purges.count != purgesBefore {
                try applyPurges(db)
                late = try dropLateChanges(db, purged: purged)
            } else {
                for change in newInLog where purged.contains(change.change.record) {
                    if let target = try dropContent(db, author: change.author, seq: change.seq) {
                        late.append((change.change.record, target))
                    }
                }
            }
            newInLog.removeAll { purged.contains($0.change.record) }
            result.purgedOnArrival += late.count
            try purgeAgain(db, late)
        }
        if try !settle(db) { try apply(db, newInLog) }
        return result
    }

    /// Replaces a stored envelope of the log by its purged form; returns what a purge would name of it.
    @discardableResult
    func dropContent(_ db: Database, author: DeviceID, seq: UInt64) throws -> PurgeTarget? {
        let arguments: StatementArguments = [Data(author.bytes), Int64(clamping: seq)]
        guard
            let body = try Data.fetchOne(
                db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?", arguments: arguments),
            let envelope = try? Envelope(decoding: Array(body)), !envelope.isPurged
        else { return nil }
        try db.execute(
            sql: "UPDATE envelope SET body = ? WHERE author = ? AND seq = ?",
            arguments: [Data(envelope.purged().encoded())] + arguments)
        return PurgeTarget(author: author, seq: seq, ciphertextHash: envelope.ciphertextHash)
    }

    /// Drops the content of every stored change to a purged record that no purge names (written concurrently
    /// with the purge, or by this device before it learned of it).
    func dropLateChanges(_ db: Database, purged: Set<RecordID>) throws -> [(record: RecordID, target: PurgeTarget)] {
        guard !purged.isEmpty else { return [] }
        var found: [(RecordID, DeviceID, UInt64)] = []
        let cursor = try Row.fetchCursor(
            db,
            sql: """
                SELECT e.body FROM envelope e
                WHERE length(e.body) != ?
                AND NOT EXISTS (SELECT 1 FROM authority a WHERE a.author = e.author AND a.seq = e.seq)
                """, arguments: [Envelope.purgedLength])
        while let row = try cursor.next() {
            guard let envelope = try? Envelope(decoding: Array(row["body"] as Data)), !envelope.isPurged,
                let key = key(epoch: envelope.header.keyEpoch), let change = try? envelope.open(with: key),
                purged.contains(change.record)
            else { continue }
            found.append((change.record, envelope.header.author, envelope.header.seq))
        }
        return try found.compactMap { record, author, seq in
            try dropContent(db, author: author, seq: seq).map { (record, $0) }
        }
    }

    /// On a coordinator's device: a follow-up purge for each record whose late changes were dropped here, with the
    /// first purge's reason, so every store drops them too. Other devices wait for a coordinator's.
    func purgeAgain(_ db: Database, _ late: [(record: RecordID, target: PurgeTarget)]) throws {
        guard !late.isEmpty, let me = membership.members[deviceID], !me.isRevoked,
            me.currentRole == .coordinator
        else { return }
        let reasons = Dictionary(purges().map { ($0.record, $0.reason) }, uniquingKeysWith: { first, _ in first })
        for (record, items) in Dictionary(grouping: late, by: \.record).sorted(by: { $0.key < $1.key }) {
            let note = try SealedNote.seal(
                record: record, reason: reasons[record] ?? "", key: writeKey, vaultID: vaultID,
                author: deviceID)
            try appendEntry(db, .purge(Purge(targets: items.map(\.target), chunks: [], note: note)))
        }
        try reloadMembership(db)
    }

    /// Applies new record changes of the log to the projection, each only if the membership allows it. The records'
    /// rows are read here and opened on every core, and their new rows sealed on every core and written here: each
    /// row has its own nonce and slot, so they are independent (the database is this thread's alone).
    private func apply(_ db: Database, _ changes: [AuthoredChange]) throws {
        var clock = try loadClock(db)
        var refusedCreates: [DeviceID: Int] = [:]
        var allowed: [AuthoredChange] = []
        var ids: [RecordID] = []
        var index: [RecordID: Int] = [:]
        for authored in changes {
            clock.observe(authored.change.timestamp, wallMillis: wallClock())
            if let reason = heldReason(authored) {
                if reason == .notCreator { refusedCreates[authored.author, default: 0] += 1 }
                continue
            }
            allowed.append(authored)
            if index[authored.change.record] == nil {
                index[authored.change.record] = ids.count
                ids.append(authored.change.record)
            }
        }
        let stored = try ids.map { id in
            let slot = slot(for: id)
            return (slot: slot, body: try storedRow(db, slot: slot))
        }
        var states = try ParallelResults.map(ids.count) { i in
            try stored[i].body.map { try decodeState($0, slot: stored[i].slot) } ?? RecordState(id: ids[i])
        }
        for authored in allowed { states[index[authored.change.record]!].apply(authored) }
        let now = wallClock()
        let rows = try ParallelResults.map(states.count) { i in
            try sealedRow(states[i], slot: stored[i].slot, nowMillis: now)
        }
        for (i, row) in rows.enumerated() { try storeRow(db, slot: stored[i].slot, row) }
        if !changes.isEmpty { try saveClock(db, clock) }
        if !refusedCreates.isEmpty {
            try saveRefusedCreates(db, try loadRefusedCreates(db).merging(refusedCreates, uniquingKeysWith: +))
        }
    }

    /// Opens record changes with the keys of their epochs, on every core for a large batch (each envelope has its
    /// own key and nonce, so they are independent), keyed by envelope hash. nil for an envelope of an epoch this
    /// device holds no key of (kept, unread, until a key arrives), and for one its own author sealed so that it does
    /// not decrypt (kept as signed evidence, never applied: refusing it would let one member's garbage block every
    /// honest sync through a shared file or relay). A courier cannot make such an envelope: the signature covers
    /// the ciphertext's hash.
    private func openAll(_ envelopes: [Envelope]) -> [[UInt8]: AuthoredChange?] {
        var keys: [UInt32: VaultKey] = [:]
        for envelope in envelopes where keys[envelope.header.keyEpoch] == nil {
            if let key = key(epoch: envelope.header.keyEpoch) { keys[envelope.header.keyEpoch] = key }
        }
        let open: @Sendable (ArraySlice<Envelope>) -> [(hash: [UInt8], change: AuthoredChange?)] = { [keys] part in
            part.map { envelope in
                (envelope.hash, keys[envelope.header.keyEpoch].flatMap { try? envelope.openAuthored(with: $0) })
            }
        }
        let parts = min(max(ProcessInfo.processInfo.activeProcessorCount, 1), max(envelopes.count / 128, 1))
        let pairs: [(hash: [UInt8], change: AuthoredChange?)]
        if parts > 1 {
            let results = ParallelResults<(hash: [UInt8], change: AuthoredChange?)>(parts: parts)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let range = (envelopes.count * part / parts)..<(envelopes.count * (part + 1) / parts)
                results.set(part) { open(envelopes[range]) }
            }
            pairs = (try? results.joined()) ?? open(envelopes[...])
        } else {
            pairs = open(envelopes[...])
        }
        return Dictionary(pairs.map { ($0.hash, $0.change) }, uniquingKeysWith: { first, _ in first })
    }

    func heldHead(_ db: Database, author: DeviceID) throws -> ChainHead {
        let statement = try db.cachedStatement(
            sql: "SELECT seq, hash FROM held WHERE author = ? ORDER BY seq DESC LIMIT 1")
        guard let row = try Row.fetchOne(statement, arguments: [Data(author.bytes)]) else { return .empty }
        return ChainHead(seq: UInt64(row["seq"] as Int64), hash: Array(row["hash"] as Data))
    }

    /// Records a fork of a member device (its signature was checked by the classifier), up to the evidence caps.
    private func recordFork(_ db: Database, _ envelope: Envelope, into result: inout IngestResult) throws {
        let author = Data(envelope.header.author.bytes)
        let mine = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork WHERE author = ?", arguments: [author]) ?? 0
        let all = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork") ?? 0
        if mine < Self.forkEvidencePerDevice && all < Self.forkEvidenceTotal {
            try db.execute(
                sql: "INSERT OR IGNORE INTO fork(author, seq, hash, body) VALUES (?, ?, ?, ?)",
                arguments: [
                    author, Int64(clamping: envelope.header.seq), Data(envelope.hash), Data(envelope.encoded()),
                ])
        }
        result.forks.append(ForkReport(device: envelope.header.author, seq: envelope.header.seq))
    }

    /// Up to `limit` of this vault's envelopes of `author` with seq greater than `seq`, in seq order. Each is the
    /// envelope its row says it is (author and seq): a row edited on the disk is damage, never an envelope handed
    /// on under another place (a sync would otherwise ask for the same rows again and again).
    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) throws -> [Envelope] {
        let rows: [(seq: Int64?, body: [UInt8]?)] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(
                    db.cachedStatement(
                        sql: "SELECT seq, body FROM envelope WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?"),
                    arguments: [Data(author.bytes), Int64(clamping: seq), limit]
                ).map { ($0.storedInteger("seq"), $0.storedBlob("body")) }
            }
        }
        return try rows.map { row in
            guard let body = row.body, let envelope = try? Envelope(decoding: body) else {
                throw StoreError(
                    .damaged, "The vault is damaged: a stored envelope does not decode. Run `amanat verify`.")
            }
            guard envelope.header.author == author, let stored = row.seq, envelope.header.seq == UInt64(exactly: stored)
            else {
                throw StoreError(
                    .damaged,
                    "The vault is damaged: the envelope stored as change \(row.seq.map(String.init) ?? "?") of device \(author.hex.prefix(12)) is another one. Run `amanat verify`."
                )
            }
            return envelope
        }
    }
}
