import AmanatCore
import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The unlock counter (Protocol/storage.md §2.1): how many unlock attempts in a row have not succeeded, and the
/// limit after which the vault is wiped (0: none). A fixed-size file, overwritten and synced on every attempt whether
/// or not a limit is set, sealed under a key every copy of Amanat knows: its bytes look random and change on every
/// attempt, but anyone with the program can read it (Docs/threat-model.md).
struct UnlockCounter: Equatable {
    static let fileName = "unlock.amk"
    static let plainLength = 16
    static let fileLength = AEAD.nonceLength + plainLength + AEAD.tagLength
    static let additionalData = Array("amanat-unlock-counter/1".utf8)
    static let key = SecureBytes(BLAKE2b.hash(Array("amanat unlock counter key, known to every copy".utf8)))

    /// After this many failed attempts in a row the vault is wiped; 0: never.
    var limit: UInt32 = 0
    /// Attempts since the last success (an attempt counts from the moment it starts).
    var failures: UInt32 = 0

    static func url(_ dir: URL) -> URL { dir.appendingPathComponent(fileName) }

    /// The counter in `dir`; a missing or unreadable file counts as no limit and no failures (someone who can
    /// delete it can also copy the keyring and guess offline, which no counter stops).
    static func read(in dir: URL) -> UnlockCounter {
        guard let data = FileManager.default.contents(atPath: url(dir).path), data.count == fileLength else {
            return UnlockCounter()
        }
        let bytes = Array(data)
        guard
            let plain = try? AEAD.open(
                Array(bytes.dropFirst(AEAD.nonceLength)), additionalData: additionalData,
                nonce: Array(bytes.prefix(AEAD.nonceLength)), key: key),
            plain.count == plainLength
        else { return UnlockCounter() }
        var r = ByteReader(plain)
        guard let limit = try? r.read(bigEndian: UInt32.self), let failures = try? r.read(bigEndian: UInt32.self)
        else { return UnlockCounter() }
        return UnlockCounter(limit: limit, failures: failures)
    }

    /// Writes the counter under a new nonce: temporary file, fsync, rename, fsync of the folder.
    func write(in dir: URL) throws {
        var w = ByteWriter(capacity: Self.plainLength)
        w.write(bigEndian: limit)
        w.write(bigEndian: failures)
        w.write(raw: [UInt8](repeating: 0, count: 8))
        let nonce = AEAD.randomNonce()
        let sealed = try AEAD.seal(w.bytes, additionalData: Self.additionalData, nonce: nonce, key: Self.key)
        let bytes = nonce + sealed
        do {
            // In place when the file is there: 56 bytes at offset 0 lie within one disk sector, whose write is
            // atomic, and overwriting allocated bytes needs no free space (a full disk still opens). A new file
            // is written atomically.
            let fd = Glibc.open(Self.url(dir).path, O_WRONLY | O_NOFOLLOW)
            if fd >= 0 {
                defer { close(fd) }
                var info = stat()
                if fstat(fd, &info) == 0, info.st_size == Self.fileLength {
                    let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, bytes.count, 0) }
                    guard n == bytes.count, fsync(fd) == 0 else {
                        throw AtomicFile.ioError(errno, "could not write \(Self.url(dir).path)")
                    }
                    return
                }
            }
            try AtomicFile.write(bytes, to: Self.url(dir))
        } catch let error as StoreError {
            throw StoreError(
                error.code == .diskFull ? .diskFull : .io,
                "The unlock attempt could not be recorded in \(dir.path), so the vault was not opened: \(error.message)"
            )
        }
    }
}

/// What `wipe` (or a duress passphrase, or the unlock limit) destroyed, and what it could not.
public struct WipeReport: Sendable, Equatable {
    /// One line per file destroyed, saying how.
    public var destroyed: [String] = []
    /// One line per file that could not be destroyed, saying why.
    public var failed: [String] = []
    /// Whether the keyring's content is gone (overwritten, or at least deleted): the rest cannot be decrypted
    /// with what is left on this laptop.
    public var keysDestroyed = false
    /// Seconds from the start of the wipe until the keyring was overwritten, synced and deleted (`make bench`).
    public var secondsToDestroyKeys: Double = 0

    /// Everything was destroyed.
    public var complete: Bool { failed.isEmpty }

    /// An empty report.
    public init() {}
}

