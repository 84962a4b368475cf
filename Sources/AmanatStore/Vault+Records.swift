import AmanatCore
import AmanatCrypto
import CSQLiteHardening
import Foundation
import GRDB

extension Vault {
    // MARK: Encrypted rows (Protocol/storage.md §3)

    /// The row key standing in for a record id: keyed BLAKE2b-128, so the database does not show record ids.
    func slot(for id: RecordID) -> Data {
        Data(BLAKE2b.hash(id.bytes, outputLength: 16, key: slotKey))
    }

    func sealRow(_ plaintext: [UInt8], associatedData: [UInt8]) throws -> Data {
        let nonce = AEAD.randomNonce()
        return Data(nonce + (try AEAD.seal(plaintext, additionalData: associatedData, nonce: nonce, key: localKey)))
    }

    func openRow(_ body: Data, associatedData: [UInt8], what: String) throws -> [UInt8] {
        try StoredRow.open(body, associatedData: associatedData, what: what, key: localKey)
    }

    func loadState(_ db: Database, id: RecordID) throws -> RecordState? {
        let slot = slot(for: id)
        return try storedRow(db, slot: slot).map { try decodeState($0, slot: slot) }
    }

    /// The sealed projection row stored under `slot`, if any.
    func storedRow(_ db: Database, slot: Data) throws -> Data? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT body FROM record WHERE slot = ?"), arguments: [slot])
    }

    /// Projection rows are padded with zeros to a multiple of this many bytes (Protocol/storage.md §3). A row holds
    /// each field value about twice (in the view and in the state), so 128 row bytes stand for about 64 content
    /// bytes: the envelopes' block.
    static let rowPaddingBlock = 128

    /// Opens and decodes a projection row (its layout: ``StoredRow/decodeState(_:)``).
    func decodeState(_ body: Data, slot: Data) throws -> RecordState {
        try StoredRow.decodeState(openRow(body, associatedData: Array(slot), what: "a stored record"))
    }

    func saveState(_ db: Database, _ state: RecordState) throws {
        let slot = slot(for: state.id)
        try storeRow(db, slot: slot, try sealedRow(state, slot: slot, nowMillis: wallClock()))
    }

    /// A record's projection row as `now` displays it, sealed, with the earliest future stamp among its values
    /// (``noteFutureStamp(_:_:)``). It only reads the vault, so the cores can seal several rows at once.
    func sealedRow(_ state: RecordState, slot: Data, nowMillis now: UInt64) throws -> SealedRow {
        let plain = StoredRow.encodeState(state, paddingBlock: Self.rowPaddingBlock, nowMillis: now)
        return SealedRow(
            body: try sealRow(plain, associatedData: Array(slot)),
            futureStamp: state.earliestFutureStamp(nowMillis: now))
    }

    /// Stores a sealed projection row under `slot`, noting its future stamp first.
    func storeRow(_ db: Database, slot: Data, _ row: SealedRow) throws {
        if let future = row.futureStamp { try noteFutureStamp(db, future) }
        try db.cachedStatement(
            sql: "INSERT INTO record(slot, body) VALUES (?, ?) ON CONFLICT(slot) DO UPDATE SET body = excluded.body"
        ).execute(arguments: [slot, row.body])
    }

    /// A sealed projection row and the earliest future stamp of its record's values (``sealedRow(_:slot:nowMillis:)``).
    struct SealedRow: Sendable {
        let body: Data
        let futureStamp: UInt64?
    }

    /// Remembers the earliest wall time of a displayed-value candidate stamped beyond this device's horizon: when
    /// the clock reaches it, ``settle(_:)`` rebuilds the projection so that the stored views follow the clock.
    func noteFutureStamp(_ db: Database, _ wallMillis: UInt64) throws {
        if let stored = try storedFutureStamp(db), stored <= wallMillis { return }
        var w = ByteWriter()
        w.write(bigEndian: wallMillis)
        try saveLocalValue(db, "future", w.bytes)
    }

    func storedFutureStamp(_ db: Database) throws -> UInt64? {
        guard let value = try localValue(db, "future", what: "the clock") else { return nil }
        var r = ByteReader(value)
        return try r.read(bigEndian: UInt64.self)
    }

    /// The opened value of the sealed `local` row `key` (Protocol/storage.md §3: sealed under the local key with
    /// `key` as associated data), or nil when there is none. Read at every command, so the statement is prepared
    /// once per connection.
    func localValue(_ db: Database, _ key: String, what: String) throws -> [UInt8]? {
        let statement = try db.cachedStatement(sql: "SELECT body FROM local WHERE key = ?")
        guard let body = try Data.fetchOne(statement, arguments: [key]) else { return nil }
        return try openRow(body, associatedData: Array(key.utf8), what: what)
    }

    /// Seals `value` as the `local` row `key`, replacing what it held.
    func saveLocalValue(_ db: Database, _ key: String, _ value: [UInt8]) throws {
        try db.cachedStatement(
            sql: "INSERT INTO local(key, body) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET body = excluded.body"
        ).execute(arguments: [key, try sealRow(value, associatedData: Array(key.utf8))])
    }

    /// Whether a stamp that was from the future when the projection was built has come within the horizon.
    func futureStampArrived(_ db: Database) throws -> Bool {
        guard let future = try storedFutureStamp(db) else { return false }
        return future <= HybridLogicalClock.horizon(wallClock())
    }

    /// Rebuilds the stored views if the clock has caught up with a stamp that was from the future, so that
    /// displayed values follow the clock (called at open; tests that move `wallClock` call it themselves).
    public func refreshDisplayedValues() throws {
        try mapErrors { try database.write { db in _ = try settle(db) } }
    }

    func loadClock(_ db: Database) throws -> HybridLogicalClock {
        guard let value = try localValue(db, "clock", what: "the clock") else { return HybridLogicalClock() }
        return HybridLogicalClock(last: try StoredRow.decodeClock(value))
    }

    func saveClock(_ db: Database, _ clock: HybridLogicalClock) throws {
        var w = ByteWriter()
        w.write(bigEndian: clock.last.wallMillis)
        w.write(bigEndian: clock.last.counter)
        try saveLocalValue(db, "clock", w.bytes)
    }

    func head(_ db: Database, author: DeviceID) throws -> ChainHead {
        let statement = try db.cachedStatement(
            sql: "SELECT seq, hash FROM envelope WHERE author = ? ORDER BY seq DESC LIMIT 1")
        guard let row = try Row.fetchOne(statement, arguments: [Data(author.bytes)]) else { return .empty }
        return ChainHead(seq: UInt64(row["seq"] as Int64), hash: Array(row["hash"] as Data))
    }

    func insertEnvelope(_ db: Database, _ envelope: Envelope) throws {
        try db.cachedStatement(sql: "INSERT INTO envelope(author, seq, hash, body) VALUES (?, ?, ?, ?)").execute(
            arguments: [
                Data(envelope.header.author.bytes), Int64(envelope.header.seq), Data(envelope.hash),
                Data(envelope.encoded()),
            ])
        if envelope.isAuthority {
            try db.cachedStatement(sql: "INSERT INTO authority(author, seq) VALUES (?, ?)").execute(
                arguments: [Data(envelope.header.author.bytes), Int64(envelope.header.seq)])
        }
    }

    // MARK: Writing

    /// Makes one change to one record in one transaction: stamps it, seals and signs its envelope, appends it to
    /// this device's log and updates the projection. `operations` sees the record's current state (nil if new).
    @discardableResult
    public func commit(record: RecordID, operations: (RecordState?) throws -> [RecordOperation]) throws
        -> AuthoredChange
    {
        try mapErrors {
            try database.write { db in
                var writer = try LocalWriter(vault: self, db: db)
                let authored = try writer.commit(record: record, operations: operations)
                try writer.finish()
                return authored
            }
        }
    }

    /// Makes many changes in one transaction (bulk import, benchmarks); the clock and chain head are read once.
    /// A nil record id makes a new record, with the id its change derives (Protocol/membership.md §6). Returns
    /// the record id of each item.
    ///
    /// The changes are sealed and signed on a second thread, ``BatchSealer/chunk`` at a time, while this thread
    /// writes the chunk before into the database: the chain makes each envelope wait for the one before it, but the
    /// database's work does not have to wait for the cryptography (Docs/architecture.md, "Bulk writes").
    @discardableResult
    public func commitBatch(_ items: [(RecordID?, [RecordOperation])]) throws -> [RecordID] {
        try mapErrors {
            try database.write { db in
                var writer = try LocalWriter(vault: self, db: db)
                var next = writer.head.seq
                let ids = items.map { item in
                    next += 1
                    return item.0 ?? RecordID.derived(author: writer.me, seq: next)
                }
                // The states the batch starts from, read here: the database is this thread's. A new record's too: a
                // member may have changed a record under the id this device's next change derives before it exists.
                var states: [RecordID: RecordState] = [:]
                for id in Set(ids) {
                    if let state = try loadState(db, id: id) { states[id] = state }
                }
                let sealer = BatchSealer(vault: self, clock: writer.clock, head: writer.head, states: states)
                let work = OrderedWork<Result<[SealedChange], any Error>>()
                let changes = Array(zip(ids, items.map(\.1)))
                func submit(_ start: Int) {
                    let part = Array(changes[start..<min(start + BatchSealer.chunk, changes.count)])
                    work.submit { Result { try sealer.seal(part) } }
                }
                if !changes.isEmpty { submit(0) }
                for start in stride(from: 0, to: changes.count, by: BatchSealer.chunk) {
                    // One chunk in flight at a time: the next one continues the chain where this one ends.
                    let sealed = try work.next().get()
                    if start + BatchSealer.chunk < changes.count { submit(start + BatchSealer.chunk) }
                    do {
                        for change in sealed {
                            try insertEnvelope(db, change.envelope)
                            try storeRow(db, slot: change.slot, change.row)
                        }
                    } catch {
                        _ = work.drain()
                        throw error
                    }
                }
                writer.clock = sealer.clock
                writer.head = sealer.head
                try writer.finish()
                return ids
            }
        }
    }

    /// A change sealed by a ``BatchSealer``, ready to be written: its envelope and its record's new projection row.
    struct SealedChange: Sendable {
        let envelope: Envelope
        let slot: Data
        let row: SealedRow
    }

    /// Seals a batch's changes in order, one chunk at a time on whichever thread runs it, continuing this device's
    /// clock and chain; it never touches the database (the states it starts from are read before).
    final class BatchSealer: @unchecked Sendable {
        // @unchecked Sendable: one chunk is sealed at a time (``commitBatch(_:)`` submits the next one only after the
        // one before ended), and the owner reads `clock` and `head` only after the last; the vault is only read.
        static let chunk = 64
        let vault: Vault
        var clock: HybridLogicalClock
        var head: ChainHead
        var states: [RecordID: RecordState]

        init(vault: Vault, clock: HybridLogicalClock, head: ChainHead, states: [RecordID: RecordState]) {
            self.vault = vault
            self.clock = clock
            self.head = head
            self.states = states
        }

        /// Seals `changes` as this device's next envelopes, as ``LocalWriter/commit(record:operations:)`` does.
        func seal(_ changes: [(RecordID, [RecordOperation])]) throws -> [SealedChange] {
            try changes.map { record, ops in
                let (authored, envelope) = try LocalWriter.sealNext(
                    record: record, operations: ops, vault: vault, clock: &clock, head: &head)
                var state = states[record] ?? RecordState(id: record)
                state.apply(authored)
                states[record] = state
                let slot = vault.slot(for: record)
                return SealedChange(
                    envelope: envelope, slot: slot,
                    row: try vault.sealedRow(state, slot: slot, nowMillis: vault.wallClock()))
            }
        }
    }

    /// Appends this device's changes inside one open transaction, keeping the clock and chain head in memory.
    struct LocalWriter {
        let vault: Vault
        let db: Database
        let me: DeviceID
        var clock: HybridLogicalClock
        var head: ChainHead

        init(vault: Vault, db: Database) throws {
            self.vault = vault
            self.db = db
            me = vault.deviceID
            clock = try vault.loadClock(db)
            head = try vault.head(db, author: me)
        }

        /// The id of a record created by the next change: derived from this device and seq.
        var nextRecordID: RecordID { RecordID.derived(author: me, seq: head.seq + 1) }

        mutating func commit(record: RecordID, operations: (RecordState?) throws -> [RecordOperation]) throws
            -> AuthoredChange
        {
            let current = try vault.loadState(db, id: record)
            let (authored, envelope) = try Self.sealNext(
                record: record, operations: try operations(current), vault: vault, clock: &clock, head: &head)
            try vault.insertEnvelope(db, envelope)
            var state = current ?? RecordState(id: record)
            state.apply(authored)
            try vault.saveState(db, state)
            return authored
        }

        /// Stamps `operations` as this device's next change to `record`, checks that its membership allows it, and
        /// seals and signs it after `head`, which it advances.
        static func sealNext(
            record: RecordID, operations: [RecordOperation], vault: Vault, clock: inout HybridLogicalClock,
            head: inout ChainHead
        ) throws -> (AuthoredChange, Envelope) {
            let stamp = clock.tick(wallMillis: vault.wallClock())
            let change = Change(record: record, timestamp: stamp, operations: operations)
            let seq = head.seq + 1
            let authored = AuthoredChange(author: vault.deviceID, seq: seq, change: change)
            if let reason = vault.heldReason(authored) { throw refusal(reason, vault: vault) }
            let envelope = try Envelope.seal(
                change, vaultID: vault.vaultID, key: vault.writeKey, signer: vault.keyring.device, seq: seq,
                previousHash: head.hash)
            head = ChainHead(seq: seq, hash: envelope.hash)
            return (authored, envelope)
        }

        /// Why this device may not make a change that its membership holds back.
        static func refusal(_ reason: HeldReason, vault: Vault) -> StoreError {
            switch reason {
            case .notCreator:
                StoreError(.invalid, "A record can only be created by the change whose id it derives.")
            default:
                StoreError(
                    .notAllowed,
                    "This device cannot change records: it is \(vault.describeSelf()). A coordinator decides roles.")
            }
        }

        /// Appends a membership entry as this device's next envelope.
        @discardableResult
        mutating func append(_ operation: MembershipOperation) throws -> MembershipEntry {
            let entry = MembershipEntry(timestamp: clock.tick(wallMillis: vault.wallClock()), operation: operation)
            let seq = head.seq + 1
            let envelope = try Envelope.seal(
                entry, vaultID: vault.vaultID, signer: vault.keyring.device, seq: seq, previousHash: head.hash)
            try vault.insertEnvelope(db, envelope)
            head = ChainHead(seq: seq, hash: envelope.hash)
            return entry
        }

        func finish() throws { try vault.saveClock(db, clock) }
    }

    /// Creates a record of `kind` with fields and tags in one change; a testimony is sealed in the same change.
    /// The record's id is derived from this device and the change's seq, so no other change can create it.
    /// Commits several changes per record in one transaction: all of them or none. Each group names its record (nil:
    /// a new record, whose id derives from the group's first change) and lists its changes in order. Returns the
    /// record of each group.
    public func commitGroups(_ groups: [(record: RecordID?, changes: [[RecordOperation]])]) throws -> [RecordID] {
        try mapErrors {
            try database.write { db in
                var writer = try LocalWriter(vault: self, db: db)
                var ids: [RecordID] = []
                for group in groups {
                    var record = group.record
                    for ops in group.changes {
                        let id = record ?? writer.nextRecordID
                        _ = try writer.commit(record: id, operations: { _ in ops })
                        record = id
                    }
                    if let record { ids.append(record) }
                }
                try writer.finish()
                return ids
            }
        }
    }

    public func createRecord(kind: String, fields: [(String, String)], tags: [String], seal: Bool) throws -> RecordID {
        try mapErrors {
            try database.write { db in
                var writer = try LocalWriter(vault: self, db: db)
                let id = writer.nextRecordID
                _ = try writer.commit(record: id) { _ in
                    var ops: [RecordOperation] = [.create(kind: kind)]
                    ops += fields.map { RecordOperation.set(field: $0.0, value: $0.1, pred: []) }
                    ops += tags.map { RecordOperation.addTag($0) }
                    if seal { ops.append(.seal(contentHash: RecordState.sealHash(kind: kind, fields: fields))) }
                    return ops
                }
                try writer.finish()
                return id
            }
        }
    }

    // MARK: Reading

    /// Every record state, deleted ones included, decrypted in memory.
    public func allStates() throws -> [RecordState] {
        try mapErrors {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT slot, body FROM record").map {
                    try decodeState($0["body"], slot: $0["slot"])
                }
            }
        }
    }

    /// The visible records, sorted by id; decodes only each row's view section.
    public func visibleRecords() throws -> [RecordView] {
        try mapErrors {
            try database.read { db in
                // One pass over every row: SQLite's page cache would only keep pages this scan never reads again,
                // up to 32 MiB of a 100k-record `list`'s peak. The operating system's file cache still has them.
                try db.execute(sql: "PRAGMA cache_size = -\(Self.scanCacheKiB)")
                defer { try? db.execute(sql: "PRAGMA cache_size = -\(Self.cacheKiB)") }
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM record") ?? 0
                // Blocks of rows are opened and decoded on other threads while this one reads the next from
                // SQLite (one thread reads SQLite), at most ``decodeAhead`` blocks at a time. Each block's views
                // stay in memory of their own until they are moved, in id order, into the result: never copied.
                let decode = Self.viewDecoder(key: localKey)
                let decoding = OrderedWork<Result<ViewRun, any Error>>()
                defer { _ = decoding.drain() }
                var runs: [ViewRun] = []
                runs.reserveCapacity(count / Self.decodeBlock + 1)
                func take() throws { runs.append(try decoding.next().get()) }
                var block = RowBlock()
                let statement = try db.makeStatement(sql: "SELECT slot, body FROM record")
                let cursor = try Row.fetchCursor(statement)
                while try cursor.next() != nil {
                    // Copied straight from SQLite's buffer into the block's one array: no `Data` per column.
                    try block.append(slot: Self.blob(statement, column: 0), body: Self.blob(statement, column: 1))
                    if block.count == Self.decodeBlock {
                        let full = block
                        decoding.submit { Result { try decode(full) } }
                        block = RowBlock(reservingLike: full)
                        if decoding.inFlight >= Self.decodeAhead { try take() }
                    }
                }
                let rest = block
                decoding.submit { Result { try decode(rest) } }
                while decoding.inFlight > 0 { try take() }
                return ViewRun.movedInIDOrder(runs)
            }
        }
    }

    /// The bytes of the current row's `column` in SQLite's own buffer, valid until the statement steps again; nil
    /// unless the column holds a blob of at least one byte, as every sealed row does.
    static func blob(_ statement: Statement, column: Int32) -> UnsafeRawBufferPointer? {
        let handle = statement.sqliteStatement
        guard sqlite3_column_type(handle, column) == SQLITE_BLOB, let bytes = sqlite3_column_blob(handle, column)
        else { return nil }
        return UnsafeRawBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column)))
    }

    /// SQLite's page cache for a vault's connection, in KiB.
    static let cacheKiB = 32_768
    /// SQLite's page cache while one pass reads the whole projection, in KiB.
    static let scanCacheKiB = 1_024

    /// Rows read from SQLite before they are handed to another thread to open and decode: small enough that the
    /// first block's decoding starts early, large enough that handing it over costs little beside it.
    static let decodeBlock = 1024
    /// Blocks being opened and decoded at once while the next is read: enough to keep every core busy.
    static let decodeAhead = 4

    /// Opens and decodes the view sections of a block's rows: each row is sealed on its own, so blocks are
    /// independent. Captures the key, not the vault.
    static func viewDecoder(key: SecureBytes) -> @Sendable (RowBlock) throws -> ViewRun {
        { block in
            let run = ViewRun(capacity: block.count)
            try block.bytes.withUnsafeBytes { all in
                for (slot, body) in block.ranges {
                    let plain = try StoredRow.open(
                        UnsafeRawBufferPointer(rebasing: all[body]),
                        associatedData: UnsafeRawBufferPointer(rebasing: all[slot]), what: "a stored record", key: key)
                    if let view = try StoredRow.decodeView(plain) { run.append(view) }
                }
            }
            return run
        }
    }

    /// The records that were created and then deleted, sorted by id (for `list --deleted` and `undelete`).
    public func deletedRecords() throws -> [RecordState] {
        try allStates().filter(\.isDeleted).sortedByID()
    }

    /// The state of the visible record whose id is `text` or starts with it (at least 6 hex characters); with
    /// `includeDeleted`, a deleted record matches too (`history`, `show --deleted`, `undelete`, `export --id`).
    ///
    /// A word that cannot be an id (too short, or not hexadecimal, like a witness code `W-023`) is refused with a
    /// sentence pointing to `amanat search`; an id that names only a deleted record says how to see or undelete it.
    public func resolveRecord(_ text: String, includeDeleted: Bool = false) throws -> RecordState {
        let prefix = text.lowercased()
        guard prefix.allSatisfy(\.isHexDigit), !prefix.isEmpty else {
            throw StoreError(
                .unknownID,
                "\"\(text)\" is not a record id (ids are hexadecimal); to find records that mention it, run `amanat search \(Self.shellWord(text))`."
            )
        }
        guard prefix.count >= 6 else {
            throw StoreError(
                .unknownID,
                "The id \"\(text)\" is too short: give at least 6 characters of a record id, or find the record with `amanat search \(Self.shellWord(text))`."
            )
        }
        // Match on the rows' view sections, then decode the one full state.
        let matches = try visibleRecords().filter { $0.id.hex.hasPrefix(prefix) }
        switch matches.count {
        case 0:
            let deleted = try deletedRecords().filter { $0.id.hex.hasPrefix(prefix) }
            if deleted.count > 1 {
                throw StoreError(.ambiguousID, "The id \(text) matches \(deleted.count) records; give more characters.")
            }
            guard let state = deleted.first else {
                if let purged = purges().last(where: { $0.record.hex.hasPrefix(prefix) }) {
                    throw StoreError(
                        .unknownID,
                        "Record \(purged.record.hex.prefix(12)) was purged by \(deviceLabel(purged.by)): its content is gone on every device that synced since; `amanat history \(purged.record.hex.prefix(12))` says when and why."
                    )
                }
                throw StoreError(.unknownID, "No record has the id \(text).")
            }
            guard includeDeleted else {
                throw StoreError(
                    .unknownID,
                    "Record \(state.id.hex.prefix(12)) is deleted: `amanat show --deleted \(state.id.hex.prefix(12))` shows it and `amanat undelete \(state.id.hex.prefix(12))` restores it."
                )
            }
            return state
        case 1:
            if includeDeleted, try deletedRecords().contains(where: { $0.id.hex.hasPrefix(prefix) }) {
                throw StoreError(.ambiguousID, "The id \(text) matches several records; give more characters.")
            }
            let state = try mapErrors { try database.read { db in try loadState(db, id: matches[0].id) } }
            guard let state, state.isVisible else {
                throw StoreError(.damaged, "The vault is damaged: record \(text) is listed but cannot be read.")
            }
            return state
        default:
            throw StoreError(.ambiguousID, "The id \(text) matches \(matches.count) records; give more characters.")
        }
    }

    /// `text` quoted for a shell command line in a hint, unless it is a plain word.
    static func shellWord(_ text: String) -> String {
        let plain =
            !text.isEmpty
            && text.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)
            }
        return plain ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The envelope of (`author`, `seq`), decoded.
    public func envelope(author: DeviceID, seq: UInt64) throws -> Envelope? {
        // No stored seq is beyond Int64 (SQLite's integers).
        guard let stored = Int64(exactly: seq) else { return nil }
        let body: Data? = try mapErrors {
            try database.read { db in
                try Data.fetchOne(
                    db.cachedStatement(sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?"),
                    arguments: [Data(author.bytes), stored])
            }
        }
        guard let body else { return nil }
        do {
            return try Envelope(decoding: Array(body))
        } catch {
            throw StoreError(.damaged, "The vault is damaged: a stored envelope does not decode. Run `amanat verify`.")
        }
    }

    /// The decrypted changes that made `state`, in (stamp, author, seq) order. It only reads, so several threads may
    /// call it at once while no thread changes the vault (an export reads a batch of records' histories on both
    /// cores); their database reads take turns.
    public func history(of state: RecordState) throws -> [(envelope: Envelope, change: AuthoredChange)] {
        let record = "record \(state.id.hex.prefix(12))"
        return try state.changes.map { ref in
            let change = "change \(ref.seq) of device \(ref.author.hex.prefix(12))"
            guard let envelope = try envelope(author: ref.author, seq: ref.seq) else {
                throw StoreError(
                    .damaged,
                    "The vault is damaged: \(change), which made \(record), is missing from the log. Run `amanat verify`."
                )
            }
            guard let key = key(epoch: envelope.header.keyEpoch) else {
                throw StoreError(.damaged, "The \(change), which made \(record), uses a key epoch this device lacks.")
            }
            do {
                return (envelope, try envelope.openAuthored(with: key))
            } catch {
                throw StoreError(
                    .damaged,
                    "The vault is damaged: \(change), which made \(record), does not decrypt. Run `amanat verify`.")
            }
        }
    }
}

