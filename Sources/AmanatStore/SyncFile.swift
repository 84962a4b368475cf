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
        let writable = fm.isWritableFile(atPath: url.path)
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
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                try db.execute(sql: "PRAGMA synchronous = EXTRA")
            }
            let queue = try Vault.mapErrors { try DatabaseQueue(path: temp.path, configuration: config) }
            try Vault.mapErrors {
                try queue.write { db in
                    try db.execute(
                        sql: """
                            CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
                            CREATE TABLE envelope (
                                author BLOB NOT NULL,
                                seq INTEGER NOT NULL,
                                hash BLOB NOT NULL,
                                body BLOB NOT NULL,
                                PRIMARY KEY (author, seq)
                            ) WITHOUT ROWID;
                            """)
                    try db.execute(sql: "INSERT INTO meta VALUES ('format', ?)", arguments: [formatVersion])
                    try db.execute(sql: "INSERT INTO meta VALUES ('vault_id', ?)", arguments: [Data(vaultID)])
                }
                try queue.close()
            }
            let fd = Glibc.open(temp.path, O_RDONLY)
            if fd >= 0 {
                fsync(fd)
                close(fd)
            }
            guard rename(temp.path, url.path) == 0 else { throw AtomicFile.ioError(errno, "could not create \(url.path)") }
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
                guard try db.tableExists("meta"), try db.tableExists("envelope") else { return (nil, nil) }
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

    /// Each device's last seq and head hash in the file.
    public func versionVector() throws -> [DeviceID: ChainHead] {
        try Vault.mapErrors {
            try database.read { db in
                var vector: [DeviceID: ChainHead] = [:]
                for row in try Row.fetchAll(
                    db,
                    sql: """
                        SELECT e.author, e.seq, e.hash FROM envelope e
                        JOIN (SELECT author, MAX(seq) AS seq FROM envelope GROUP BY author) m
                          ON e.author = m.author AND e.seq = m.seq
                        """)
                {
                    guard let author = try? DeviceID(Array(row["author"] as Data)) else {
                        throw StoreError(.damaged, "The sync file \(url.path) is damaged.")
                    }
                    vector[author] = ChainHead(seq: UInt64(row["seq"] as Int64), hash: Array(row["hash"] as Data))
                }
                return vector
            }
        }
    }

    /// Up to `limit` envelopes of `author` after `seq`, in order; undecodable rows are reported as damage.
    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) throws -> [Envelope] {
        let rows: [Row] = try Vault.mapErrors {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT seq, body FROM envelope WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?",
                    arguments: [Data(author.bytes), Int64(seq), limit])
            }
        }
        return try rows.map { row in
            guard let envelope = try? Envelope(decoding: Array(row["body"] as Data)),
                envelope.header.author == author, envelope.header.seq == UInt64(row["seq"] as Int64)
            else {
                throw StoreError(
                    .rejected, "Refused: the sync file holds a damaged change \(row["seq"] as Int64) of device \(author.hex.prefix(12)).")
            }
            return envelope
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
                var heads: [DeviceID: ChainHead] = [:]
                let ordered = envelopes.sorted {
                    $0.header.author != $1.header.author ? $0.header.author < $1.header.author : $0.header.seq < $1.header.seq
                }
                for envelope in ordered {
                    let author = envelope.header.author
                    if heads[author] == nil {
                        let row = try Row.fetchOne(
                            db, sql: "SELECT seq, hash FROM envelope WHERE author = ? ORDER BY seq DESC LIMIT 1",
                            arguments: [Data(author.bytes)])
                        heads[author] = row.map { ChainHead(seq: UInt64($0["seq"] as Int64), hash: Array($0["hash"] as Data)) } ?? .empty
                    }
                    let head = heads[author]!
                    guard envelope.header.seq == head.seq + 1, envelope.header.previousHash == head.hash else { continue }
                    try db.execute(
                        sql: "INSERT INTO envelope(author, seq, hash, body) VALUES (?, ?, ?, ?)",
                        arguments: [Data(author.bytes), Int64(envelope.header.seq), Data(envelope.hash), Data(envelope.encoded())])
                    heads[author] = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
                    written += 1
                }
                return written
            }
        }
    }

    /// SQLite's integrity check of the file: true when it passes.
    public func passesIntegrityCheck() throws -> Bool {
        try Vault.mapErrors { try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") == ["ok"] } }
    }

    /// Runs raw SQL on the file, for tests that tamper with it.
    func executeForTesting(_ sql: String, _ arguments: [Data] = []) throws {
        try database.write { db in try db.execute(sql: sql, arguments: StatementArguments(arguments)) }
    }

    /// The number of envelopes in the file.
    public func count() throws -> Int {
        try Vault.mapErrors { try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0 } }
    }
}
