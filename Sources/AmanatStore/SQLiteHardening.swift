import CSQLiteHardening
import GRDB

/// SQLite's defensive settings, applied to every database Amanat opens: the vault, sync files and relay files.
///
/// A database file can come from outside (a sync file on a stick, a relay file restored from a backup), and its
/// schema is then the attacker's: `trusted_schema` off keeps functions with side effects and virtual tables out of
/// triggers, views and defaults, and defensive mode refuses `writable_schema`, `journal_mode=OFF` and direct writes
/// to shadow tables, so nothing read from a file can change how SQLite behaves (Protocol/sync-file.md §4).
package enum SQLiteHardening {
    /// Turns the defensive settings on for the connection `db`; throws when SQLite refuses.
    package static func apply(_ db: Database) throws {
        guard let connection = db.sqliteConnection else { return }
        let code = amanat_sqlite_harden(connection)
        guard code == SQLITE_OK else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "SQLite refused its defensive mode")
        }
        try db.execute(sql: "PRAGMA trusted_schema = OFF")
        // Freed bytes are overwritten with zeros: a purge leaves no old ciphertext in free pages or cells.
        try db.execute(sql: "PRAGMA secure_delete = ON")
    }

    /// Whether defensive mode is on for `db` (for tests).
    static func isDefensive(_ db: Database) -> Bool {
        guard let connection = db.sqliteConnection else { return false }
        return amanat_sqlite_is_defensive(connection) == 1
    }
}