/// The parts of a job shared out over threads, each written once by its own thread.
public final class ParallelResults<Element>: @unchecked Sendable {
    // @unchecked Sendable: `parts` is only touched under `lock`.
    private let lock = NSLock()
    private var parts: [Result<[Element], Error>?]

    /// Room for `parts` parts.
    public init(parts: Int) { self.parts = Array(repeating: nil, count: parts) }

    /// `body(i)` for every `i` in `0..<count`, spread over the cores, in order; the first error (in order) is thrown
    /// after every part ended. `body` runs on several threads at once: it must only read what they share.
    public static func map(_ count: Int, _ body: (Int) throws -> Element) throws -> [Element] {
        let results = ParallelResults(parts: count)
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: count) { i in results.set(i) { [try shared.value(i)] } }
        }
        return try results.joined()
    }

    /// Stores part `part` (what `body` returns, or its error).
    public func set(_ part: Int, _ body: () throws -> [Element]) {
        let result = Result { try body() }
        lock.lock()
        parts[part] = result
        lock.unlock()
    }

    /// Every part in order, or the first part's error.
    public func joined() throws -> [Element] {
        lock.lock()
        defer { lock.unlock() }
        var all: [Element] = []
        for part in parts { all += try part?.get() ?? [] }
        return all
    }
}

