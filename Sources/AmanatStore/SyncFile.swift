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

    /// Opens the sync file at `url` for vault `vaultID`, creating it when missing and `create` is true.
    public static func open(at url: URL, vaultID: [UInt8], create: Bool) throws -> SyncFile {
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) {
            guard create else { throw StoreError(.noVault, "There is no sync file at \(url.path).") }
            try createFile(at: url, vaultID: vaultID)
        }
        let writable =
            fm.isWritableFile(atPath: url.path)
            && fm.isWritableFile(atPath: url.deletingLastPathComponent().path)
        var config = Configuration()
        config.readonly = !writable
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            if !writable { return }
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            try db.execute(sql: "PRAGMA synchronous = EXTRA")
        }
        let database: DatabaseQueue
        do {
            database = try Vault.mapErrors { try DatabaseQueue(path: url.path, configuration: config) }
        } catch let error as StoreError where error.code == .damaged {
            throw StoreError(.damaged, "\(url.path) is not a sync file, or it is damaged.")
        }
        let file = SyncFile(url: url, vaultID: vaultID, isReadOnly: !writable, database: database)
        try file.checkIdentity()
        return file
    }

    /// Builds a new file under a temporary name, fsyncs it and renames it into place.
    private static func createFile(at url: URL, vaultID: [UInt8]) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new-\(getpid())")
        try? FileManager.default.removeItem(at: temp)
        do {
            var config = Configuration()
            config.prepareDatabase { db in
                // Set before the first table exists; larger pages waste less space per envelope.
                try db.execute(sql: "PRAGMA page_size = 16384")
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                try db.execute(sql: "PRAGMA synchronous = EXTRA")
            }
            let queue = try Vault.mapErrors { try DatabaseQueue(path: temp.path, configuration: config) }
            try Vault.mapErrors {
                try queue.write { db in
                    try db.execute(
                        sql: """
                            CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
                            CREATE TABLE device (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);
                            CREATE TABLE envelope (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
                            """)
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
        let (format, stored): (Int?, Data?)
        do {
            (format, stored) = try database.read { db in
                guard try db.tableExists("meta"), try db.tableExists("envelope"), try db.tableExists("device") else {
                    return (nil, nil)
                }
                return (
                    try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'"),
                    try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'vault_id'")
                )
            }
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            throw StoreError(.damaged, "\(url.path) is not a sync file, or it is damaged.")
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
        try Vault.mapErrors {
            try database.read { db in
                var vector: [DeviceID: ChainHead] = [:]
                for device in try Row.fetchAll(db, sql: "SELECT id, key FROM device") {
                    let base = (device["id"] as Int64) << Self.seqBits
                    guard
                        let row = try Row.fetchOne(
                            db, sql: "SELECT id, body FROM envelope WHERE id > ? AND id <= ? ORDER BY id DESC LIMIT 1",
                            arguments: [base, base | Self.seqMask])
                    else { continue }
                    let head = try Self.decode(
                        row["body"], author: device["key"], seq: (row["id"] as Int64) & Self.seqMask, in: url)
                    vector[head.header.author] = ChainHead(seq: head.header.seq, hash: head.hash)
                }
                return vector
            }
        }
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
        let rows: [Row] = try Vault.mapErrors {
            try database.read { db in
                guard let device = try Int64.fetchOne(db, sql: "SELECT id FROM device WHERE key = ?", arguments: [key]),
                    seq < UInt64(Self.seqMask)
                else { return [] }
                let base = device << Self.seqBits
                return try Row.fetchAll(
                    db, sql: "SELECT id, body FROM envelope WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                    arguments: [base | Int64(seq), base | Self.seqMask, limit])
            }
        }
        return try rows.map {
            try Self.decode($0["body"], author: key, seq: ($0["id"] as Int64) & Self.seqMask, in: url)
        }
    }

    /// Appends envelopes the file lacks, in one transaction; an envelope already present is left as it is.
    ///
    /// Each run must continue the file's chain for its author; a run that does not is skipped (the file keeps
    /// what it had). Returns the number of envelopes written.
    @discardableResult
    public func append(_ envelopes: [Envelope]) throws -> Int {
        guard !isReadOnly else { throw StoreError(.io, "The sync file \(url.path) is read-only.") }
        return try Vault.mapErrors {
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
                            let base = id << Self.seqBits
                            let last = try Row.fetchOne(
                                db,
                                sql: "SELECT id, body FROM envelope WHERE id > ? AND id <= ? ORDER BY id DESC LIMIT 1",
                                arguments: [base, base | Self.seqMask])
                            let head = try last.map { row -> ChainHead in
                                let e = try Self.decode(
                                    row["body"], author: key, seq: (row["id"] as Int64) & Self.seqMask, in: url)
                                return ChainHead(seq: e.header.seq, hash: e.hash)
                            }
                            heads[author] = (id, head ?? .empty)
                        } else {
                            try db.execute(sql: "INSERT INTO device(key) VALUES (?)", arguments: [key])
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

    /// SQLite's integrity check of the file: true when it passes.
    public func passesIntegrityCheck() throws -> Bool {
        try Vault.mapErrors {
            try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") == ["ok"] }
        }
    }

    /// Runs raw SQL on the file, for tests that tamper with it.
    func executeForTesting(_ sql: String, _ arguments: [Data] = []) throws {
        try database.write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments)) }
    }

    /// The number of envelopes in the file.
    public func count() throws -> Int {
        try Vault.mapErrors {
            try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0 }
        }
    }
}
