import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import GRDB
import Logging

/// Why a relay refused a request about stored data.
public struct RelayStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Code: String, Sendable {
        /// The relay does not hold this vault (it was never registered).
        case unknownVault
        /// A vault is registered with another key.
        case keyMismatch
        /// A pushed envelope conflicts with the one the relay holds at that seq (a fork).
        case fork
        /// A pushed envelope is refused: another vault, a gap, a broken chain or a forged signature.
        case refused
        /// The relay holds as many vaults as it is allowed to.
        case full
        /// Storing the pushed envelopes would take the vault's records past the relay's `--quota`.
        case overQuota
    }

    /// The kind of refusal.
    public var code: Code
    /// One sentence.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The relay's `--quota`, in a sentence: whole MiB when it is some (the usual `--quota 20G`), else bytes
/// (`--quota 500k` is not "0 MiB").
func quotaText(_ quota: UInt64) -> String {
    quota >= 1_048_576 && quota % 1_048_576 == 0 ? "\(quota / 1_048_576) MiB" : "\(quota) bytes"
}

/// What a vault may store on a relay under `--quota` (Protocol/http-api.md §5, §10, §11): its envelopes and its attachment
/// chunks are counted apart, each up to the quota, so attachments that fill it never stop a record's text.
enum EnvelopeQuota {
    /// The refusal of a push that adds `adding` bytes of envelopes to a vault holding `used`, or nil when it may be
    /// stored. A push made only of coordinators' changes is always stored (and counted): a revocation or a purge must
    /// reach the relay even when a member filled the quota.
    static func refusal(used: UInt64, adding: Int, quota: UInt64?, byCoordinators: Bool) -> RelayStoreError? {
        guard let quota, !byCoordinators, !fits(used: used, adding: adding, quota: quota) else { return nil }
        return RelayStoreError(
            .overQuota,
            "This vault's records on the relay have reached the relay's quota of \(quotaText(quota)); ask its operator for a larger --quota."
        )
    }

    /// Whether `adding` more bytes leave a vault holding `used` within `quota` (nothing added always does).
    static func fits(used: UInt64, adding: Int, quota: UInt64) -> Bool {
        guard adding > 0 else { return true }
        let (total, overflow) = used.addingReportingOverflow(UInt64(adding))
        return !overflow && total <= quota
    }

    /// The room content put back (Protocol/http-api.md §11) may take in one request: what the vault's envelopes use,
    /// grown by each copy put back. A copy whose content would pass the quota stays without content, unless its
    /// author is a coordinator (a member could else push its changes stripped, within the quota, and then their
    /// content past it).
    struct PutBackBudget {
        /// The quota; nil: no limit.
        let quota: UInt64?
        /// Bytes the vault's envelopes use, with what this request put back so far.
        var used: UInt64

        /// Whether `envelope` may replace `held`, its copy without content; when it may, its growth is counted.
        mutating func admits(_ envelope: Envelope, body: [UInt8], replacing held: Data, membership: MembershipState)
            -> Bool
        {
            let growth = body.count - held.count
            if let quota, !membership.isCoordinator(envelope.header.author, at: envelope.header.seq),
                !EnvelopeQuota.fits(used: used, adding: growth, quota: quota)
            {
                return false
            }
            used += UInt64(max(growth, 0))
            return true
        }
    }

    /// Whether every accepted envelope is a change of a device that is a coordinator at its seq.
    static func byCoordinators(_ accepted: [(DeviceID, [Envelope])], _ membership: MembershipState) -> Bool {
        membership.isEstablished
            && accepted.allSatisfy { author, run in
                run.allSatisfy { membership.isCoordinator(author, at: $0.header.seq) }
            }
    }
}

/// What storing a batch of pushed envelopes did.
public struct RelayStoreResult: Sendable, Equatable {
    /// Envelopes that were new and are now stored.
    public var stored = 0
    /// Envelopes the relay already had.
    public var duplicates = 0
    /// Envelopes not stored because their author is not a member, or was revoked before writing them.
    public var refused = 0
    /// Stored envelopes whose ciphertext a purge in this batch destroyed, or that arrived with content a purge had
    /// destroyed.
    public var purged = 0
    /// Attachment chunks the purges of this batch destroy (the relay removes them once the batch is stored).
    public var purgedChunks: [[UInt8]] = []
    /// Bytes of the envelopes stored (their wire forms).
    public var bytes = 0

    /// An empty result.
    public init() {}
}

/// The envelopes a replica lacks, as a relay answers them.
public struct RelayMissing: Sendable, Equatable {
    /// Wire forms, by author in seq order.
    public var bodies: [[UInt8]] = []
    /// Envelopes still missing after these.
    public var remaining: UInt64 = 0
    /// Authors whose relay chain does not contain the replica's head.
    public var diverged: [DeviceID] = []

