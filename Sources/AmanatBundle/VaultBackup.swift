import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// A whole replica in one file, protected by the vault's passphrase (Protocol/storage.md §5).
///
/// The file is an age v1 file encrypted to the passphrase (scrypt recipient), holding a ustar archive of
/// `AMANAT-BACKUP` (the line `amanat-backup/1`), `keyring.amk` (the keyring file, itself encrypted under the
/// passphrase) and `vault.sqlite` (a consistent copy of the database, whose rows are encrypted as in the vault).
/// Restoring it gives the laptop a new device identity handed over by the old one's signature (`recover`), so a
/// restored backup never forks the old identity's log, which other members may have received beyond the backup.
///
/// ```swift
/// try VaultBackup.write(vault, passphrase: pass, to: out)
/// let restored = try VaultBackup.restore(from: out, passphrase: pass, at: newDir)
/// ```
public enum VaultBackup {
    /// The first file of the archive and its content.
    public static let markerPath = "AMANAT-BACKUP"
    static let marker = Array("amanat-backup/1\n".utf8)

    /// What a restore did.
    public struct Restored {
        /// The restored vault, open.
        public var vault: Vault
        /// The identity the backup was made by.
        public var previousDevice: DeviceID
        /// Whether the laptop took a new identity (false if the old one was revoked: it can read, not write).
        public var newIdentity: Bool
    }

    /// Writes a backup of `vault` to `url` (which must not exist), encrypted to `passphrase`.
    public static func write(_ vault: Vault, passphrase: SecureBytes, to url: URL) throws {
        let fm = FileManager.default
        // The snapshot goes into the vault's own private directory, never a shared temporary one.
        let snapshot = vault.directory.appendingPathComponent(".backup-\(Hex.encode(Sodium.randomBytes(8))).sqlite")
        defer { try? fm.removeItem(at: snapshot) }
        try vault.snapshotDatabase(to: snapshot)
        guard let database = fm.contents(atPath: snapshot.path) else {
            throw StoreError(.io, "The copy of the vault database cannot be read back.")
        }
        var archive = TarArchive()
        archive.add(markerPath, marker)
        archive.add("keyring.amk", try vault.keyringFileBytes())
        archive.add("vault.sqlite", Array(database))
        let encrypted: [UInt8]
        do {
            encrypted = try AgeEncryptor.encrypt(
                archive.encoded(), to: [try AgeScryptRecipient(passphrase: passphrase)])
        } catch let error as AgeError {
            throw StoreError(.io, "The backup cannot be encrypted: \(error.message)")
        }
        try AtomicFile.writeNew(encrypted, to: url)
    }

    /// Restores the backup at `url` into `dir` and gives the laptop a new identity of the same member.
    public static func restore(from url: URL, passphrase: SecureBytes, at dir: URL) throws -> Restored {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw StoreError(.noVault, "The backup \(url.path) cannot be read.")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try AgeDecryption.decrypt(
                Array(data), identities: [try AgeScryptIdentity(passphrase: passphrase)])
        } catch let error as AgeError {
            if error.code == .noMatch {
                throw StoreError(
                    .wrongPassphrase,
                    "Wrong passphrase for this backup (it is the vault's passphrase when the backup was made).")
            }
            throw StoreError(.damaged, "The backup \(url.path) is damaged or is not an Amanat backup: \(error.message)")
        }
        let archive: TarArchive
        do {
            archive = try TarArchive(decoding: plaintext)
        } catch {
            throw StoreError(.damaged, "The backup \(url.path) is damaged: its archive does not read.")
        }
        guard archive.file(markerPath) == marker, let keyring = archive.file("keyring.amk"),
            let database = archive.file("vault.sqlite"), archive.entries.count == 3
        else {
            throw StoreError(.damaged, "The backup \(url.path) is not an Amanat backup of format 1.")
        }
        if Vault.exists(at: dir)
            || FileManager.default.fileExists(atPath: dir.appendingPathComponent(Vault.databaseFileName).path)
        {
            throw StoreError(.vaultExists, "A vault already exists in \(dir.path); choose another directory.")
        }
        // Restored and handed over in a hidden folder beside the target, which is renamed into place only when the
        // new identity exists: an interrupted restore never leaves a working vault under the old identity (using
        // it would fork that identity's log), and running restore again starts afresh.
        let parent = dir.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.io, "Could not create the folder \(parent.path).")
        }
        let staging = parent.appendingPathComponent(
            ".\(dir.lastPathComponent).restoring-\(Hex.encode(Sodium.randomBytes(6)))")
        defer { try? FileManager.default.removeItem(at: staging) }
        let (previous, newIdentity) = try restoreAndHandOver(
            keyring: keyring, database: database, at: staging, passphrase: passphrase)
        guard rename(staging.path, dir.path) == 0 else {
            throw StoreError(
                .vaultExists, "\(dir.path) is not empty; restore into a new or empty directory.")
        }
        return Restored(
            vault: try Vault.open(at: dir, passphrase: passphrase), previousDevice: previous, newIdentity: newIdentity)
    }

    /// Restores into `dir` and gives the laptop its new identity; the vault is closed when this returns.
    static func restoreAndHandOver(
        keyring: [UInt8], database: [UInt8], at dir: URL, passphrase: SecureBytes
    ) throws -> (previous: DeviceID, newIdentity: Bool) {
        let vault = try Vault.restore(keyringFile: keyring, database: database, at: dir, passphrase: passphrase)
        let previous = vault.deviceID
        guard let member = vault.membership.members[previous], !member.isRevoked else { return (previous, false) }
        _ = try vault.recover(passphrase: passphrase)
        return (previous, true)
    }
}
