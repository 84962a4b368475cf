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
        return migrator
    }
}