    /// Nothing missing.
    public init() {}
}

/// The relay's storage: one SQLite file per vault under a data directory, holding only what members pushed —
/// signed ciphertext envelopes — plus the vault's relay public key and recently used request nonces. It never holds
/// a vault key (Protocol/http-api.md §6).
///
/// Each vault is its own file (`<vault id hex>.relay`), so nothing sent for one vault can touch another's data.
public final class RelayStore: @unchecked Sendable {
    // @unchecked Sendable: the mutable state (open databases) is guarded by `lock`; GRDB pools serialise their own
    // access.

    /// The format version in each file's `meta` table.
    public static let formatVersion = 1
    /// Which bodies are purged forms (225 bytes, "AMNP" after the header): the predicate of the partial index
    /// `envelope_without_content` and of every query that reads through it.
    static let purgedFormCondition = "length(body) = 225 AND substr(body, 126, 4) = x'414D4E50'"
    /// The envelopes held in their purged form, for ``copiesWithoutContent(vaultID:limit:)``.
    static let withoutContentIndex =
        "CREATE INDEX IF NOT EXISTS envelope_without_content ON envelope(author, seq) WHERE \(purgedFormCondition)"
    /// The file name suffix of a vault file.
    public static let fileSuffix = ".relay"

    /// The data directory.
    public let directory: URL
    /// The most vaults this relay registers.
    public let maxVaults: Int
    private let lock = NSLock()
    private let logger = Logger(label: "amanat.relay.store")
    private var open: [String: VaultFile] = [:]
    private var memberships: [String: MembershipState] = [:]
    /// Bumped by every write that sets or clears a vault's cached membership: a reader evaluating from an older
    /// snapshot must not put its result over a newer one (it would undo a purge or a revocation until the next).
    private var membershipWrites: [String: UInt64] = [:]

    final class VaultFile: @unchecked Sendable {
        // @unchecked Sendable: `lastPrune` and `envelopeBytes` are only read and written inside the pool's
        // serialised writer.
        let pool: DatabasePool
        let key: [UInt8]
        var lastPrune: Int64 = 0
        /// Bytes of the envelopes held, for `--quota`: summed once, then kept up to date by each push; nil when
        /// unknown (not summed yet, or after a purge, a put-back or a rolled-back push).
        var envelopeBytes: UInt64?

        init(pool: DatabasePool, key: [UInt8]) {
            self.pool = pool
            self.key = key
        }
    }

