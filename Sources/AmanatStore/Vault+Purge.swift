import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// A purge as this vault reads it: which record, why, by whom and when (the note opened with the vault key).
public struct PurgeInfo: Sendable, Equatable {
    /// The purged record.
    public var record: RecordID
    /// The reason the coordinator gave.
    public var reason: String
    /// The coordinator's device.
    public var by: DeviceID
    /// When the purge was written.
    public var at: HLCTimestamp
    /// How many changes it destroyed.
    public var changes: Int
    /// How many attachment chunks it destroyed.
    public var chunks: Int
}

extension Vault {
    /// Destroys the content of `record` everywhere (coordinators only; Protocol/membership.md §3.11): writes a purge
    /// entry naming every change of the record in this vault's log and the attachment chunks no other record uses,
    /// then applies it here: the changes keep their header, ciphertext hash and signature, the record leaves the
    /// projection, the chunks are overwritten and removed, and the database's write-ahead log is truncated.
    ///
    /// A deleted record can be purged; a record already purged cannot (nothing of it is left to name).
    @discardableResult
    public func purge(record: RecordID, reason: String) throws -> PurgeInfo {
        try requireCoordinator("purge a record")
        let text = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw StoreError(.invalid, "A purge needs a reason (--reason TEXT).") }
        guard text.utf8.count <= SealedNote.maximumReasonLength else {
            throw StoreError(.invalid, "A purge reason must be at most \(SealedNote.maximumReasonLength) bytes.")
        }
        guard let state = try mapErrors({ try database.read { db in try loadState(db, id: record) } }) else {
            if let purged = purges().first(where: { $0.record == record }) {
                throw StoreError(
                    .invalid,
                    "Record \(record.hex.prefix(12)) was already purged by \(deviceLabel(purged.by)); nothing of it is left."
                )
            }
            throw StoreError(.unknownID, "No record has the id \(record.hex.prefix(12)).")
        }
        let targets = try changeEnvelopes(of: record)
        // Chunks another record still uses (the same file attached twice) stay: they are that record's content too.
        var mine: Set<[UInt8]> = []
        for info in state.allAttachments { mine.formUnion(try chunkAddresses(of: info)) }
        if !mine.isEmpty {
            for other in try allStates() where other.id != record {
                for info in other.allAttachments { mine.subtract(try chunkAddresses(of: info)) }
            }
        }
        // The key the vault writes with: a device revoked before the purge must not learn the record or the reason.
        let note = try SealedNote.seal(record: record, reason: text, key: writeKey, vaultID: vaultID, author: deviceID)
        let purge = Purge(targets: targets, chunks: Array(mine), note: note)
        try mapErrors {
            try database.write { db in
                try appendEntry(db, .purge(purge))
                try reloadMembership(db)
                try applyPurges(db)
                try settle(db)
            }
        }
        finishPurges()
        guard let written = purges().last(where: { $0.record == record && $0.by == deviceID }) else {
            throw StoreError(.damaged, "The purge was written but does not read back. Run `amanat verify`.")
        }
        return written
    }

    /// Every change envelope in the log whose change touched `record`, applied or held back.
    func changeEnvelopes(of record: RecordID) throws -> [PurgeTarget] {
        try mapErrors {
            try database.read { db in
                var targets: [PurgeTarget] = []
                let cursor = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT e.body FROM envelope e
                        WHERE NOT EXISTS (SELECT 1 FROM authority a WHERE a.author = e.author AND a.seq = e.seq)
                        """)
                while let row = try cursor.next() {
                    guard let envelope = try? Envelope(decoding: Array(row["body"] as Data)), !envelope.isPurged,
                        let key = key(epoch: envelope.header.keyEpoch),
                        let change = try? envelope.open(with: key), change.record == record
                    else { continue }
                    targets.append(
                        PurgeTarget(
                            author: envelope.header.author, seq: envelope.header.seq,
                            ciphertextHash: envelope.ciphertextHash))
                }
                return targets
            }
        }
    }

    /// The purges that took effect, as far as this vault can open their notes (newest last).
    public func purges() -> [PurgeInfo] {
        membership.purges.compactMap { grant in
            guard let key = key(epoch: grant.purge.note.epoch),
                let (record, reason) = grant.purge.note.open(key: key, vaultID: vaultID, author: grant.author)
            else { return nil }
            return PurgeInfo(
                record: record, reason: reason, by: grant.author, at: grant.timestamp,
                changes: grant.purge.targets.count, chunks: grant.purge.chunks.count)
        }
    }

    /// The ids of purged records: a change to one of them that arrives later (written before its author learned
    /// of the purge) is never applied, and its content is dropped too.
    public func purgedRecordIDs() -> Set<RecordID> {
        guard !membership.purges.isEmpty else { return [] }
        return Set(purges().map(\.record))
    }

    /// Inside a write transaction: replaces every stored envelope (in the log or kept apart) that a purge names by
    /// its purged form. Membership entries are never purged. Returns how many were replaced.
    @discardableResult
    func applyPurges(_ db: Database) throws -> Int {
        guard !membership.purges.isEmpty else { return 0 }
        var replaced = 0
        for grant in membership.purges {
            for target in grant.purge.targets {
                for table in ["envelope", "held"] {
                    let arguments: StatementArguments = [Data(target.author.bytes), Int64(clamping: target.seq)]
                    guard
                        let body = try Data.fetchOne(
                            db, sql: "SELECT body FROM \(table) WHERE author = ? AND seq = ?", arguments: arguments),
                        body.count != Envelope.purgedLength,
                        let envelope = try? Envelope(decoding: Array(body)), !envelope.isAuthority,
                        envelope.ciphertextHash == target.ciphertextHash
                    else { continue }
                    try db.execute(
                        sql: "UPDATE \(table) SET body = ? WHERE author = ? AND seq = ?",
                        arguments: [Data(envelope.purged().encoded())] + arguments)
                    replaced += 1
                }
            }
        }
        return replaced
    }

    /// After a transaction that applied purges: removes the purged attachment chunks (overwritten first) and
    /// truncates the write-ahead log, whose frames held the replaced pages (freed pages are zeroed by
    /// `secure_delete`). Idempotent. Another process reading the vault (`amanat shell`) keeps the log busy: the
    /// truncation is tried again for up to a second; past that, the next purge or the last connection to close
    /// clears it.
    func finishPurges() {
        guard !membership.purges.isEmpty else { return }
        chunkStore.remove(membership.purges.flatMap(\.purge.chunks))
        for _ in 0..<50 {
            let busy = try? database.writeWithoutTransaction { db in
                try Int.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") ?? 1
            }
            if busy == 0 { return }
            usleep(20_000)
        }
    }

    /// Stored envelopes that arrived without their ciphertext although no purge this vault knows names them: a
    /// purge not received yet, or a carrier that stripped them. At most `limit`, in (author, seq) order.
    public func changesWithoutContent(limit: Int = 1000) throws -> [(author: DeviceID, seq: UInt64)] {
        try mapErrors { try database.read { db in Array(try withoutContent(db).prefix(limit)) } }
    }

    /// The next at most `limit` changes without content (``changesWithoutContent(limit:)``) that a carrier with the
    /// heads `available` holds (seq at most its head for that author), in (author, seq) order from just after where
    /// the previous call stopped, wrapping around. So changes no carrier can put back — a hostile member's own
    /// stripped envelopes, which every carrier holds only so — take their turn and never keep later ones from
    /// theirs. The position is kept, sealed, in the vault.
    public func nextChangesWithoutContent(limit: Int, available: [DeviceID: ChainHead]) throws -> [(
        author: DeviceID, seq: UInt64
    )] {
        try mapErrors {
            // Read first; the write lock is taken only to move the position, and only when there is a window.
            let (candidates, cursor) = try database.read { db in
                let all = try withoutContent(db).filter { change in
                    available[change.author].map { change.seq <= $0.seq } ?? false
                }
                return (all, try storedRestoreCursor(db))
            }
            let split =
                cursor.map { c in
                    candidates.firstIndex { ($0.author, $0.seq) > (c.author, c.seq) } ?? candidates.count
                } ?? 0
            let window = Array((candidates[split...] + candidates[..<split]).prefix(limit))
            // The position is where this window ended, whatever the carrier: a carrier holding few candidates (or
            // claiming to) moves it on like any other, never back to the start.
            if let last = window.last {
                var w = ByteWriter()
                w.write(raw: last.author.bytes)
                w.write(bigEndian: last.seq)
                try database.write { db in try saveLocalValue(db, "restore_cursor", w.bytes) }
            }
            return window
        }
    }

    /// The envelopes stored in their purged wire form, read through their partial index (``Schema``): its condition
    /// is written as a literal, since SQLite does not use a partial index for a bound `length(body) = ?`.
    package static let withoutContentQuery = "SELECT body FROM envelope \(Schema.withoutContent)"

    /// Every change without content that no purge names, in (author, seq) order.
    func withoutContent(_ db: Database) throws -> [(author: DeviceID, seq: UInt64)] {
        var found: [(author: DeviceID, seq: UInt64)] = []
        let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.withoutContentQuery))
        while let row = try rows.next() {
            guard let envelope = try? Envelope(decoding: Array(row["body"] as Data)), envelope.isPurged,
                !membership.isPurged(envelope)
            else { continue }
            found.append((envelope.header.author, envelope.header.seq))
        }
        return found.sorted { ($0.author, $0.seq) < ($1.author, $1.seq) }
    }

    /// Where the last ``nextChangesWithoutContent(limit:available:)`` stopped.
    func storedRestoreCursor(_ db: Database) throws -> (author: DeviceID, seq: UInt64)? {
        guard let value = try localValue(db, "restore_cursor", what: "the restore position") else { return nil }
        var r = ByteReader(value)
        let author = try DeviceID(try r.read(count: 32))
        return (author, try r.read(bigEndian: UInt64.self))
    }

    /// Puts back the content of envelopes stored without it that no purge names, from full copies (same hash)
    /// another carrier still has; the projection is rebuilt. Returns how many were restored.
    @discardableResult
    public func restoreContent(_ envelopes: [Envelope]) throws -> Int {
        // Never the content of a purged record (a change written concurrently with its purge).
        let purged = purgedRecordIDs()
        let full = envelopes.filter { envelope in
            guard !envelope.isPurged, !membership.isPurged(envelope) else { return false }
            guard let key = key(epoch: envelope.header.keyEpoch), let change = try? envelope.open(with: key) else {
                return true
            }
            return !purged.contains(change.record)
        }
        guard !full.isEmpty else { return 0 }
        return try mapErrors {
            try database.write { db in
                var restored = 0
                for envelope in full {
                    let arguments: StatementArguments = [
                        Data(envelope.header.author.bytes), Int64(clamping: envelope.header.seq), Data(envelope.hash),
                    ]
                    guard
                        let body = try Data.fetchOne(
                            db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ? AND hash = ?",
                            arguments: arguments), body.count == Envelope.purgedLength
                    else { continue }
                    try db.execute(
                        sql: "UPDATE envelope SET body = ? WHERE author = ? AND seq = ? AND hash = ?",
                        arguments: [Data(envelope.encoded())] + arguments)
                    restored += 1
                }
                if restored > 0 { try rebuildProjection(db) }
                return restored
            }
        }
    }

    /// The purged form of every envelope a purge names that this vault holds (for a sync file to replace its
    /// copies with).
    public func purgedEnvelopes() throws -> [Envelope] {
        guard !membership.purges.isEmpty else { return [] }
        return try mapErrors {
            try database.read { db in
                var out: [Envelope] = []
                for target in membership.purges.flatMap(\.purge.targets) {
                    guard
                        let body = try Data.fetchOne(
                            db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?",
                            arguments: [Data(target.author.bytes), Int64(clamping: target.seq)]),
                        let envelope = try? Envelope(decoding: Array(body)), envelope.isPurged,
                        envelope.ciphertextHash == target.ciphertextHash
                    else { continue }
                    out.append(envelope)
                }
                return out
            }
        }
    }

    /// The chunk addresses every purge destroyed (for a carrier to remove its copies).
    public var purgedChunks: [[UInt8]] { membership.purges.flatMap(\.purge.chunks) }
}
