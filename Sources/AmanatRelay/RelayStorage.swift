import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import NIOPosix

/// Where a relay keeps what members push (Protocol/http-api.md §6): signed ciphertext envelopes, sealed attachment
/// chunks, each vault's relay public key and recently used request nonces — never a vault key, never plaintext.
///
/// Two implementations: ``SQLiteRelayStorage`` (one SQLite file per vault in a folder: the default, nothing to
/// install) and ``PostgresRelayStorage`` (one PostgreSQL database that any number of relay processes share,
/// Protocol/relay-postgres.md). Every decision that must hold across processes — a fork, a duplicate, a gap, a
/// replayed nonce, a vault's quota — is taken inside the storage (for PostgreSQL: by constraints and transactions),
/// never from one process's memory.
public protocol RelayStorage: Sendable {
    /// A short description for the operator's log ("SQLite files in /srv/relay", "PostgreSQL db@host").
    var summary: String { get }

    /// The relay public key registered for a vault, or nil when the relay does not hold it.
    func registeredKey(of vaultID: [UInt8]) async throws -> [UInt8]?
    /// Registers `key` as the vault's relay key (trust on first use): true if created now, false if already
    /// registered with this key; throws `keyMismatch` if registered with another, `full` when the relay holds
    /// `maxVaults` vaults (unused ones older than ``RelayStore/unusedVaultLifetime`` are removed first).
    func register(vaultID: [UInt8], key: [UInt8], now: Int64) async throws -> Bool
    /// Removes vaults registered more than ``RelayStore/unusedVaultLifetime`` before `now` that hold no envelope.
    @discardableResult func removeUnusedVaults(now: Int64) async throws -> Int
    /// Records a request nonce; false if it was already used (a replay, whichever relay process saw it first).
    func useNonce(vaultID: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws -> Bool
    /// Each author's last seq and head hash.
    func versionVector(vaultID: [UInt8]) async throws -> [DeviceID: ChainHead]
    /// Up to `limit` wire forms of `author`'s envelopes after `seq`, in seq order, within `byteBudget`.
    func envelopes(vaultID: [UInt8], author: DeviceID, after seq: UInt64, limit: Int, byteBudget: Int) async throws
        -> [[UInt8]]
    /// What a replica whose vector is `vector` lacks (``RelayStore/missing(vaultID:for:limit:byteBudget:)``).
    func missing(vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int) async throws
        -> RelayMissing
    /// The number of envelopes held for a vault.
    func count(vaultID: [UInt8]) async throws -> Int
    /// Verifies and stores pushed envelopes, all or nothing (``RelayStore/store(vaultID:envelopes:)``). An envelope a
    /// held purge names is stored in its purged form; a purge among the new entries replaces what it names by the
    /// purged form and removes the chunks it lists (Protocol/membership.md §12). Throws `overQuota` when the push would
    /// take the vault's envelopes past `quota` bytes (``EnvelopeQuota``).
    func store(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> RelayStoreResult
    /// The vault's membership as read from the authority envelopes held.
    func membership(vaultID: [UInt8]) async throws -> MembershipState
    /// Up to `limit` wire forms of envelopes held in their purged form that no purge the relay holds names — copies a
    /// carrier or a member stripped (Protocol/http-api.md §11) — in (author, seq) order.
    func copiesWithoutContent(vaultID: [UInt8], limit: Int) async throws -> [[UInt8]]
    /// Puts back the content of copies held without content (Protocol/http-api.md §11): each full envelope whose held
    /// copy is in purged form with the same hash, that no held purge names, replaces it. Anything else is skipped.
    /// Returns how many were put back. A copy whose content would take the vault's envelopes past `quota` stays
    /// without content, unless its author is a coordinator (``EnvelopeQuota/PutBackBudget``).
    func putBackContent(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> Int
    /// Admits a signed request to a registered vault (Protocol/http-api.md §3): the vault is held, `key` is its
    /// registered relay key, and the nonce is new — recorded now, and only when the key is the vault's. Then the
    /// vault's membership, for the device check.
    func admit(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws
        -> RelayAdmission
    /// ``admit(vaultID:key:nonce:expires:now:)`` and, when admitted, the vault's vector (empty otherwise): what
    /// `GET …/vector` answers.
    func admitWithVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws
        -> (RelayAdmission, [DeviceID: ChainHead])
    /// ``admitWithVector(vaultID:key:nonce:expires:now:)`` and whether the vault may hold copies without content
    /// (false only when it holds no purged form at all: the vector answer then needs no listing).
    func admitForVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws
        -> (RelayAdmission, [DeviceID: ChainHead], mayHoldCopiesWithoutContent: Bool)

    /// Which of the listed chunks (address, sealed length) are held, in the order asked.
    func heldChunks(vaultID: [UInt8], _ wanted: [(address: [UInt8], sealedLength: Int)]) async throws -> [[UInt8]]
    /// The sealed bytes of a chunk, or nil when not held.
    func readChunk(vaultID: [UInt8], address: [UInt8]) async throws -> [UInt8]?
    /// Stores a sealed chunk unless a held purge destroyed it or storing it would pass `quota` bytes of chunks for
    /// the vault.
    func storeChunk(vaultID: [UInt8], address: [UInt8], sealed: [UInt8], quota: UInt64?) async throws
        -> ChunkWriteOutcome
    /// Sets the stored chunk of `address` aside if its SHA-256 is `sha256`, a copy a member found damaged (it does
    /// not open as the chunk of its address under any key the member holds): kept, never served again, counted in
    /// the quota, removed by a purge. Returns whether it was set aside. Only that exact copy is: one stored since
    /// stays (Protocol/http-api.md §10).
    func discardDamagedChunk(vaultID: [UInt8], address: [UInt8], sha256: [UInt8]) async throws -> Bool

    /// What the relay holds in all, for the operator's metrics.
    func totals() async throws -> RelayTotals
    /// Releases connections and files.
    func close() async
}

/// What ``RelayStorage/admit(vaultID:key:nonce:expires:now:)`` found, in the order it checks.
public enum RelayAdmission: Sendable {
    /// The relay does not hold the vault.
    case unknownVault
    /// The vault is registered with another relay key.
    case otherKey
    /// The nonce was already used (a replay, whichever relay process saw it first).
    case replayed
    /// Admitted: the nonce is recorded; the vault's membership as held.
    case admitted(MembershipState)
}

extension RelayStorage {
    /// Puts content back with no quota.
    public func putBackContent(vaultID: [UInt8], envelopes: [Envelope]) async throws -> Int {
        try await putBackContent(vaultID: vaultID, envelopes: envelopes, quota: nil)
    }

    /// Stores pushed envelopes with no quota.
    public func store(vaultID: [UInt8], envelopes: [Envelope]) async throws -> RelayStoreResult {
        try await store(vaultID: vaultID, envelopes: envelopes, quota: nil)
    }

    /// The checks one after the other, for a storage where each is a local read.
    public func admit(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws
        -> RelayAdmission
    {
        guard let registered = try await registeredKey(of: vaultID) else { return .unknownVault }
        guard registered == key else { return .otherKey }
        guard try await useNonce(vaultID: vaultID, nonce: nonce, expires: expires, now: now) else { return .replayed }
        return .admitted(try await membership(vaultID: vaultID))
    }

    /// The admission and the vector; whether copies without content are held is left to the listing.
    public func admitForVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64)
        async throws -> (RelayAdmission, [DeviceID: ChainHead], mayHoldCopiesWithoutContent: Bool)
    {
        let (admission, vector) = try await admitWithVector(
            vaultID: vaultID, key: key, nonce: nonce, expires: expires, now: now)
        return (admission, vector, true)
    }

    /// The admission, then the vector.
    public func admitWithVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64)
        async throws -> (RelayAdmission, [DeviceID: ChainHead])
    {
        let admission = try await admit(vaultID: vaultID, key: key, nonce: nonce, expires: expires, now: now)
        guard case .admitted = admission else { return (admission, [:]) }
        return (admission, try await versionVector(vaultID: vaultID))
    }
}

/// What ``RelayStorage/storeChunk(vaultID:address:sealed:quota:)`` did.
public enum ChunkWriteOutcome: Sendable, Equatable {
    /// The chunk is stored now.
    case stored
    /// The chunk was already held.
    case alreadyHeld
    /// A purge the relay holds destroyed this chunk: it is not stored again (an upload that began before its
    /// replica learned of the purge).
    case purged
    /// Storing it would pass the quota; the vault's chunks already use `used` bytes.
    case overQuota(used: UInt64)
}

/// Totals over every vault a relay holds (`GET /metrics`).
public struct RelayTotals: Sendable, Equatable {
    /// Registered vaults.
    public var vaults = 0
    /// Stored envelopes.
    public var envelopes = 0
    /// Bytes of stored envelopes.
    public var envelopeBytes: UInt64 = 0
    /// Bytes of stored chunks.
    public var chunkBytes: UInt64 = 0

    /// Zero totals.
    public init() {}
}

/// The default storage: ``RelayStore``'s SQLite file per vault and a chunk folder per vault in one data folder.
/// Blocking file work (opening a vault file, chunk files) runs on NIO's thread pool, off the event loops; GRDB's
/// async reads and writes already run on its own queues.
public final class SQLiteRelayStorage: RelayStorage {
    /// The wrapped store.
    public let store: RelayStore
    /// Bytes of chunks stored per vault, counted once from the disk and then kept up to date.
    let chunkUsage = ChunkUsage()
    /// One lock per stripe of chunk addresses: a store, a set-aside and a purge's removal of one address never run
    /// at once (each reads what is held and then moves it: two at once could move a copy over another). This process
    /// alone serves the folder (http-api.md §6).
    let addressLocks = (0..<64).map { _ in NSLock() }

    /// Storage over a data folder (created when missing).
    public convenience init(directory: URL, maxVaults: Int = 1000) throws {
        self.init(try RelayStore(directory: directory, maxVaults: maxVaults))
    }

    /// Storage over an open store.
    public init(_ store: RelayStore) { self.store = store }

    public var summary: String { "SQLite files in \(store.directory.path)" }

    /// Runs blocking work on NIO's thread pool.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    public func registeredKey(of vaultID: [UInt8]) async throws -> [UInt8]? {
        let store = store
        return try await blocking { try store.registeredKey(of: vaultID) }
    }

    public func register(vaultID: [UInt8], key: [UInt8], now: Int64) async throws -> Bool {
        let store = store
        return try await blocking { try store.register(vaultID: vaultID, key: key, now: now) }
    }

    public func removeUnusedVaults(now: Int64) async throws -> Int {
        let store = store
        return try await blocking { store.removeUnusedVaults(now: now) }
    }

    public func useNonce(vaultID: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws -> Bool {
        try await store.useNonce(vaultID: vaultID, nonce: nonce, expires: expires, now: now)
    }

    public func versionVector(vaultID: [UInt8]) async throws -> [DeviceID: ChainHead] {
        try await store.versionVector(vaultID: vaultID)
    }

    public func envelopes(vaultID: [UInt8], author: DeviceID, after seq: UInt64, limit: Int, byteBudget: Int)
        async throws -> [[UInt8]]
    {
        try await store.envelopes(vaultID: vaultID, author: author, after: seq, limit: limit, byteBudget: byteBudget)
    }

    public func missing(vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int) async throws
        -> RelayMissing
    {
        try await store.missing(vaultID: vaultID, for: vector, limit: limit, byteBudget: byteBudget)
    }

    public func count(vaultID: [UInt8]) async throws -> Int { try await store.count(vaultID: vaultID) }

    public func store(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> RelayStoreResult {
        let result = try await store.store(vaultID: vaultID, envelopes: envelopes, quota: quota)
        if !result.purgedChunks.isEmpty {
            // The chunks a stored purge destroys are overwritten, then removed, and their bytes given back to the
            // vault's usage.
            let chunks = chunkStore(vaultID: vaultID)
            let usage = chunkUsage
            let vault = Hex.encode(vaultID)
            let locks = addressLocks
            try await blocking {
                for address in result.purgedChunks {
                    Self.removeEveryCopy(address, chunks: chunks, usage: usage, vault: vault, locks: locks)
                }
            }
        }
        return result
    }

    public func membership(vaultID: [UInt8]) async throws -> MembershipState {
        try await store.membership(vaultID: vaultID)
    }

    public func copiesWithoutContent(vaultID: [UInt8], limit: Int) async throws -> [[UInt8]] {
        try await store.copiesWithoutContent(vaultID: vaultID, limit: limit)
    }

    public func putBackContent(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> Int {
        try await store.putBackContent(vaultID: vaultID, envelopes: envelopes, quota: quota)
    }

    /// The folder of a vault's attachment chunks: `DATA/<vault id>.chunks/`, opaque sealed blobs.
    public func chunkStore(vaultID: [UInt8]) -> ChunkStore { store.chunkStore(vaultID: vaultID) }

    /// The chunk addresses the purges held for a vault destroyed. Their files are removed right after the purge is
    /// stored; should that removal have been cut short (a crash between the commit and the unlink), such a chunk is
    /// still never served, reported held or stored again.
    private func purgedChunks(_ vaultID: [UInt8]) async throws -> Set<[UInt8]> {
        Set(try await store.membership(vaultID: vaultID).purges.flatMap(\.purge.chunks))
    }

    public func heldChunks(vaultID: [UInt8], _ wanted: [(address: [UInt8], sealedLength: Int)]) async throws
        -> [[UInt8]]
    {
        let chunks = chunkStore(vaultID: vaultID)
        let purged = try await purgedChunks(vaultID)
        return try await blocking {
            wanted.compactMap {
                !purged.contains($0.address) && chunks.has($0.address, sealedLength: $0.sealedLength)
                    ? $0.address : nil
            }
        }
    }

    public func readChunk(vaultID: [UInt8], address: [UInt8]) async throws -> [UInt8]? {
        let chunks = chunkStore(vaultID: vaultID)
        guard try await !purgedChunks(vaultID).contains(address) else { return nil }
        return try await blocking { try chunks.read(address) }
    }

    public func storeChunk(vaultID: [UInt8], address: [UInt8], sealed: [UInt8], quota: UInt64?) async throws
        -> ChunkWriteOutcome
    {
        let chunks = chunkStore(vaultID: vaultID)
        let usage = chunkUsage
        let vault = Hex.encode(vaultID)
        if try await purgedChunks(vaultID).contains(address) { return .purged }
        let lock = addressLock(address)
        let outcome: ChunkWriteOutcome = try await blocking {
            lock.lock()
            defer { lock.unlock() }
            if chunks.has(address, sealedLength: sealed.count) { return .alreadyHeld }
            guard usage.reserve(sealed.count, vault: vault, store: chunks, quota: quota) else {
                return .overQuota(used: usage.used(vault: vault))
            }
            let written: Bool
            // A copy of another length held here is set aside by the write, and stays counted; one set aside with
            // the same content already is there once: what the disk holds for the address is what counts.
            let before = chunks.lengthOnDisk(of: address)
            do {
                written = try chunks.write(address, sealed: sealed)
            } catch {
                usage.release(sealed.count, vault: vault)
                throw error
            }
            guard written else {
                // The same chunk, uploaded at the same moment by another request, was there first.
                usage.release(sealed.count, vault: vault)
                return .alreadyHeld
            }
            let added = chunks.lengthOnDisk(of: address) - before
            if added < sealed.count { usage.release(sealed.count - added, vault: vault) }
            return .stored
        }
        // A purge stored while this chunk was being written removed the chunks before this one was there: look
        // again now that it is, so a purged chunk never outlives the purge.
        if outcome == .stored, try await purgedChunks(vaultID).contains(address) {
            let locks = addressLocks
            try await blocking {
                Self.removeEveryCopy(address, chunks: chunks, usage: usage, vault: vault, locks: locks)
            }
            return .purged
        }
        return outcome
    }

    public func discardDamagedChunk(vaultID: [UInt8], address: [UInt8], sha256: [UInt8]) async throws -> Bool {
        let chunks = chunkStore(vaultID: vaultID)
        // Set aside, not destroyed: the relay may hold the only copy, and it cannot tell a damaged one from a
        // member's word. The bytes still count toward the vault's quota until a purge removes them.
        let usage = chunkUsage
        let vault = Hex.encode(vaultID)
        let lock = addressLock(address)
        let setAside = try await blocking {
            lock.lock()
            defer { lock.unlock() }
            // A copy set aside with the same content already is kept once: what the disk holds is what counts.
            let before = chunks.lengthOnDisk(of: address)
            let setAside = try chunks.setAside(address, ifSHA256: sha256)
            let after = chunks.lengthOnDisk(of: address)
            if after < before { usage.release(before - after, vault: vault) }
            return setAside
        }
        // A purge stored while the copy was being checked found nothing in its place: remove it now, so a purged
        // chunk never outlives the purge (as a store does).
        if try await purgedChunks(vaultID).contains(address) {
            let locks = addressLocks
            try await blocking {
                Self.removeEveryCopy(address, chunks: chunks, usage: usage, vault: vault, locks: locks)
            }
        }
        return setAside
    }

    /// The lock of `address`'s stripe (``addressLocks``).
    func addressLock(_ address: [UInt8]) -> NSLock { Self.lock(of: address, in: addressLocks) }

    static func lock(of address: [UInt8], in locks: [NSLock]) -> NSLock { locks[Int(address.first ?? 0) % locks.count] }

    /// Under `address`'s lock, removes its copy and every copy set aside (a purge names it), and gives their bytes back
    /// to the vault's usage. Blocking: on the thread pool.
    static func removeEveryCopy(
        _ address: [UInt8], chunks: ChunkStore, usage: ChunkUsage, vault: String, locks: [NSLock]
    ) {
        let lock = lock(of: address, in: locks)
        lock.lock()
        defer { lock.unlock() }
        let freed = chunks.lengthOnDisk(of: address)
        _ = chunks.remove([address])
        usage.release(freed, vault: vault)
    }

    public func totals() async throws -> RelayTotals {
        let store = store
        let vaults = try await blocking { store.vaultIDs() }
        var totals = RelayTotals()
        totals.vaults = vaults.count
        let usage = chunkUsage
        for vault in vaults {
            // Opening a vault's file (the first time) and measuring its chunk folder block: on NIO's thread pool, off
            // the event loops, like every other file access here.
            let chunkBytes = try await blocking {
                _ = try store.registeredKey(of: vault)
                return usage.usedOrMeasure(vault: Hex.encode(vault), store: store.chunkStore(vaultID: vault))
            }
            let (count, bytes) = try await store.envelopeTotals(vaultID: vault)
            totals.envelopes += count
            totals.envelopeBytes += bytes
            totals.chunkBytes += chunkBytes
        }
        return totals
    }

    public func close() async { store.close() }
}

extension RelayStore {
    /// The folder of a vault's attachment chunks: `DATA/<vault id>.chunks/`, opaque sealed blobs.
    public func chunkStore(vaultID: [UInt8]) -> ChunkStore {
        ChunkStore(root: directory.appendingPathComponent(Hex.encode(vaultID) + ".chunks"))
    }
}

/// Bytes of attachment chunks each vault stores in a ``SQLiteRelayStorage``, for `--quota`
/// (Protocol/http-api.md §9). One process owns a SQLite data folder, so its count is the truth.
final class ChunkUsage: @unchecked Sendable {
    // @unchecked Sendable: every access holds `lock`.
    private let lock = NSLock()
    private var bytes: [String: UInt64] = [:]

    /// Reserves `length` bytes for a vault whose chunks are in `store`: false when `quota` would be passed.
    func reserve(_ length: Int, vault: String, store: ChunkStore, quota: UInt64?) -> Bool {
        lock.withLock {
            let used = bytes[vault] ?? Self.measure(store)
            guard quota.map({ used + UInt64(length) <= $0 }) ?? true else {
                bytes[vault] = used
                return false
            }
            bytes[vault] = used + UInt64(length)
            return true
        }
    }

    /// Gives back bytes reserved for a chunk that was not written, or of chunks removed. A vault not measured yet
    /// stays unmeasured: its first reservation measures the disk, where the removed chunks are gone already.
    func release(_ length: Int, vault: String) {
        lock.withLock {
            guard let used = bytes[vault] else { return }
            bytes[vault] = used - min(UInt64(length), used)
        }
    }

    /// Bytes used by a vault, for the 507 sentence.
    func used(vault: String) -> UInt64 { lock.withLock { bytes[vault] ?? 0 } }

    /// Bytes used by a vault, measured from the disk the first time.
    func usedOrMeasure(vault: String, store: ChunkStore) -> UInt64 {
        lock.withLock {
            if let used = bytes[vault] { return used }
            let used = Self.measure(store)
            bytes[vault] = used
            return used
        }
    }

    static func measure(_ store: ChunkStore) -> UInt64 {
        store.addresses().reduce(0) { $0 + UInt64(store.storedLength($1) ?? 0) } + store.setAsideBytes()
    }
}
