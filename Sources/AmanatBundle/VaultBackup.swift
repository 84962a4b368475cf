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
        let vault = try Vault.restore(keyringFile: keyring, database: database, at: dir, passphrase: passphrase)
        let previous = vault.deviceID
        guard let member = vault.membership.members[previous], !member.isRevoked else {
            return Restored(vault: vault, previousDevice: previous, newIdentity: false)
        }
        _ = try vault.recover(passphrase: passphrase)
        return Restored(vault: vault, previousDevice: previous, newIdentity: true)
    }
}
