import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// One vault directory on one device: the keyring and the SQLite database of envelopes and encrypted
/// projection (Protocol/storage.md).
///
/// ```swift
/// let vault = try Vault.create(at: dir, passphrase: pass, deviceName: "field laptop", strength: .interactive)
/// let id = try vault.createRecord(kind: "statement", fields: [("title", "…")], tags: ["afghanistan"])
/// let views = try vault.visibleRecords()
/// ```
public final class Vault {
    /// The keyring file's name inside the vault directory.
    public static let keyringFileName = "keyring.amk"
    /// The database file's name inside the vault directory.
    public static let databaseFileName = "vault.sqlite"

    /// The vault directory.
    public let directory: URL
    /// The unlocked secrets.
    public internal(set) var keyring: Keyring
    let database: DatabaseQueue
    /// Who belongs to the vault, as the membership log says (Protocol/membership.md).
    public internal(set) var membership: MembershipState
    /// Vault keys of rotations, opened from the membership log with this device's agreement key.
    var rotatedKeys: [UInt32: VaultKey] = [:]
    /// Key of the encrypted projection and local-state rows.
    let localKey: SecureBytes
    /// Key of the keyed hashes that stand in for record ids as row keys.
    let slotKey: SecureBytes
    /// A source of wall-clock milliseconds; replaceable in tests.
    public var wallClock: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// This device's id.
    public var deviceID: DeviceID {
        // A 32-byte public key always makes a device id.
        guard let id = try? DeviceID(keyring.device.publicKey) else { fatalError("unreachable") }
        return id
    }

    /// The vault's id.
    public var vaultID: [UInt8] { keyring.vaultID }

    private init(directory: URL, keyring: Keyring, database: DatabaseQueue) {
        self.directory = directory
        self.keyring = keyring
        self.database = database
        membership = MembershipState(vaultID: keyring.vaultID)
        localKey = keyring.currentKey.subkey(id: 2, context: "amnt-loc")
        slotKey = keyring.currentKey.subkey(id: 3, context: "amnt-slt")
    }

    static func keyringURL(_ dir: URL) -> URL { dir.appendingPathComponent(keyringFileName) }
    static func databaseURL(_ dir: URL) -> URL { dir.appendingPathComponent(databaseFileName) }

    /// Whether `dir` holds a vault (its keyring file exists).
    public static func exists(at dir: URL) -> Bool {
        FileManager.default.fileExists(atPath: keyringURL(dir).path)
    }

    /// Whether `dir` holds a vault, looking again under the unlock lock when its keyring is missing: another unlock
    /// attempt may be wiping it at this instant, and the wipe leaves a tombstone keyring (which reads as a wrong
    /// passphrase), never "no vault".
    public static func existsOnceSettled(at dir: URL) -> Bool {
        exists(at: dir) || ((try? withCounterLock(dir) { exists(at: dir) }) ?? false)
    }

    /// Creates a new vault with a new vault key and device key in `dir` (created if missing, must hold no vault).
    /// Its first change is the membership entry that names this device its founding coordinator.
    public static func create(
        at dir: URL, passphrase: SecureBytes, deviceName: String, strength: PasswordHash.Strength
    ) throws -> Vault {
        let salt = Sodium.randomBytes(16)
        let keyring = Keyring.generate(deviceName: deviceName, salt: salt)
        let name = try sealName(deviceName, keyring: keyring)
        let vault = try create(at: dir, keyring: keyring, passphrase: passphrase, strength: strength) { db, vault in
            guard let agreement = keyring.agreement else {
                fatalError("unreachable: a new keyring has an agreement key")
            }
            try vault.appendEntry(db, .found(salt: salt, agreementKey: agreement.publicKey, name: name))
        }
        return vault
    }

    static func sealName(_ name: String, keyring: Keyring) throws -> SealedName {
        guard let device = try? DeviceID(keyring.device.publicKey) else { fatalError("unreachable") }
        return try sealName(name, key: keyring.currentKey, vaultID: keyring.vaultID, device: device)
    }

    /// `name` sealed under `key` for `device`'s entry; a name Amanat cannot seal (too long) is refused as invalid.
    static func sealName(_ name: String, key: VaultKey, vaultID: [UInt8], device: DeviceID) throws -> SealedName {
        do {
            return try SealedName.seal(name, key: key, vaultID: vaultID, device: device)
        } catch let error as CoreError {
            throw StoreError(.invalid, error.message)
        }
    }

