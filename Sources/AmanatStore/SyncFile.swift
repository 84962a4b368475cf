import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// A sync file: an SQLite file of envelopes that anyone can carry, e.g. on a USB stick (Protocol/sync-file.md).
///
/// It holds no key: only envelopes, which are ciphertext and signed. It uses a rollback journal (no WAL, which
/// FAT32 and exFAT sticks handle badly) with full fsync, and a new file is built beside its final name and renamed
/// into place, so a stick pulled out mid-write leaves either the old content or the new, never less.
///
/// ```swift
/// let file = try SyncFile.open(at: url, vaultID: vault.vaultID, create: true)
/// let theirs = try file.versionVector()
/// ```
public final class SyncFile: @unchecked Sendable {
    // @unchecked Sendable: the only state is the DatabaseQueue, which serialises all access itself.

    /// The format version in the file's `meta` table.
    public static let formatVersion = 1

    /// Where the file is.
    public let url: URL
    /// The vault whose envelopes it carries.
    public let vaultID: [UInt8]
    /// Whether the file can only be read (read-only medium or permissions): then it is pulled from only.
    public let isReadOnly: Bool
    private let database: DatabaseQueue

    private init(url: URL, vaultID: [UInt8], isReadOnly: Bool, database: DatabaseQueue) {
        self.url = url
        self.vaultID = vaultID
        self.isReadOnly = isReadOnly
        self.database = database
    }

    /// The file's whole schema, as `createFile` makes it: the only one a reader accepts (Protocol/sync-file.md §1).
    /// Each entry is `type`, `name`, `tbl_name` and `sql` of `sqlite_master`.
    static let schema: [[String?]] = [
        ["table", "meta", "meta", "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)"],
        ["index", "sqlite_autoindex_meta_1", "meta", nil],
        ["table", "device", "device", "CREATE TABLE device (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE)"],
        ["index", "sqlite_autoindex_device_1", "device", nil],
        ["table", "envelope", "envelope", "CREATE TABLE envelope (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"],
    ]