extension Vault {
    /// The keyring unlocked under the unlock counter: the attempt is counted and synced before the derivation,
    /// the limit (if reached, also by earlier attempts that were killed) wipes the vault, and success resets it.
    static func unlockCounting(at dir: URL, passphrase: SecureBytes) throws -> Keyring.Unlocked {
        // Read, check and count under a lock of the vault folder: attempts started at the same moment (a guesser
        // running many processes) are counted one by one, so no more than the limit ever reach the derivation. The
        // keyring is read under it too, so no attempt sees the folder between a wipe and its tombstone.
        var sealed: Keyring.Sealed?
        var counter = try withCounterLock(dir) { () throws -> UnlockCounter in
            let loaded = try Keyring.load(from: keyringURL(dir))
            sealed = loaded
            var counter = UnlockCounter.read(in: dir)
            if counter.limit > 0, counter.failures >= counter.limit {
                destroyForSafety(at: dir, sealed: loaded)
                throw Keyring.wrongPassphrase
            }
            counter.failures = counter.failures == .max ? .max : counter.failures + 1
            try counter.write(in: dir)
            return counter
        }
        guard let sealed else { throw Keyring.wrongPassphrase }
        let result: Keyring.Unlocked
        do {
            result = try Keyring.unlock(sealed, passphrase: passphrase)
        } catch let error as StoreError where error.code == .wrongPassphrase {
            if counter.limit > 0, counter.failures >= counter.limit {
                try withCounterLock(dir) { destroyForSafety(at: dir, sealed: sealed) }
            }
            throw error
        }
        if case .keyring = result {
            try withCounterLock(dir) {
                counter = UnlockCounter.read(in: dir)
                counter.failures = 0
                try counter.write(in: dir)
            }
        }
        return result
    }

    /// Runs `body` holding an exclusive `flock` of the vault folder (the counter file itself is replaced by each
    /// write, so it cannot carry the lock). Held for the few milliseconds of a counter update, never a derivation.
    static func withCounterLock<T>(_ dir: URL, _ body: () throws -> T) throws -> T {
        let fd = Glibc.open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer { if fd >= 0 { close(fd) } }
        return try body()
    }

    /// The duress passphrase was entered: this device's keys are destroyed first. In decoy mode the decoy vault is
    /// then moved into this folder (true); otherwise a keyring that no passphrase opens takes the keyring's place,
    /// so that every later attempt reads as a wrong passphrase (false).
    static func actOnDuress(_ setting: DuressSetting, at dir: URL) -> Bool {
        let sealed = try? Keyring.load(from: keyringURL(dir))
        _ = destroy(at: dir, removeFolder: false)
        if setting.mode == .decoy, let path = setting.decoy, moveDecoy(from: URL(fileURLWithPath: path), into: dir) {
            return true
        }
        try? AtomicFile.write(Keyring.tombstone(like: sealed), to: keyringURL(dir))
        return false
    }

    /// The unlock limit was reached: the vault is destroyed and a keyring no passphrase opens is left in its place.
    static func destroyForSafety(at dir: URL, sealed: Keyring.Sealed) {
        _ = destroy(at: dir, removeFolder: false)
        try? AtomicFile.write(Keyring.tombstone(like: sealed), to: keyringURL(dir))
    }

    /// Moves the decoy vault's database and keyring (last: its presence makes the folder a vault) into `dir`, and
    /// removes the decoy folder if nothing else is left in it. False if there is no decoy vault there any more.
    static func moveDecoy(from decoy: URL, into dir: URL) -> Bool {
        let fm = FileManager.default
        guard exists(at: decoy), fm.fileExists(atPath: databaseURL(decoy).path),
            decoy.standardizedFileURL.path != dir.standardizedFileURL.path
        else { return false }
        try? fm.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        do {
            for suffix in ["", "-wal", "-shm"] where fm.fileExists(atPath: databaseURL(decoy).path + suffix) {
                try move(databaseURL(decoy).path + suffix, to: databaseURL(dir).path + suffix)
            }
            // The decoy's own attachments come with it (the real vault's chunks were destroyed with its keys).
            let decoyChunks = decoy.appendingPathComponent(chunksFolderName).path
            if fm.fileExists(atPath: decoyChunks) {
                try move(decoyChunks, to: dir.appendingPathComponent(chunksFolderName).path)
            }
            try move(keyringURL(decoy).path, to: keyringURL(dir).path)
        } catch {
            return false
        }
        AtomicFile.syncDirectory(dir)
        try? fm.removeItem(at: UnlockCounter.url(decoy))
        if let rest = try? fm.contentsOfDirectory(atPath: decoy.path), rest.isEmpty { try? fm.removeItem(at: decoy) }
        return true
    }

