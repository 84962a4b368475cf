#include <sqlite3.h>

/// Turns on SQLite's defensive mode and turns off trust in the schema on one connection
/// (sqlite3_db_config is variadic, so Swift cannot call it directly). Returns an SQLite result code.
static inline int amanat_sqlite_harden(sqlite3 *db) {
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
    if (rc != SQLITE_OK) return rc;
    return sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
}

/// 1 when defensive mode is on for this connection, 0 when off, -1 on error.
static inline int amanat_sqlite_is_defensive(sqlite3 *db) {
    int on = -1;
    if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &on) != SQLITE_OK) return -1;
    return on;
}