    /// Creates a vault directory around an existing keyring (used by `join`); `first` writes its first entries
    /// in the same transaction.
    static func create(
        at dir: URL, keyring: Keyring, passphrase: SecureBytes, strength: PasswordHash.Strength,
        first: (Database, Vault) throws -> Void
    ) throws -> Vault {
        let fm = FileManager.default
        if exists(at: dir) {
            throw StoreError(.vaultExists, "A vault already exists in \(dir.path); choose another directory.")
        }
        if fm.fileExists(atPath: databaseURL(dir).path) {
            throw StoreError(
                .vaultExists, "\(dir.path) holds a vault database without a keyring; choose an empty directory.")
        }
        do {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "Could not create the vault directory \(dir.path) (\(fileErrorReason(error))).")
        }
        let database = try openDatabase(dir, create: true)
        // SQLite gives the WAL and SHM files the main file's mode, so this keeps all three private.
        chmod(databaseURL(dir).path, 0o600)
        let vault = Vault(directory: dir, keyring: keyring, database: database)
        // The keyring is written last: its presence is what makes the directory a vault.
        do {
            try mapErrors {
                try database.write { db in
                    try db.execute(
                        sql: "INSERT INTO meta(key, value) VALUES ('vault_id', ?)", arguments: [Data(keyring.vaultID)])
                    try first(db, vault)
                    try vault.reloadMembership(db)
                    try vault.saveAuthorization(db)
                }
            }
            try UnlockCounter().write(in: dir)
            var written = keyring
            try written.write(to: keyringURL(dir), passphrase: passphrase, strength: strength)
            vault.keyring = written
        } catch {
            try? database.close()
            for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: databaseURL(dir).path + suffix) }
            try? fm.removeItem(at: UnlockCounter.url(dir))
            throw error
        }
        return vault
    }

    /// Opens the vault in `dir` with its passphrase.
    ///
    /// Every attempt is counted on disk before the passphrase is tried (Protocol/storage.md §2.1), and a duress
    /// passphrase destroys this device's keys before anything else happens (§2, Docs/architecture.md).
    public static func open(at dir: URL, passphrase: SecureBytes) throws -> Vault {
        try open(at: dir, passphrase: passphrase, duressAllowed: true)
    }

    static func open(at dir: URL, passphrase: SecureBytes, duressAllowed: Bool) throws -> Vault {
        guard existsOnceSettled(at: dir) else {
            throw StoreError(.noVault, "There is no vault in \(dir.path); run `amanat init` or pass --vault DIR.")
        }
        var keyring: Keyring
        switch try unlockCounting(at: dir, passphrase: passphrase) {
        case .keyring(let opened):
            keyring = opened
        case .duress(let setting):
            // The keys are destroyed first; then the decoy (moved into this folder) opens, else a wrong passphrase.
            guard actOnDuress(setting, at: dir), duressAllowed else { throw Keyring.wrongPassphrase }
            return try open(at: dir, passphrase: passphrase, duressAllowed: false)
        }
        if let version = keyring.wrapping?.version, version < Keyring.formatVersion, keyring.agreement != nil {
            // A version 2 keyring is rewritten as version 3 (with its always-present duress slot) at once: no key
            // is derived again.
            try keyring.rewrite(to: keyringURL(dir), passphrase: passphrase)
        }
        guard FileManager.default.fileExists(atPath: databaseURL(dir).path) else {
            throw StoreError(.damaged, "The vault is damaged: its database file is missing.")
        }
        let database = try openDatabase(dir, create: false)
        let stored: Data? = try mapErrors {
            try database.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'vault_id'") }
        }
        guard let stored, Array(stored) == keyring.vaultID else {
            throw StoreError(.damaged, "The vault is damaged: its database does not belong to its keyring.")
        }
        let vault = Vault(directory: dir, keyring: keyring, database: database)
        try vault.prepare(passphrase: passphrase)
        return vault
    }

    static func openDatabase(_ dir: URL, create: Bool) throws -> DatabaseQueue {
        var config = Configuration()
        // Up to 10 s for another process to finish with the vault, in steps of 20 ms; after one second the
        // command says who it is waiting for (``LockWait``).
        let database = databaseURL(dir)
        config.busyMode = .callback { tries in
            if tries == 50 { LockWait.observer?(LockWait.holder(of: database)) }
            guard tries < 500 else { return false }
            usleep(20_000)
            return true
        }
        config.prepareDatabase { db in
            try SQLiteHardening.apply(db)
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.execute(sql: "PRAGMA cache_size = -\(Vault.cacheKiB)")
            // A checkpoint every 8192 pages (32 MiB of log) instead of SQLite's 1000: an import or a batch of inserts
            // rewrites projection rows whose keys are random by design, and each page it touches again before the
            // checkpoint is copied into the database once instead of once per batch (B1, B2: about 10 % faster,
            // Docs/performance.md). The log holds sealed pages only, like the database; every purge truncates it
            // (`wal_checkpoint(TRUNCATE)`), and the last connection to close cleanly removes it.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 8192")
        }
        do {
            return try mapErrors {
                let queue = try DatabaseQueue(path: databaseURL(dir).path, configuration: config)
                try queue.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA journal_mode = WAL")
                    try db.execute(sql: "PRAGMA synchronous = FULL")
                }
                do {
                    try Schema.migrator.migrate(queue)
                } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR {
                    // GRDB reads the applied migrations before it runs the missing ones: another process opening the
                    // vault at the same moment may have run the same one in between ("already exists"). Read them
                    // again once; our own statements failing a second time meet a schema someone else edited.
                    do {
                        try Schema.migrator.migrate(queue)
                    } catch let again as DatabaseError where again.resultCode == .SQLITE_ERROR {
                        throw StoreError(
                            .damaged,
                            "The vault is damaged: its database schema cannot be brought up to date (\(again.message ?? error.message ?? "SQL error")). Restore it from a backup."
                        )
                    }
                }
                return queue
            }
        } catch let error as StoreError {
            throw named(error, dir)
        }
    }

    /// Runs `body`, turning SQLite failures into store errors that say what to do.
    @discardableResult
    package static func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            switch error.resultCode {
            case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_FORMAT:
                throw StoreError(
                    .damaged, "The vault is damaged: its database file is corrupt. Restore it from a backup.")
            case .SQLITE_FULL:
                throw StoreError(.diskFull, "The disk is full; nothing was changed. Free some space and try again.")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                throw StoreError(.busy, "The vault is in use by another Amanat process; try again when it finishes.")
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
                throw StoreError(
                    .io, "The vault database cannot be opened for writing (\(error.message ?? "permission denied")).")
            default:
                throw StoreError(.io, "The vault database failed: \(error.message ?? "\(error.resultCode)").")
            }
        }
    }

    /// Like the static form; a full disk is named by this vault's folder.
    func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try Self.mapErrors(body)
        } catch let error as StoreError {
            throw Self.named(error, directory)
        }
    }

    /// A full disk named by the vault's folder (SQLite reports a disk with no room left at all as an I/O error),
    /// and a busy vault with the process that holds it.
    static func named(_ error: StoreError, _ dir: URL) -> StoreError {
        switch error.code {
        case .diskFull: return diskFull(dir)
        case .io where freeBytes(dir) < 1 << 20: return diskFull(dir)
        case .busy:
            guard let pid = LockWait.holder(of: databaseURL(dir)) else { return error }
            let name = LockWait.processName(pid)
            return StoreError(
                .busy,
                "The vault is in use by another \(name == "amanat" ? "amanat" : "process") (pid \(pid)\(name.map { $0 == "amanat" ? "" : ", \($0)" } ?? "")); try again when it finishes."
            )
        default: return error
        }
    }

    /// The bytes free for this user on the disk holding `dir` (the maximum when it cannot be told).
    public static func freeBytes(_ dir: URL) -> UInt64 {
        var info = statvfs()
        guard statvfs(dir.path, &info) == 0 else { return .max }
        let free = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return free.overflow ? .max : free.partialValue
    }

    /// The sentence for a full disk under the vault in `dir`.
    static func diskFull(_ dir: URL) -> StoreError {
        StoreError(
            .diskFull,
            "The disk holding the vault \(dir.path) is full; nothing was changed. Free some space on it and try again.")
    }

    /// Like ``mapErrors(_:)``, for a database that is not the vault's (`what` is "sync file" or "relay file"): its
    /// failures name that file, never the vault, and keep SQLite's result code.
    @discardableResult
    package static func mapErrors<T>(file what: String, at url: URL, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw fileError(error, what: what, at: url)
        } catch let error as UntrustedRowError {
            throw StoreError(
                .damaged, "The \(what) \(url.path) is damaged: a row's \(error.column) is empty or of the wrong type.")
        }
    }

    /// The store error for an SQLite failure of the `what` at `url`.
    package static func fileError(_ error: DatabaseError, what: String, at url: URL) -> StoreError {
        let code = "SQLite code \(error.extendedResultCode.rawValue)"
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_FORMAT:
            return StoreError(.damaged, "The \(what) \(url.path) is damaged or is not a \(what) (\(code)).")
        case .SQLITE_FULL:
            return StoreError(
                .diskFull, "The disk holding the \(what) \(url.path) is full; free some space and try again.")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(
                .busy, "The \(what) \(url.path) is in use by another process; try again when it finishes.")
        case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
            return StoreError(
                .io, "The \(what) \(url.path) cannot be opened (\(error.message ?? "permission denied"), \(code)).")
        default:
            return StoreError(.io, "The \(what) \(url.path) failed: \(error.message ?? "error") (\(code)).")
        }
    }
}