    /// The folder of attachment chunks in a vault folder.
    static let chunksFolderName = "chunks"

    /// Deletes a folder tree without following symbolic links (a link is removed, never its target); returns the
    /// files deleted, their bytes, and what could not be deleted.
    static func removeTree(_ root: URL) -> (files: Int, bytes: UInt64, failures: [String]) {
        var files = 0
        var bytes: UInt64 = 0
        var failures: [String] = []
        func visit(_ path: String) {
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if info.st_mode & S_IFMT == S_IFDIR {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                    visit(path + "/" + name)
                }
                if rmdir(path) != 0 {
                    failures.append("\(path) could not be removed (\(String(cString: strerror(errno))))")
                }
            } else if unlink(path) == 0 {
                files += 1
                bytes += UInt64(max(info.st_size, 0))
            } else {
                failures.append("\(path) could not be deleted (\(String(cString: strerror(errno))))")
            }
        }
        visit(root.path)
        return (files, bytes, failures)
    }

    private static func move(_ from: String, to: String) throws {
        if Glibc.rename(from, to) == 0 { return }
        // Another file system: copy, flush, then remove the original.
        let fm = FileManager.default
        try? fm.removeItem(atPath: to)
        try fm.copyItem(atPath: from, toPath: to)
        AtomicFile.flush(URL(fileURLWithPath: to))
        try fm.removeItem(atPath: from)
    }

    /// Destroys the vault: the keyring first (crypto-shredding, so the rest is unreadable at once), then the rest.
    /// Returns what was destroyed and what could not be; throws only when there is no vault.
    @discardableResult
    public static func wipe(at dir: URL) throws -> WipeReport {
        guard exists(at: dir) else {
            throw StoreError(.noVault, "There is no vault in \(dir.path) to wipe.")
        }
        return destroy(at: dir, removeFolder: true)
    }

    /// Overwrites the keyring with random bytes, syncs and deletes it, then deletes the database, its journals, the
    /// unlock counter and any temporary copies of these files a crash may have left, then the folder if empty.
    static func destroy(at dir: URL, removeFolder: Bool) -> WipeReport {
        var report = WipeReport()
        let start = ContinuousClock.now
        let fm = FileManager.default
        let keyring = keyringURL(dir)
        // A read-only keyring is made writable first: it belongs to this user, who wants it gone.
        chmod(keyring.path, 0o600)
        var overwritten = false
        let fd = Glibc.open(keyring.path, O_WRONLY)
        if fd >= 0 {
            var size = Int(lseek(fd, 0, SEEK_END))
            size = max(size, 4096)
            lseek(fd, 0, SEEK_SET)
            let noise = Sodium.randomBytes(size)
            var written = 0
            while written < size {
                let n = noise.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, size - written) }
                if n <= 0 { break }
                written += n
            }
            overwritten = written == size && fsync(fd) == 0
            close(fd)
        }
        let overwriteError = overwritten ? "" : String(cString: strerror(errno))
        let deleted = unlink(keyring.path) == 0
        let deleteError = deleted ? "" : String(cString: strerror(errno))
        AtomicFile.syncDirectory(dir)
        let elapsed = ContinuousClock.now - start
        report.secondsToDestroyKeys =
            Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        switch (overwritten, deleted) {
        case (true, true):
            report.destroyed.append("\(keyringFileName): the keys, overwritten with random bytes and deleted")
        case (true, false):
            report.destroyed.append("\(keyringFileName): the keys, overwritten with random bytes")
            report.failed.append("\(keyringFileName) could not be deleted (\(deleteError))")
        case (false, true):
            report.destroyed.append("\(keyringFileName): the keys, deleted")
            report.failed.append(
                "\(keyringFileName) could not be overwritten before it was deleted (\(overwriteError)); its bytes may remain on the disk"
            )
        case (false, false):
            report.failed.append(
                "\(keyringFileName), the keys, could be neither overwritten (\(overwriteError)) nor deleted (\(deleteError))"
            )
        }
        report.keysDestroyed = overwritten || deleted
        var names = [databaseFileName, databaseFileName + "-wal", databaseFileName + "-shm"]
        names += [databaseFileName + "-journal", UnlockCounter.fileName]
        // Temporary files of an interrupted atomic write can hold an older copy of the keyring or counter.
        let leftovers = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter {
            $0.hasPrefix(".\(keyringFileName).") || $0.hasPrefix(".\(UnlockCounter.fileName).")
        }
        for name in names + leftovers.sorted() {
            let path = dir.appendingPathComponent(name).path
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if unlink(path) == 0 {
                report.destroyed.append("\(name): deleted")
            } else {
                report.failed.append("\(name) could not be deleted (\(String(cString: strerror(errno))))")
            }
        }
        // The attachments' chunks (sealed under the vault key, which other members hold too) go with the rest.
        let chunks = dir.appendingPathComponent(chunksFolderName)
        var chunkInfo = stat()
        if lstat(chunks.path, &chunkInfo) == 0 {
            let (files, bytes, failures) = removeTree(chunks)
            if files > 0 || failures.isEmpty {
                report.destroyed.append(
                    "\(chunksFolderName)/: \(files) attachment chunk file\(files == 1 ? "" : "s") (\(bytes >> 20) MiB) deleted"
                )
            }
            report.failed += failures
        }
        AtomicFile.syncDirectory(dir)
        if removeFolder, let rest = try? fm.contentsOfDirectory(atPath: dir.path), rest.isEmpty {
            if rmdir(dir.path) == 0 { report.destroyed.append("the vault folder \(dir.path): removed") }
        }
        return report
    }
}

