import AmanatCore
import GRDB

/// The database schema and its migrations (Protocol/storage.md §2).
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
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
                    CREATE TABLE record (slot BLOB PRIMARY KEY NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
                    CREATE TABLE local (key TEXT PRIMARY KEY NOT NULL, body BLOB NOT NULL);
                    CREATE TABLE fork (
                        author BLOB NOT NULL,
                        seq INTEGER NOT NULL,
                        hash BLOB NOT NULL,
                        body BLOB NOT NULL,
                        PRIMARY KEY (author, seq, hash)
                    ) WITHOUT ROWID;
                    """)
        }
        // Membership (Protocol/storage.md §2, Protocol/membership.md): which envelopes carry membership entries;
        // envelopes of devices that are not members, kept apart as evidence; membership entries an invitation
        // brought whose chains have not arrived yet.
        migrator.registerMigration("v2-membership") { db in
            try db.execute(
                sql: """
                    CREATE TABLE authority (author BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (author, seq))
                        WITHOUT ROWID;
                    CREATE TABLE held (
                        author BLOB NOT NULL,
                        seq INTEGER NOT NULL,
                        hash BLOB NOT NULL,
                        body BLOB NOT NULL,
                        PRIMARY KEY (author, seq)
                    ) WITHOUT ROWID;
                    CREATE TABLE pending_authority (
                        author BLOB NOT NULL,
                        seq INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        PRIMARY KEY (author, seq)
                    ) WITHOUT ROWID;
                    """)
        }
        // The envelopes stored without their content (purged wire form, Protocol/envelope.md §7) are looked for at
        // every sync, to restore what a carrier still has in full (Protocol/storage.md §3). A partial index holds
        // only those, so the look-up no longer reads every envelope of the vault. Nothing else changes: a vault
        // opened by the release before ignores it, and SQLite keeps it current for every writer.
        migrator.registerMigration("v3-without-content-index") { db in
            try db.execute(sql: "CREATE INDEX envelope_without_content ON envelope(author, seq) \(withoutContent)")
        }
        return migrator
    }

    /// The condition that picks envelopes stored in their purged wire form, written the same way in the partial
    /// index and in every query meant to use it (SQLite uses a partial index only for a query whose condition
    /// implies the index's).
    static let withoutContent = "WHERE length(body) = \(Envelope.purgedLength)"
}