    /// Opens (creating when missing) the data directory.
    public init(directory: URL, maxVaults: Int = 1000) throws {
        self.directory = directory
        self.maxVaults = maxVaults
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "Could not create the relay data directory \(directory.path).")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw StoreError(.io, "The relay data directory \(directory.path) is not writable.")
        }
    }

    private func fileURL(_ vaultID: [UInt8]) -> URL {
        directory.appendingPathComponent(Hex.encode(vaultID) + Self.fileSuffix)
    }

    /// The ids of the vaults this relay holds.
    public func vaultIDs() -> [[UInt8]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name in
            guard name.hasSuffix(Self.fileSuffix), let id = Hex.decode(String(name.dropLast(Self.fileSuffix.count))),
                id.count == 16
            else { return nil }
            return id
        }
    }

    /// The open vault file, or nil when the relay does not hold the vault.
    private func vaultFile(_ vaultID: [UInt8]) throws -> VaultFile? {
        let name = Hex.encode(vaultID)
        return try lock.withLock {
            if let file = open[name] { return file }
            let url = fileURL(vaultID)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            let file = try Self.openFile(url, vaultID: vaultID)
            open[name] = file
            return file
        }
    }

    static func configuration() -> Configuration {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try SQLiteHardening.apply(db)
            // WAL with NORMAL: a commit is atomic and the file never corrupts, but the last commits before a power
            // cut may be lost. The relay is not the source of truth: members still hold those envelopes and push them
            // again at their next sync, because the relay's vector shows they are missing (http-api.md §6).
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        return config
    }

    private static func openFile(_ url: URL, vaultID: [UInt8]) throws -> VaultFile {
        let pool = try Vault.mapErrors(file: "relay file", at: url) {
            try DatabasePool(path: url.path, configuration: configuration())
        }
        let (format, stored, key): (Int?, Data?, Data?) = try Vault.mapErrors(file: "relay file", at: url) {
            try pool.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'"),
                    try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'vault_id'"),
                    try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'relay_key'")
                )
            }
        }
        guard format == formatVersion, stored.map(Array.init) == vaultID, let key, key.count == 32 else {
            throw StoreError(
                .damaged, "The relay file \(url.lastPathComponent) is damaged or belongs to another vault.")
        }
        // Added after the first release: a file made before it gets the index when this process first opens it (a
        // one-time build that reads the whole file); a file that has it is only read here.
        try Vault.mapErrors(file: "relay file", at: url) {
            let indexed = try pool.read { db in
                try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'envelope_without_content'")
                    ?? false
            }
            if !indexed { try pool.write { db in try db.execute(sql: withoutContentIndex) } }
        }
        return VaultFile(pool: pool, key: Array(key))
    }

    // MARK: Registration

    /// The relay public key registered for a vault, or nil when the relay does not hold it.
    public func registeredKey(of vaultID: [UInt8]) throws -> [UInt8]? {
        try vaultFile(vaultID)?.key
    }

    /// A new random registration code for `amanat serve --registration-code-file`: 120 bits, as 24 base32
    /// characters in groups of 4 (like invitation codes).
    public static func newRegistrationCode() -> String {
        Base32.groupedCode(Sodium.randomBytes(15))
    }

    /// How long a registered vault may hold no envelope before the relay may remove it (seconds): registrations
    /// nobody uses cannot fill the relay for good.
    public static let unusedVaultLifetime: Int64 = 86_400

    /// Registers `key` as the vault's relay key (trust on first use). Returns true if the vault was created now,
    /// false if it was already registered with this key; throws `keyMismatch` if registered with another. When the
    /// relay is full, vaults registered more than ``unusedVaultLifetime`` before `now` that never stored an
    /// envelope are removed first.
    public func register(vaultID: [UInt8], key: [UInt8], now: Int64 = Int64(Date().timeIntervalSince1970)) throws
        -> Bool
    {
        precondition(vaultID.count == 16 && key.count == 32)
        if let existing = try vaultFile(vaultID) {
            guard existing.key == key else { throw Self.mismatch }
            return false
        }
        return try lock.withLock {
            let name = Hex.encode(vaultID)
            if let existing = open[name] {
                guard existing.key == key else { throw Self.mismatch }
                return false
            }
            let url = fileURL(vaultID)
            if FileManager.default.fileExists(atPath: url.path) {
                let file = try Self.openFile(url, vaultID: vaultID)
                open[name] = file
                guard file.key == key else { throw Self.mismatch }
                return false
            }
            if vaultIDs().count >= maxVaults { _ = removeUnusedVaultsLocked(now: now) }
            guard vaultIDs().count < maxVaults else {
                throw RelayStoreError(.full, "This relay holds as many vaults as it is allowed to (\(maxVaults)).")
            }
            try Self.createFile(at: url, vaultID: vaultID, key: key, now: now)
            open[name] = try Self.openFile(url, vaultID: vaultID)
            return true
        }
    }

    /// Removes the vaults registered more than ``unusedVaultLifetime`` before `now` that hold no envelope; returns
    /// how many. `amanat serve` calls it at start, and ``register(vaultID:key:now:)`` when the relay is full.
    @discardableResult
    public func removeUnusedVaults(now: Int64 = Int64(Date().timeIntervalSince1970)) -> Int {
        lock.withLock { removeUnusedVaultsLocked(now: now) }
    }

    private func removeUnusedVaultsLocked(now: Int64) -> Int {
        var removed = 0
        for vaultID in vaultIDs() {
            let name = Hex.encode(vaultID)
            let url = fileURL(vaultID)
            let unused: Bool? = try? {
                let read = { (db: Database) throws -> Bool in
                    let registered = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'registered_at'")
                    let empty = try !(Bool.fetchOne(db, sql: "SELECT 1 FROM envelope LIMIT 1") ?? false)
                    return empty && registered.map { now - $0 > Self.unusedVaultLifetime } == true
                }
                if let file = open[name] { return try file.pool.read(read) }
                let queue = try DatabaseQueue(path: url.path, configuration: Self.configuration())
                defer { try? queue.close() }
                return try queue.read(read)
            }()
            guard unused == true else { continue }
            if let file = open.removeValue(forKey: name) { try? file.pool.close() }
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: url.path + suffix) }
            removed += 1
        }
        return removed
    }

    private static let mismatch = RelayStoreError(
        .keyMismatch, "This vault is registered on the relay with another key; this device is not a member of it.")

    /// Builds the vault file complete under a temporary name, then renames it into place.
    private static func createFile(at url: URL, vaultID: [UInt8], key: [UInt8], now: Int64) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new-\(getpid())")
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try? FileManager.default.removeItem(atPath: temp.path + suffix)
        }
        do {
            try Vault.mapErrors(file: "relay file", at: url) {
                var config = Configuration()
                config.prepareDatabase { db in try SQLiteHardening.apply(db) }
                let queue = try DatabaseQueue(path: temp.path, configuration: config)
                try queue.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA journal_mode = WAL")
                }
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
                            CREATE TABLE nonce (
                                nonce BLOB PRIMARY KEY NOT NULL,
                                expires INTEGER NOT NULL
                            ) WITHOUT ROWID;
                            CREATE INDEX nonce_expires ON nonce(expires);
                            """)
                    try db.execute(sql: withoutContentIndex)
                    try db.execute(sql: "INSERT INTO meta VALUES ('format', ?)", arguments: [formatVersion])
                    try db.execute(sql: "INSERT INTO meta VALUES ('vault_id', ?)", arguments: [Data(vaultID)])
                    try db.execute(sql: "INSERT INTO meta VALUES ('relay_key', ?)", arguments: [Data(key)])
                    try db.execute(
                        sql: "INSERT INTO meta VALUES ('registered_at', ?)", arguments: [now])
                }
                try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
                try queue.close()
            }
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temp.path + suffix) }
            chmod(temp.path, 0o600)
            guard rename(temp.path, url.path) == 0 else {
                throw AtomicFile.ioError(errno, "could not create \(url.path)")
            }
            AtomicFile.syncDirectory(url.deletingLastPathComponent())
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temp.path + suffix) }
            throw error
        }
    }

    // MARK: Nonces

    /// Records a request nonce; false if it was already used (a replay). Nonces are kept until `expires` (unix
    /// seconds) has passed, and pruned as time goes on.
    public func useNonce(vaultID: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws -> Bool {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.write { db in
                if now - file.lastPrune >= 30 {
                    try db.execute(sql: "DELETE FROM nonce WHERE expires < ?", arguments: [now])
                    file.lastPrune = now
                }
                let exists =
                    try Bool.fetchOne(db, sql: "SELECT 1 FROM nonce WHERE nonce = ?", arguments: [Data(nonce)]) ?? false
                if exists { return false }
                try db.execute(
                    sql: "INSERT INTO nonce(nonce, expires) VALUES (?, ?)", arguments: [Data(nonce), expires])
                return true
            }
        }
    }

    private static let unknown = RelayStoreError(.unknownVault, "This relay does not hold this vault.")

    // MARK: Reading

    /// Each author's last seq and head hash on the relay.
    public func versionVector(vaultID: [UInt8]) async throws -> [DeviceID: ChainHead] {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in try Self.vector(db) }
        }
    }

    private static func vector(_ db: Database) throws -> [DeviceID: ChainHead] {
        var vector: [DeviceID: ChainHead] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: Vault.chainHeadsSQL("envelope"))) {
            vector[try DeviceID(Array(row.untrusted("author", as: Data.self)))] = ChainHead(
                seq: UInt64(clamping: try row.untrusted("seq", as: Int64.self)),
                hash: Array(try row.untrusted("hash", as: Data.self)))
        }
        return vector
    }

    /// Up to `limit` wire forms of `author`'s envelopes after `seq`, in seq order, within `byteBudget` (at least
    /// one is returned when there is one).
    public func envelopes(vaultID: [UInt8], author: DeviceID, after seq: UInt64, limit: Int, byteBudget: Int)
        async throws
        -> [[UInt8]]
    {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in
                var bytes = 0
                return try Self.bodies(db, author: author, after: seq, limit: limit, bytes: &bytes, budget: byteBudget)
            }
        }
    }

    private static func bodies(
        _ db: Database, author: DeviceID, after seq: UInt64, limit: Int, bytes: inout Int, budget: Int
    ) throws -> [[UInt8]] {
        guard limit > 0 else { return [] }
        let cursor = try Data.fetchCursor(
            db, sql: "SELECT body FROM envelope WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?",
            arguments: [Data(author.bytes), Int64(clamping: seq), limit])
        var out: [[UInt8]] = []
        while let body = try cursor.next() {
            if bytes > 0 && bytes + body.count > budget { break }
            bytes += body.count
            out.append(Array(body))
        }
        return out
    }

    /// What a replica whose vector is `vector` lacks: up to `limit` envelopes within `byteBudget`, authors in order,
    /// each lagging author's share of the limit being what the shares before it leave (Protocol/http-api.md §4.5).
    /// An author whose relay chain does not hold the replica's head hash is reported as diverged, and nothing of it
    /// is sent.
    public func missing(vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int) async throws
        -> RelayMissing
    {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in
                var result = RelayMissing()
                var bytes = 0
                // Each lagging author's share of the limit is what the shares of the authors before it leave, whether
                // or not the byte budget let those be sent: the PostgreSQL storage gives the same answer.
                var planned = 0
                for (author, head) in try Self.vector(db).sorted(by: { $0.key < $1.key }) {
                    let theirs = vector[author] ?? .empty
                    if theirs.seq >= head.seq {
                        if theirs.seq == head.seq && theirs.hash != head.hash { result.diverged.append(author) }
                        continue
                    }
                    if theirs.seq > 0 {
                        let held = try Data.fetchOne(
                            db, sql: "SELECT hash FROM envelope WHERE author = ? AND seq = ?",
                            arguments: [Data(author.bytes), Int64(clamping: theirs.seq)])
                        if held.map(Array.init) != theirs.hash {
                            result.diverged.append(author)
                            continue
                        }
                    }
                    let wanted = head.seq - theirs.seq
                    let share = Int(min(UInt64(max(limit - planned, 0)), wanted))
                    planned += share
                    let full = share <= 0 || (bytes >= byteBudget && !result.bodies.isEmpty)
                    let got =
                        full
                        ? []
                        : try Self.bodies(
                            db, author: author, after: theirs.seq, limit: share, bytes: &bytes, budget: byteBudget)
                    result.bodies += got
                    result.remaining += wanted - UInt64(got.count)
                }
                return result
            }
        }
    }

    /// The number of envelopes the relay holds for a vault.
    public func count(vaultID: [UInt8]) async throws -> Int {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0 }
        }
    }

    /// The number of envelopes the relay holds for a vault and their bytes.
    public func envelopeTotals(vaultID: [UInt8]) async throws -> (count: Int, bytes: UInt64) {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in
                let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM envelope")
                return (Int(row?[0] as Int64? ?? 0), UInt64(clamping: row?[1] as Int64? ?? 0))
            }
        }
    }

    // MARK: Writing

    /// Verifies and stores pushed envelopes in one transaction, all or nothing (Protocol/http-api.md §5).
    ///
    /// Per author, an envelope the relay holds is a duplicate when identical and a **fork** when different (throws
    /// `fork`); the rest must continue the stored head as `ChainVerifier.verifyRun` requires: this vault's id, no
    /// gap, linked hashes, a valid signature (else throws `refused`; a genuinely signed first envelope that does
    /// not link to the head is a fork too). The relay cannot decrypt, so it checks no more than that. A push that would
    /// take the vault's envelopes past `quota` bytes throws `overQuota` (``EnvelopeQuota``).
    public func store(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64? = nil) async throws
        -> RelayStoreResult
    {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        guard !envelopes.isEmpty else { return RelayStoreResult() }
        var byAuthor: [DeviceID: [Envelope]] = [:]
        for envelope in envelopes {
            guard envelope.header.vaultID == vaultID else {
                throw RelayStoreError(.refused, "An envelope belongs to another vault.")
            }
            byAuthor[envelope.header.author, default: []].append(envelope)
        }
        let runs = byAuthor.sorted { $0.key < $1.key }.map {
            ($0.key, $0.value.sorted { $0.header.seq < $1.header.seq })
        }
        do {
            let result = try await store(file, vaultID: vaultID, runs: runs, quota: quota)
            if result.purged > 0 {
                // The replaced pages' old frames leave the write-ahead log (freed pages are zeroed: secure_delete).
                // A reader holding an older snapshot makes the checkpoint answer "busy": try again for a while.
                for attempt in 0..<50 {
                    let busy = try? await file.pool.writeWithoutTransaction { db in
                        try Int.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") ?? 1
                    }
                    if busy == 0 { break }
                    if attempt == 49 {
                        logger.warning(
                            "The write-ahead log still holds purged ciphertext: a reader kept it busy; the next purge truncates it.",
                            metadata: ["vault": .escaped(Hex.encode(vaultID).prefix(8))])
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            return result
        } catch {
            // The batch did not commit: the cached membership may be ahead of the file.
            lock.withLock {
                memberships[Hex.encode(vaultID)] = nil
                membershipWrites[Hex.encode(vaultID), default: 0] &+= 1
            }
            throw error
        }
    }

    private func store(_ file: VaultFile, vaultID: [UInt8], runs: [(DeviceID, [Envelope])], quota: UInt64?)
        async throws -> RelayStoreResult
    {
        try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.write { db in
                var result = RelayStoreResult()
                var accepted: [(DeviceID, [Envelope])] = []
                for (author, run) in runs {
                    let row = try Row.fetchOne(
                        db, sql: "SELECT seq, hash FROM envelope WHERE author = ? ORDER BY seq DESC LIMIT 1",
                        arguments: [Data(author.bytes)])
                    let head =
                        try row.map {
                            ChainHead(
                                seq: UInt64(clamping: try $0.untrusted("seq", as: Int64.self)),
                                hash: Array(try $0.untrusted("hash", as: Data.self)))
                        } ?? .empty
                    let outcome: RunClassifier.Outcome
                    do {
                        outcome = try RunClassifier.classify(run, vaultID: vaultID, head: head) { seq in
                            try Data.fetchOne(
                                db, sql: "SELECT hash FROM envelope WHERE author = ? AND seq = ?",
                                arguments: [Data(author.bytes), Int64(clamping: seq)]
                            ).map(Array.init)
                        }
                    } catch let error as CoreError {
                        throw RelayStoreError(.refused, "Refused: \(error.message)")
                    }
                    if let fork = outcome.fork { throw Self.forkError(fork) }
                    result.duplicates += outcome.duplicates
                    if !outcome.fresh.isEmpty { accepted.append((author, outcome.fresh)) }
                }
                // Membership (Protocol/membership.md §10): once the vault has one, the relay stores only envelopes
                // of admitted devices, and of a revoked device only those up to its revocation.
                let fresh = accepted.flatMap(\.1)
                let name = Hex.encode(vaultID)
                let cached = self.lock.withLock { self.memberships[name] }
                var membership =
                    try cached.flatMap { fresh.contains(where: \.isAuthority) ? nil : $0 }
                    ?? Self.membership(db, vaultID: vaultID, adding: fresh)
                if membership.isEstablished {
                    accepted = accepted.map { author, run in
                        guard let m = membership.members[author] else { return (author, []) }
                        guard let cut = m.revokedAfter else { return (author, run) }
                        return (author, run.filter { $0.header.seq <= cut })
                    }
                    let kept = accepted.flatMap(\.1)
                    result.refused = fresh.count - kept.count
                    if result.refused > 0 { membership = try Self.membership(db, vaultID: vaultID, adding: kept) }
                }
                var rows: [(DeviceID, Envelope, body: [UInt8], named: Bool)] = []
                for (author, run) in accepted {
                    for envelope in run {
                        // A purge already names it: only its purged form is stored (Protocol/membership.md §3.11).
                        let named = !envelope.isPurged && membership.isPurged(envelope)
                        rows.append((author, envelope, named ? envelope.purged().encoded() : envelope.encoded(), named))
                    }
                }
                let adding = rows.reduce(0) { $0 + $1.body.count }
                let used = quota == nil ? 0 : try Self.envelopeBytes(db, file)
                if let refusal = EnvelopeQuota.refusal(
                    used: used, adding: adding, quota: quota,
                    byCoordinators: EnvelopeQuota.byCoordinators(accepted, membership))
                {
                    file.envelopeBytes = used
                    throw refusal
                }
                for (author, envelope, body, named) in rows {
                    try db.execute(
                        sql: "INSERT INTO envelope(author, seq, hash, body) VALUES (?, ?, ?, ?)",
                        arguments: [
                            Data(author.bytes), Int64(clamping: envelope.header.seq), Data(envelope.hash), Data(body),
                        ])
                    result.stored += 1
                    result.bytes += body.count
                    if named { result.purged += 1 }
                }
                // A purge among the new entries: the relay destroys the ciphertext of what it names.
                let newPurges = membership.purges.filter { grant in
                    fresh.contains { $0.header.author == grant.author && $0.header.seq == grant.seq }
                }
                for grant in newPurges {
                    result.purged += try Self.applyPurge(db, grant.purge)
                    result.purgedChunks += grant.purge.chunks
                }
                // The count is known again once this transaction commits (a purge shrank bodies: summed again at the
                // next push), and unknown should it roll back.
                file.envelopeBytes = nil
                if quota != nil && newPurges.isEmpty {
                    let total = used + UInt64(adding)
                    db.afterNextTransaction { _ in file.envelopeBytes = total }
                }
                // Writes are serialised by the pool, so the cache is updated in the order the batches commit.
                self.lock.withLock {
                    self.memberships[name] = membership
                    self.membershipWrites[name, default: 0] &+= 1
                }
                return result
            }
        }
    }

    /// Replaces each stored envelope a purge names (same author, seq and ciphertext hash; never a membership entry)
    /// by its purged form. Returns how many were replaced.
    static func applyPurge(_ db: Database, _ purge: Purge) throws -> Int {
        var replaced = 0
        for target in purge.targets {
            let arguments: StatementArguments = [Data(target.author.bytes), Int64(clamping: target.seq)]
            guard
                let body = try Data.fetchOne(
                    db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?", arguments: arguments),
                let purged = purgedForm(of: body, naming: target)
            else { continue }
            try db.execute(
                sql: "UPDATE envelope SET body = ? WHERE author = ? AND seq = ?", arguments: [purged] + arguments)
            replaced += 1
        }
        return replaced
    }

    /// The purged form of a held envelope body that `target` names: nil when the body is already purged, is a
    /// membership entry (never purged) or has another ciphertext hash. Both relay storages decide by it.
    static func purgedForm(of body: Data, naming target: PurgeTarget) -> Data? {
        guard body.count != Envelope.purgedLength, let envelope = try? Envelope(decoding: Array(body)),
            !envelope.isAuthority, envelope.ciphertextHash == target.ciphertextHash
        else { return nil }
        return Data(envelope.purged().encoded())
    }

    // MARK: Copies without content

    /// A held body decoded, when it is a copy without content that the relay would take the content back for: the
    /// purged form of a record envelope that no purge in `membership` names. Both relay storages decide by it.
    static func strippedCopy(_ body: Data, membership: MembershipState) -> Envelope? {
        guard body.count == Envelope.purgedLength, let envelope = try? Envelope(decoding: Array(body)),
            envelope.isPurged, !envelope.isAuthority, !membership.isPurged(envelope)
        else { return nil }
        return envelope
    }

    /// Whether `envelope` may replace a held copy whose body is `held`: the held copy is without content
    /// (``strippedCopy(_:membership:)``), `envelope` is full and has the same hash — the same header and signature,
    /// and a ciphertext with the hash the signature covers, so the purges that name one name the other. Both relay
    /// storages decide by it.
    static func putsBack(_ envelope: Envelope, over held: Data, membership: MembershipState) -> Bool {
        guard !envelope.isPurged, let stored = strippedCopy(held, membership: membership) else { return false }
        return stored.hash == envelope.hash
    }

    /// The two windows of a listing of copies without content, as (offset, rows) in (author, seq) order over the
    /// `total` purged forms held: from a random offset on, then from the start up to that offset (a wrap-around).
    /// Copies nobody can fill (their content is lost, or their author pushed them stripped on purpose) then never
    /// keep the others from being listed, whatever their number: each sync sees another part of them.
    /// Together they read at most `rows` rows, never one twice.
    static func listingWindows(total: Int, rows: Int) -> [(offset: Int, rows: Int)] {
        guard total > 0, rows > 0 else { return [] }
        let start = total > rows ? Int.random(in: 0..<total) : 0
        let first = min(rows, total - start)
        return [(start, first), (0, min(start, rows - first))].filter { $0.rows > 0 }
    }

    /// The copies without content a listing collects from the purged forms it reads: each envelope once (a listing
    /// read in several statements may meet a row twice when others' writes move it between them), at most `limit`.
    struct StrippedListing {
        let membership: MembershipState
        let limit: Int
        private(set) var found: [[UInt8]] = []
        private var seen: Set<[UInt8]> = []

        init(membership: MembershipState, limit: Int) {
            self.membership = membership
            self.limit = limit
        }

        /// Whether the listing wants more rows.
        var wantsMore: Bool { found.count < limit }

        /// Takes a purged form read from the storage.
        mutating func offer(_ body: Data) {
            guard wantsMore, RelayStore.strippedCopy(body, membership: membership) != nil,
                seen.insert(Array(body.prefix(EnvelopeHeader.length))).inserted
            else { return }
            found.append(Array(body))
        }
    }

    /// How many rows a listing reads to find `limit` copies without content: the purged forms that held purges name
    /// come in among them, at most one per target.
    static func listingRows(_ limit: Int, _ membership: MembershipState) -> Int {
        membership.purges.reduce(limit) { $0 + $1.purge.targets.count }
    }

    public func copiesWithoutContent(vaultID: [UInt8], limit: Int) async throws -> [[UInt8]] {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        let membership = try await membership(vaultID: vaultID)
        let rows = Self.listingRows(limit, membership)
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.read { db in
                // Through the partial index `envelope_without_content`: only purged forms are read.
                let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM envelope WHERE \(Self.purgedFormCondition)")
                var listing = StrippedListing(membership: membership, limit: limit)
                for window in Self.listingWindows(total: total ?? 0, rows: rows) {
                    // A cursor, left once `limit` copies are found.
                    let cursor = try Data.fetchCursor(
                        db,
                        sql: """
                            SELECT body FROM envelope WHERE \(Self.purgedFormCondition)
                            ORDER BY author, seq LIMIT ? OFFSET ?
                            """,
                        arguments: [window.rows, window.offset])
                    while listing.wantsMore, let body = try cursor.next() { listing.offer(body) }
                }
                return listing.found
            }
        }
    }

    /// Bytes of the envelopes a vault's file holds, for `--quota`: summed at the first need after the file is opened,
    /// then kept in ``VaultFile/envelopeBytes`` by the writer. Call only inside the pool's writer.
    private static func envelopeBytes(_ db: Database, _ file: VaultFile) throws -> UInt64 {
        if let known = file.envelopeBytes { return known }
        return UInt64(clamping: try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(length(body)), 0) FROM envelope") ?? 0)
    }

    public func putBackContent(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64? = nil) async throws -> Int {
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        guard !envelopes.isEmpty else { return 0 }
        return try await Vault.mapErrorsAsync(file: "relay file", at: fileURL(vaultID)) {
            try await file.pool.write { db in
                // In the writer, so no purge can land between the check and the update.
                let membership = try Self.membership(db, vaultID: vaultID, adding: [])
                var budget = EnvelopeQuota.PutBackBudget(
                    quota: quota, used: quota == nil ? 0 : try Self.envelopeBytes(db, file))
                var restored = 0
                for envelope in envelopes where envelope.header.vaultID == vaultID {
                    let key: StatementArguments = [
                        Data(envelope.header.author.bytes), Int64(clamping: envelope.header.seq),
                    ]
                    guard
                        let held = try Data.fetchOne(
                            db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?", arguments: key),
                        Self.putsBack(envelope, over: held, membership: membership)
                    else { continue }
                    let body = envelope.encoded()
                    guard budget.admits(envelope, body: body, replacing: held, membership: membership) else { continue }
                    try db.execute(
                        sql: "UPDATE envelope SET body = ? WHERE author = ? AND seq = ?", arguments: [Data(body)] + key)
                    // Summed again at the next push under a quota (this transaction may still roll back).
                    file.envelopeBytes = nil
                    restored += 1
                }
                return restored
            }
        }
    }

    // MARK: Membership

    /// The vault's membership as the relay reads it from the authority envelopes it holds (their key derives
    /// from the vault id; the relay reads who belongs and who was revoked, never names or records).
    public func membership(vaultID: [UInt8]) async throws -> MembershipState {
        let name = Hex.encode(vaultID)
        let (cached, writes) = lock.withLock { (memberships[name], membershipWrites[name] ?? 0) }
        if let cached { return cached }
        guard let file = try vaultFile(vaultID) else { throw Self.unknown }
        let membership = try await Vault.mapErrorsAsync {
            try await file.pool.read { db in try Self.membership(db, vaultID: vaultID, adding: []) }
        }
        lock.withLock {
            if (membershipWrites[name] ?? 0) == writes { memberships[name] = membership }
        }
        return membership
    }

    /// Evaluates the authority envelopes held in `db` together with `adding`. The relay cannot decrypt record
    /// changes, so an `adopt` counts any record envelope before it as proof that its author wrote in the
    /// first-release vault.
    static func membership(_ db: Database, vaultID: [UInt8], adding: [Envelope]) throws -> MembershipState {
        // Bytes 94–97 (1-based) of an envelope are its key epoch; epoch 0 marks a membership entry.
        let bodies = try Data.fetchAll(db, sql: "SELECT body FROM envelope WHERE substr(body, 94, 4) = x'00000000'")
        var entries: [AuthoredEntry] = []
        for envelope in bodies.compactMap({ try? Envelope(decoding: Array($0)) }) + adding.filter(\.isAuthority) {
            if let entry = try? envelope.openEntry() { entries.append(entry) }
        }
        var legacy: [DeviceID: UInt64] = [:]
        let adopts = entries.contains {
            if case .adopt = $0.entry.operation { return true }
            return false
        }
        if adopts {
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT author, MIN(seq) AS seq FROM envelope
                    WHERE substr(body, 94, 4) != x'00000000' GROUP BY author
                    """)
            {
                guard let device = try? DeviceID(Array(row["author"] as Data)) else { continue }
                legacy[device] = UInt64(row["seq"] as Int64)
            }
            for envelope in adding where !envelope.isAuthority {
                let device = envelope.header.author
                legacy[device] = min(legacy[device] ?? envelope.header.seq, envelope.header.seq)
            }
        }
        return MembershipState.evaluate(vaultID: vaultID, entries: entries, legacyAuthors: legacy)
    }

    private static func forkError(_ envelope: Envelope) -> RelayStoreError {
        RelayStoreError(
            .fork,
            "Refused: device \(envelope.header.author.hex.prefix(12)) signed two different changes numbered \(envelope.header.seq); the relay keeps the first."
        )
    }

    /// Closes every open vault file.
    public func close() {
        lock.withLock {
            for file in open.values { try? file.pool.close() }
            open.removeAll()
        }
    }
}

extension Vault {
    /// The async form of ``mapErrors(file:at:_:)``.
    static func mapErrorsAsync<T>(file what: String, at url: URL, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw fileError(error, what: what, at: url)
        } catch let error as UntrustedRowError {
            throw StoreError(
                .damaged, "The \(what) \(url.path) is damaged: a row's \(error.column) is empty or of the wrong type.")
        }
    }

    /// The async form of ``mapErrors(_:)``.
    static func mapErrorsAsync<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            return try mapErrors { throw error }
        }
    }
}