// MARK: Duress passphrase and unlock limit

extension Vault {
    /// The duress passphrase's setting, if one is set (only the real passphrase's holder can know).
    public var duressSetting: DuressSetting? {
        guard let duress = keyring.duress else { return nil }
        return DuressSetting(payload: duress.payload.copyBytes())
    }

    /// Sets (or replaces) the duress passphrase. It is derived once with the keyring's salt and costs; one that
    /// derives the same key as the vault's passphrase (the same passphrase) is refused.
    public func setDuress(passphrase duressPassphrase: SecureBytes, setting: DuressSetting) throws {
        guard let wrapping = keyring.wrapping else {
            throw StoreError(.invalid, "The keyring must be unlocked with its passphrase to set a duress passphrase.")
        }
        var payload = try setting.payload()
        let master = try Keyring.derive(
            duressPassphrase, salt: wrapping.salt, opsLimit: wrapping.ops, memLimit: wrapping.mem)
        guard !master.constantTimeEquals(wrapping.master) else {
            throw StoreError(.invalid, "The duress passphrase must differ from the vault's passphrase.")
        }
        var updated = keyring
        updated.duress = Keyring.DuressSecret(
            key: KeyDerivation.deriveSubkey(from: master, id: 2, context: Keyring.subkeyContext),
            payload: SecureBytes(consuming: &payload))
        try updated.write(to: Self.keyringURL(directory), wrapping: wrapping)
        keyring = updated
    }

    /// Clears the duress passphrase; the slot becomes random bytes again (it is re-randomized at every rewrite).
    public func clearDuress() throws {
        guard let wrapping = keyring.wrapping else {
            throw StoreError(.invalid, "The keyring must be unlocked with its passphrase to clear a duress passphrase.")
        }
        var updated = keyring
        updated.duress = nil
        try updated.write(to: Self.keyringURL(directory), wrapping: wrapping)
        keyring = updated
    }

    /// The unlock limit: after this many failed unlocks in a row the vault is wiped; nil when off.
    public var unlockLimit: UInt32? {
        let limit = UnlockCounter.read(in: directory).limit
        return limit == 0 ? nil : limit
    }

    /// The largest unlock limit accepted.
    public static let maximumUnlockLimit: UInt32 = 1000

    /// Sets the unlock limit (nil: off). The counter restarts at 0 (the vault was just unlocked).
    public func setUnlockLimit(_ limit: UInt32?) throws {
        if let limit, !(1...Self.maximumUnlockLimit).contains(limit) {
            throw StoreError(.invalid, "The unlock limit must be between 1 and \(Self.maximumUnlockLimit).")
        }
        try UnlockCounter(limit: limit ?? 0, failures: 0).write(in: directory)
    }
}