/// A value handed to the threads of `DispatchQueue.concurrentPerform`, which only read it.
struct UncheckedBox<Value>: @unchecked Sendable {
    // @unchecked Sendable: the threads only call or read `value`; its callers make sure that is safe.
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Views decoded by one thread into memory of their own, with their ids beside them, so that another thread can
/// order them and move them into one array without copying one (a copy retains every string and dictionary a view
/// holds, and the copied-from array then releases them all: a sixth of a 100k-record `list`'s reading thread).
final class ViewRun: @unchecked Sendable {
    // @unchecked Sendable: filled by one thread, then handed to another through `OrderedWork`, which orders the two.
    private let memory: UnsafeMutablePointer<RecordView>
    private let capacity: Int
    private(set) var ids: [RecordID] = []
    /// The views still held here (the first `count` slots are initialised).
    private var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        memory = .allocate(capacity: max(capacity, 1))
        ids.reserveCapacity(capacity)
    }

    func append(_ view: RecordView) {
        precondition(count < capacity, "ViewRun.append past its capacity")
        ids.append(view.id)
        (memory + count).initialize(to: view)
        count += 1
    }

    /// Every view of `runs`, sorted by id (stable: equal ids keep their order), moved out of the runs.
    static func movedInIDOrder(_ runs: [ViewRun]) -> [RecordView] {
        var order: [(id: RecordID, run: Int32, index: Int32)] = []
        order.reserveCapacity(runs.reduce(0) { $0 + $1.count })
        for (r, run) in runs.enumerated() {
            for (i, id) in run.ids.enumerated() { order.append((id, Int32(r), Int32(i))) }
        }
        order.sort { ($0.id, $0.run, $0.index) < ($1.id, $1.run, $1.index) }
        let views = [RecordView](unsafeUninitializedCapacity: order.count) { buffer, initialized in
            for (position, entry) in order.enumerated() {
                (buffer.baseAddress! + position).initialize(to: (runs[Int(entry.run)].memory + Int(entry.index)).move())
            }
            initialized = order.count
        }
        // Every view was moved out: nothing is left to deinitialise.
        for run in runs { run.count = 0 }
        return views
    }

    deinit {
        memory.deinitialize(count: count)
        memory.deallocate()
    }
}

/// Rows read from SQLite, kept in one array: each row's slot and sealed body are ranges of `bytes`.
struct RowBlock: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var ranges: [(slot: Range<Int>, body: Range<Int>)] = []

    var count: Int { ranges.count }

    mutating func append(slot: UnsafeRawBufferPointer?, body: UnsafeRawBufferPointer?) throws {
        guard let slot, let body else {
            throw StoreError(
                .damaged, "The vault is damaged: a stored record is not a sealed row. Run `amanat verify`.")
        }
        let start = bytes.count
        bytes.append(contentsOf: slot)
        let middle = bytes.count
        bytes.append(contentsOf: body)
        ranges.append((start..<middle, middle..<bytes.count))
    }

    init() {}

    /// An empty block with room for as many rows and bytes as `other` holds.
    init(reservingLike other: RowBlock) {
        bytes.reserveCapacity(other.bytes.count)
        ranges.reserveCapacity(other.count)
    }
}
