import AmanatStore
import Foundation
import GRDB

/// Plain GRDB work with no encryption, signing or projection: the baselines the benchmarks measure against in
/// the same run (Docs/performance.md). Same SQLite settings as a vault: WAL, synchronous=FULL, a 32 MiB page cache.
public final class PlainBaseline {
    private let database: DatabaseQueue

    /// Creates a database at `url` with one table `row(key BLOB PRIMARY KEY, body BLOB) WITHOUT ROWID`.
    public init(url: URL) throws {
        database = try Vault.mapErrors {
            var config = Configuration()
            config.prepareDatabase { db in
                try SQLiteHardening.apply(db)
                try db.execute(sql: "PRAGMA cache_size = -32768")
            }
            let queue = try DatabaseQueue(path: url.path, configuration: config)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try db.execute(
                    sql: "CREATE TABLE row (key BLOB PRIMARY KEY NOT NULL, body BLOB NOT NULL) WITHOUT ROWID")
            }
            return queue
        }
    }

    /// Inserts rows, `perTransaction` per transaction.
    public func insert(_ rows: [(Data, Data)], perTransaction: Int) throws {
        try write(rows, perTransaction: perTransaction, sql: "INSERT INTO row(key, body) VALUES (?, ?)")
    }

    /// Upserts rows, `perTransaction` per transaction.
    public func upsert(_ rows: [(Data, Data)], perTransaction: Int) throws {
        try write(
            rows, perTransaction: perTransaction,
            sql: "INSERT INTO row(key, body) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET body = excluded.body")
    }

    private func write(_ rows: [(Data, Data)], perTransaction: Int, sql: String) throws {
        try Vault.mapErrors {
            var index = 0
            while index < rows.count {
                let end = min(index + perTransaction, rows.count)
                try database.write { db in
                    let statement = try db.cachedStatement(sql: sql)
                    for i in index..<end { try statement.execute(arguments: [rows[i].0, rows[i].1]) }
                }
                index = end
            }
        }
    }

    /// Reads every row's body; returns the number of bytes read.
    public func readAll() throws -> Int {
        try Vault.mapErrors {
            try database.read { db in
                var total = 0
                let cursor = try Data.fetchCursor(db, sql: "SELECT body FROM row")
                while let body = try cursor.next() { total += body.count }
                return total
            }
        }
    }
}