    /// Opens the sync file at `url` for vault `vaultID`, creating it when missing and `create` is true. With
    /// `readOnly` (import), the file is opened read-only whatever its permissions.
    ///
    /// A sync file is data from outside: before anything else is read or written, its schema must be exactly the
    /// documented one (no trigger, view, index or other table), and SQLite runs in defensive mode on it.
    public static func open(at url: URL, vaultID: [UInt8], create: Bool, readOnly: Bool = false) throws -> SyncFile {
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) {
            guard create else { throw StoreError(.noVault, "There is no sync file at \(url.path).") }
            try createFile(at: url, vaultID: vaultID)
        }
        let writable =
            !readOnly && fm.isWritableFile(atPath: url.path)
            && fm.isWritableFile(atPath: url.deletingLastPathComponent().path)
        var config = Configuration()
        config.readonly = !writable
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in try SQLiteHardening.apply(db) }
        let database = try mapErrors(url) { try DatabaseQueue(path: url.path, configuration: config) }
        let file = SyncFile(url: url, vaultID: vaultID, isReadOnly: !writable, database: database)
        try file.checkSchema()
        if writable {
            try mapErrors(url) {
                try database.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA journal_mode = DELETE")
                    try db.execute(sql: "PRAGMA synchronous = EXTRA")
                }
            }
        }
        try file.checkIdentity()
        return file
    }

    /// Runs `body`, reporting SQLite failures and undecodable rows as failures of this sync file, never of the vault.
    @discardableResult
    static func mapErrors<T>(_ url: URL, _ body: () throws -> T) throws -> T {
        try Vault.mapErrors(file: "sync file", at: url) {
            do {
                return try body()
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_READONLY_ROLLBACK {
                // A hot journal: a sync was interrupted mid-commit, and only a writer may roll it back.
                throw StoreError(
                    .io,
                    "The sync file \(url.path) was left half-written by an interrupted sync; run `amanat sync \(url.path)` once, where the file is writable, to repair it (import never writes to it)."
                )
            }
        }
    }

    private func mapErrors<T>(_ body: () throws -> T) throws -> T { try Self.mapErrors(url, body) }

    /// Refuses a file whose schema is not exactly ``schema``: a trigger, view, index or extra table in a file from
    /// outside would be code or data the reader never asked for.
    private func checkSchema() throws {
        let entries: [[String?]] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT type, name, tbl_name, sql FROM sqlite_master").map { row in
                    try (0..<4).map { index -> String? in
                        guard !row.hasNull(atIndex: index) else { return nil }
                        guard let text = try? row.decode(String.self, atIndex: index) else {
                            throw UntrustedRowError(column: "schema entry")
                        }
                        return text
                    }
                }
            }
        }
        let sortKey = { (entry: [String?]) in entry.map { $0 ?? "" }.joined(separator: "\u{0}") }
        guard entries.map(sortKey).sorted() == Self.schema.map(sortKey).sorted() else {
            throw StoreError(
                .damaged,
                "Refused: \(url.path) is not a sync file as Amanat writes it (its schema holds a trigger, view, index or table that does not belong); nothing was synced."
            )
        }
    }

    /// Builds a new file under a temporary name, fsyncs it and renames it into place.
    private static func createFile(at url: URL, vaultID: [UInt8]) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new-\(getpid())")
        try? FileManager.default.removeItem(at: temp)
        do {
            var config = Configuration()
            config.prepareDatabase { db in
                try SQLiteHardening.apply(db)
                // Set before the first table exists; larger pages waste less space per envelope.
                try db.execute(sql: "PRAGMA page_size = 16384")
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                try db.execute(sql: "PRAGMA synchronous = EXTRA")
            }
            let queue = try mapErrors(url) { try DatabaseQueue(path: temp.path, configuration: config) }
            try mapErrors(url) {
                try queue.write { db in
                    for entry in schema { if let sql = entry[3] { try db.execute(sql: sql) } }
                    try db.execute(sql: "INSERT INTO meta VALUES ('format', ?)", arguments: [formatVersion])
                    try db.execute(sql: "INSERT INTO meta VALUES ('vault_id', ?)", arguments: [Data(vaultID)])
                }
                try queue.close()
            }
            AtomicFile.flush(temp)
            guard rename(temp.path, url.path) == 0 else {
                throw AtomicFile.ioError(errno, "could not create \(url.path)")
            }
            AtomicFile.syncDirectory(url.deletingLastPathComponent())
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw error
        }
    }

    private func checkIdentity() throws {
        let notSync = StoreError(.rejected, "\(url.path) is not an Amanat sync file.")
        let (format, stored): (Int64?, Data?) = try mapErrors {
            try database.read { db in
                let value = { (key: String) in
                    try Row.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
                }
                return (
                    try value("format").map { try $0.untrusted("value", as: Int64.self) },
                    try value("vault_id").map { try $0.untrusted("value", as: Data.self) }
                )
            }
        }
        guard let format, let stored else { throw notSync }
        guard format == Self.formatVersion else {
            throw StoreError(.rejected, "\(url.path) was written by another version of Amanat (sync format \(format)).")
        }
        guard Array(stored) == vaultID else {
            throw StoreError(.rejected, "\(url.path) belongs to another vault; nothing was synced.")
        }
    }

    /// Envelope rows are keyed by `device.id << 40 | seq` (Protocol/sync-file.md §1).
    static let seqBits: Int64 = 40
    static let seqMask: Int64 = (1 << 40) - 1

    /// Each device's last seq and head hash in the file (the hash is recomputed from the last envelope).
    public func versionVector() throws -> [DeviceID: ChainHead] {
        try mapErrors {
            try database.read { db in
                var vector: [DeviceID: ChainHead] = [:]
                for device in try Row.fetchAll(db, sql: "SELECT id, key FROM device") {
                    let id = try device.untrusted("id", as: Int64.self)
                    guard id >= 0, id <= Int64.max >> Self.seqBits else { throw UntrustedRowError(column: "device id") }
                    let base = id << Self.seqBits
                    guard let row = try Self.lastRow(db, base: base) else { continue }
                    let head = try Self.decode(
                        row.untrusted("body"), author: device.untrusted("key"),
                        seq: row.untrusted("id", as: Int64.self) & Self.seqMask, in: url)
                    vector[head.header.author] = ChainHead(seq: head.header.seq, hash: head.hash)
                }
                return vector
            }
        }
    }

    /// The most one read of envelopes loads: 64 MiB (more envelopes are read by the next call).
    static let maximumReadBytes = 64 * 1024 * 1024

    /// The row of a device's last envelope (id and body), its size checked before the body is read.
    static func lastRow(_ db: Database, base: Int64) throws -> Row? {
        guard
            let sized = try Row.fetchOne(
                db, sql: "SELECT id, length(body) AS n FROM envelope WHERE id > ? AND id <= ? ORDER BY id DESC LIMIT 1",
                arguments: [base, base | seqMask])
        else { return nil }
        let id = try sized.untrusted("id", as: Int64.self)
        let author = try Data.fetchOne(db, sql: "SELECT key FROM device WHERE id = ?", arguments: [base >> seqBits])
        _ = try checkedLength(sized, id: id, author: author ?? Data())
        return try Row.fetchOne(db, sql: "SELECT id, body FROM envelope WHERE id = ?", arguments: [id])
    }

    /// The `n` (body length) of a sized row, refused when it is over ``Envelope/maximumLength``.
    static func checkedLength(_ row: Row, id: Int64, author: Data) throws -> Int {
        let length = try row.untrusted("n", as: Int64.self)
        guard length >= 0, length <= Int64(Envelope.maximumLength) else {
            throw StoreError(
                .rejected,
                "Refused: the sync file holds a change \(id & seqMask) of device \(Hex.encode(author).prefix(12)) of \(length) bytes, over the \(Envelope.maximumLength >> 20) MiB an envelope may have."
            )
        }
        return Int(length)
    }

    /// Decodes a row's envelope and checks that it is the one the row says; anything else is refused.
    static func decode(_ body: Data, author: Data, seq: Int64, in url: URL) throws -> Envelope {
        guard let envelope = try? Envelope(decoding: Array(body)), envelope.header.author.bytes == Array(author),
            envelope.header.seq == UInt64(seq)
        else {
            throw StoreError(
                .rejected,
                "Refused: the sync file holds a damaged change \(seq) of device \(Hex.encode(author).prefix(12)).")
        }
        return envelope
    }

    /// Up to `limit` envelopes of `author` after `seq`, in order; undecodable rows are refused as damage.
    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) throws -> [Envelope] {
        let key = Data(author.bytes)
        let rows: [Row] = try mapErrors {
            try database.read { db in
                guard let device = try Int64.fetchOne(db, sql: "SELECT id FROM device WHERE key = ?", arguments: [key]),
                    seq < UInt64(Self.seqMask), device >= 0, device <= Int64.max >> Self.seqBits
                else { return [] }
                let base = device << Self.seqBits
                // Sizes first: no envelope over the limit is ever read, and one call reads at most
                // `maximumReadBytes` (at least one envelope), whatever the file claims.
                let sized = try Row.fetchAll(
                    db, sql: "SELECT id, length(body) AS n FROM envelope WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                    arguments: [base | Int64(seq), base | Self.seqMask, limit])
                var total = 0
                var last: Int64?
                for row in sized {
                    let id = try row.untrusted("id", as: Int64.self)
                    let length = try Self.checkedLength(row, id: id, author: key)
                    if last != nil && total + length > Self.maximumReadBytes { break }
                    total += length
                    last = id
                }
                guard let last else { return [] }
                return try Row.fetchAll(
                    db, sql: "SELECT id, body FROM envelope WHERE id > ? AND id <= ? ORDER BY id",
                    arguments: [base | Int64(seq), last])
            }
        }
        return try mapErrors {
            try rows.map {
                try Self.decode(
                    $0.untrusted("body"), author: key, seq: $0.untrusted("id", as: Int64.self) & Self.seqMask, in: url)
            }
        }
    }

    /// Appends envelopes the file lacks, in one transaction; an envelope already present is left as it is.
    ///
    /// Each run must continue the file's chain for its author; a run that does not is skipped (the file keeps
    /// what it had). Returns the number of envelopes written.
    @discardableResult
    public func append(_ envelopes: [Envelope]) throws -> Int {
        guard !isReadOnly else { throw StoreError(.io, "The sync file \(url.path) is read-only.") }
        return try mapErrors {
            try database.write { db in
                var written = 0
                var heads: [DeviceID: (device: Int64, head: ChainHead)] = [:]
                let ordered = envelopes.sorted {
                    $0.header.author != $1.header.author
                        ? $0.header.author < $1.header.author : $0.header.seq < $1.header.seq
                }
                for envelope in ordered {
                    let author = envelope.header.author
                    if heads[author] == nil {
                        let key = Data(author.bytes)
                        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM device WHERE key = ?", arguments: [key])
                        {
                            guard id >= 0, id <= Int64.max >> Self.seqBits else {
                                throw UntrustedRowError(column: "device id")
                            }
                            let base = id << Self.seqBits
                            let last = try Self.lastRow(db, base: base)
                            let head = try last.map { row -> ChainHead in
                                let e = try Self.decode(
                                    row.untrusted("body"), author: key,
                                    seq: row.untrusted("id", as: Int64.self) & Self.seqMask, in: url)
                                return ChainHead(seq: e.header.seq, hash: e.hash)
                            }
                            heads[author] = (id, head ?? .empty)
                        } else {
                            try db.execute(sql: "INSERT INTO device(key) VALUES (?)", arguments: [key])
                            guard db.lastInsertedRowID <= Int64.max >> Self.seqBits else {
                                throw UntrustedRowError(column: "device id")
                            }
                            heads[author] = (db.lastInsertedRowID, .empty)
                        }
                    }
                    let (device, head) = heads[author]!
                    guard envelope.header.seq == head.seq + 1, envelope.header.previousHash == head.hash,
                        envelope.header.seq <= UInt64(Self.seqMask)
                    else { continue }
                    try db.execute(
                        sql: "INSERT INTO envelope(id, body) VALUES (?, ?)",
                        arguments: [device << Self.seqBits | Int64(envelope.header.seq), Data(envelope.encoded())])
                    heads[author] = (device, ChainHead(seq: envelope.header.seq, hash: envelope.hash))
                    written += 1
                }
                return written
            }
        }
    }

    /// Replaces the file's copy of each envelope by the given purged form when it is the same envelope (same
    /// author, seq and hash) still holding its ciphertext; `secure_delete` zeroes the freed bytes. Returns how many
    /// were replaced. The caller (a vault) decided that a coordinator's purge names them.
    @discardableResult
    public func replaceWithPurged(_ envelopes: [Envelope]) throws -> Int {
        try replaceRows(with: envelopes.filter(\.isPurged), holdingPurgedForm: false)
    }

    /// Up to `limit` of the envelopes the file holds in their purged form that `wanted` accepts, in file order. A file
    /// cannot evaluate a purge: the caller (a vault) decides, by holding a full copy that no purge it knows names,
    /// which purged forms are copies a member stripped (Protocol/sync-file.md §6).
    public func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool) throws -> [Envelope] {
        try mapErrors {
            try database.read { db in
                var found: [Envelope] = []
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT e.id, e.body, d.key FROM envelope e JOIN device d ON d.id = e.id >> \(Self.seqBits)
                        WHERE length(e.body) = \(Envelope.purgedLength) ORDER BY e.id
                        """)
                while found.count < limit, let row = try rows.next() {
                    // A damaged row is not this vault's to mend here: it is skipped (a pull refuses it, `verify`
                    // reports it), so a hostile file cannot end a sync that already pulled and pushed.
                    guard
                        let stripped = try? Self.decode(
                            row.untrusted("body"), author: row.untrusted("key"),
                            seq: row.untrusted("id", as: Int64.self) & Self.seqMask, in: url)
                    else { continue }
                    if try wanted(stripped) { found.append(stripped) }
                }
                return found
            }
        }
    }

    /// Puts back content: each full envelope replaces the file's copy of it when that copy is its purged form (same
    /// author, seq and hash). Returns how many were put back. The caller (a vault) decided that no purge names them.
    @discardableResult
    public func putBackContent(_ envelopes: [Envelope]) throws -> Int {
        try replaceRows(with: envelopes.filter { !$0.isPurged }, holdingPurgedForm: true)
    }

    /// Replaces, in one transaction, the row of each envelope whose held copy is the same envelope (same author, seq
    /// and hash) in the other form: purged when `holdingPurgedForm`, else full. Returns how many were replaced.
    private func replaceRows(with envelopes: [Envelope], holdingPurgedForm: Bool) throws -> Int {
        guard !isReadOnly else { throw StoreError(.io, "The sync file \(url.path) is read-only.") }
        guard !envelopes.isEmpty else { return 0 }
        return try mapErrors {
            try database.write { db in
                var replaced = 0
                for envelope in envelopes {
                    let key = Data(envelope.header.author.bytes)
                    guard envelope.header.seq <= UInt64(Self.seqMask),
                        let device = try Int64.fetchOne(
                            db, sql: "SELECT id FROM device WHERE key = ?", arguments: [key]),
                        device >= 0, device <= Int64.max >> Self.seqBits
                    else { continue }
                    let id = device << Self.seqBits | Int64(envelope.header.seq)
                    guard
                        let sized = try Row.fetchOne(
                            db, sql: "SELECT id, length(body) AS n FROM envelope WHERE id = ?", arguments: [id]),
                        try (Self.checkedLength(sized, id: id, author: key) == Envelope.purgedLength)
                            == holdingPurgedForm,
                        let body = try Data.fetchOne(
                            db, sql: "SELECT body FROM envelope WHERE id = ?", arguments: [id]),
                        let stored = try? Envelope(decoding: Array(body)), stored.isPurged == holdingPurgedForm,
                        stored.hash == envelope.hash
                    else { continue }
                    try db.execute(
                        sql: "UPDATE envelope SET body = ? WHERE id = ?", arguments: [Data(envelope.encoded()), id])
                    replaced += 1
                }
                return replaced
            }
        }
    }

    /// SQLite's integrity check of the file: true when it passes.
    public func passesIntegrityCheck() throws -> Bool {
        try mapErrors {
            try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") == ["ok"] }
        }
    }

    /// Runs raw SQL on the file, for tests that tamper with it.
    func executeForTesting(_ sql: String, _ arguments: [Data] = []) throws {
        try database.write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments)) }
    }

    /// The number of envelopes in the file.
    public func count() throws -> Int {
        try mapErrors {
            try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0 }
        }
    }
}

/// A column of a row from a file that may come from outside was NULL or of another type.
package struct UntrustedRowError: Error {
    /// What was wrong, e.g. "body".
    package var column: String
}

extension Row {
    /// The value of `column` in a row of a file from outside: a NULL or a value of another type throws
    /// ``UntrustedRowError``, never traps as the non-optional subscript does.
    package func untrusted<Value: DatabaseValueConvertible>(
        _ column: String, as type: Value.Type = Value.self
    ) throws -> Value {
        guard let value = try? decode(Value.self, forColumn: column) else { throw UntrustedRowError(column: column) }
        return value
    }

    /// The integer stored in `column`, or nil when it holds anything else (a NULL, text, a blob, or a REAL, even a
    /// whole one: a file edited by hand, which GRDB's decoders would convert).
    package func storedInteger(_ column: String) -> Int64? {
        if case .int64(let value) = (self[column] as DatabaseValue).storage { return value }
        return nil
    }

    /// The bytes stored as a BLOB in `column`, or nil when it holds anything else.
    package func storedBlob(_ column: String) -> [UInt8]? {
        if case .blob(let value) = (self[column] as DatabaseValue).storage { return Array(value) }
        return nil
    }
}