// MARK: Passphrase, backup and restore

extension Vault {
    /// Re-wraps the keyring under `newPassphrase` with the same hashing costs; the file is replaced atomically, so
    /// the keyring is either the old one or the new one, never half of each.
    ///
    /// The new passphrase gets a new salt, to which a duress passphrase is bound: a duress passphrase is therefore
    /// cleared, and the result says whether one was (the user sets it again with `amanat duress set`).
    @discardableResult
    public func changePassphrase(to newPassphrase: SecureBytes) throws -> Bool {
        try keyring.changePassphrase(to: Self.keyringURL(directory), passphrase: newPassphrase)
    }

    /// Writes a consistent copy of the database to `url` (SQLite `VACUUM INTO`): every row in it is as encrypted
    /// as in the vault. `url` must not exist.
    public func snapshotDatabase(to url: URL) throws {
        try mapErrors {
            try database.writeWithoutTransaction { db in
                try db.execute(sql: "VACUUM INTO ?", arguments: [url.path])
            }
        }
        chmod(url.path, 0o600)
    }

    /// The keyring file's bytes (encrypted under the passphrase).
    public func keyringFileBytes() throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: Self.keyringURL(directory).path) else {
            throw StoreError(.io, "The keyring file of \(directory.path) cannot be read.")
        }
        return Array(data)
    }

    /// Refuses a database to restore that holds a trigger or a view: Amanat never writes one, and a trigger in a
    /// crafted backup would run inside every later command on that vault (as `SyncFile` refuses them in sync files).
    static func refuseCode(inRestoredDatabase url: URL) throws {
        var config = Configuration()
        config.prepareDatabase { db in try SQLiteHardening.apply(db) }
        let count = try mapErrors {
            let queue = try DatabaseQueue(path: url.path, configuration: config)
            return try queue.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type IN ('trigger', 'view')") ?? 0
            }
        }
        guard count == 0 else {
            throw StoreError(
                .damaged,
                "Refused: the backup's database holds a trigger or view, which Amanat never writes; nothing was restored."
            )
        }
    }

    /// Recreates a vault in `dir` (which must hold none) from a keyring file and a database copy, then opens it with
    /// `passphrase`. The database is written first and the keyring last, as `create` does; on any failure both are
    /// removed again.
    public static func restore(
        keyringFile: [UInt8], database: [UInt8], at dir: URL, passphrase: SecureBytes
    ) throws -> Vault {
        let fm = FileManager.default
        if exists(at: dir) || fm.fileExists(atPath: databaseURL(dir).path) {
            throw StoreError(.vaultExists, "A vault already exists in \(dir.path); choose another directory.")
        }
        do {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "Could not create the vault directory \(dir.path) (\(fileErrorReason(error))).")
        }
        do {
            try AtomicFile.write(database, to: databaseURL(dir))
            chmod(databaseURL(dir).path, 0o600)
            try refuseCode(inRestoredDatabase: databaseURL(dir))
            try AtomicFile.write(keyringFile, to: keyringURL(dir))
            return try open(at: dir, passphrase: passphrase)
        } catch {
            for url in [keyringURL(dir), databaseURL(dir)] {
                for suffix in ["", "-wal", "-shm"] { try? fm.removeItem(atPath: url.path + suffix) }
            }
            try? fm.removeItem(at: UnlockCounter.url(dir))
            throw error
        }
    }
}

/// The system's reason for a failed file operation, in a few words ("Permission denied").
public func fileErrorReason(_ error: Error) -> String {
    if let cocoa = error as? CocoaError, let posix = cocoa.userInfo[NSUnderlyingErrorKey] as? POSIXError {
        return String(cString: strerror(posix.code.rawValue))
    }
    if let cocoa = error as? CocoaError {
        switch cocoa.code {
        case .fileWriteNoPermission: return "permission denied"
        case .fileWriteOutOfSpace: return "the disk is full"
        case .fileWriteVolumeReadOnly: return "the disk is read-only"
        case .fileWriteFileExists: return "a file of that name is in the way"
        default: break
        }
    }
    return error.localizedDescription
}
