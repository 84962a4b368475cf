import AmanatCore
import AmanatCrypto
import Foundation

/// The vault's secrets, wrapped by a key derived from the passphrase with Argon2id (Protocol/keyring.md).
///
/// ```swift
/// let keyring = Keyring.generate(deviceName: "field laptop")
/// try keyring.write(to: url, passphrase: pass, strength: .moderate)
/// let back = try Keyring.read(from: url, passphrase: pass)
/// ```
public struct Keyring: Sendable {
    /// The four magic bytes `AMNK`.
    static let magic: [UInt8] = Array("AMNK".utf8)
    static let formatVersion: UInt8 = 1
    static let headerLength = 4 + 1 + 8 + 8 + 16 + 24 + 4

    /// The vault's id (16 bytes).
    public let vaultID: [UInt8]
    /// This device's signing key pair.
    public let device: SigningKeyPair
    /// The name this device was given at `init` or `join`.
    public let deviceName: String
    /// Vault keys by epoch; the greatest epoch is the current one.
    public let keys: [VaultKey]

    /// Creates a keyring from its parts.
    public init(vaultID: [UInt8], device: SigningKeyPair, deviceName: String, keys: [VaultKey]) {
        precondition(!keys.isEmpty)
        self.vaultID = vaultID
        self.device = device
        self.deviceName = deviceName
        self.keys = keys.sorted { $0.epoch < $1.epoch }
    }

    /// A new vault's keyring: random vault id, vault key and device key.
    public static func generate(deviceName: String) -> Keyring {
        Keyring(
            vaultID: Sodium.randomBytes(16), device: .generate(), deviceName: deviceName, keys: [.generate(epoch: 1)])
    }

    /// The current vault key.
    public var currentKey: VaultKey { keys[keys.count - 1] }

    /// The vault key of `epoch`, if this keyring has it.
    public func key(epoch: UInt32) -> VaultKey? { keys.first { $0.epoch == epoch } }

    /// Wraps the secrets under the passphrase and writes them atomically (new file, fsync, rename).
    public func write(to url: URL, passphrase: SecureBytes, strength: PasswordHash.Strength) throws {
        try write(to: url, passphrase: passphrase, opsLimit: strength.opsLimit, memLimit: strength.memLimit)
    }

    func write(to url: URL, passphrase: SecureBytes, opsLimit: UInt64, memLimit: UInt64) throws {
        let salt = Sodium.randomBytes(PasswordHash.saltLength)
        let wrapKey: SecureBytes
        do {
            wrapKey = try PasswordHash.deriveKey(
                passphrase: passphrase, salt: salt, opsLimit: opsLimit, memLimit: memLimit)
        } catch {
            throw StoreError(.io, "Not enough memory to protect the keyring; try `init --kdf interactive`.")
        }
        var plain = secretBytes()
        defer { Sodium.wipe(&plain) }
        let nonce = AEAD.randomNonce()
        var w = ByteWriter(capacity: 256)
        w.write(raw: Self.magic)
        w.write(Self.formatVersion)
        w.write(bigEndian: opsLimit)
        w.write(bigEndian: memLimit)
        w.write(raw: salt)
        w.write(raw: nonce)
        w.write(bigEndian: UInt32(plain.count + AEAD.tagLength))
        let header = w.bytes
        let ciphertext = try AEAD.seal(plain, additionalData: header, nonce: nonce, key: wrapKey)
        var file = header + ciphertext
        file += BLAKE2b.hash(file)
        try AtomicFile.write(file, to: url)
    }

    /// The secret plaintext: vault id, device seed, device name, and every epoch's key.
    private func secretBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(raw: vaultID)
        w.write(raw: device.seed.copyBytes())
        w.write(string: deviceName)
        w.write(varint: UInt64(keys.count))
        for key in keys {
            w.write(bigEndian: key.epoch)
            w.write(raw: key.root.copyBytes())
        }
        return w.bytes
    }

    /// Reads and unwraps a keyring; a damaged file and a wrong passphrase are told apart by the file checksum.
    public static func read(from url: URL, passphrase: SecureBytes) throws -> Keyring {
        let file: [UInt8]
        do {
            file = Array(try Data(contentsOf: url))
        } catch {
            throw StoreError(
                .noVault, "There is no vault here (no keyring file at \(url.path)); run `amanat init` first.")
        }
        let damaged = StoreError(
            .damaged, "The vault is damaged: its keyring file is corrupt. Restore it from a backup.")
        guard file.count > headerLength + AEAD.tagLength + 32 else { throw damaged }
        let body = Array(file[..<(file.count - 32)])
        guard Sodium.constantTimeEquals(BLAKE2b.hash(body), Array(file[(file.count - 32)...])) else { throw damaged }
        var r = ByteReader(body)
        do {
            guard try r.read(count: 4) == magic, try r.readByte() == formatVersion else { throw damaged }
            let ops = try r.read(bigEndian: UInt64.self)
            let mem = try r.read(bigEndian: UInt64.self)
            let salt = try r.read(count: 16)
            let nonce = try r.read(count: 24)
            let length = try r.read(bigEndian: UInt32.self)
            guard Int(length) == body.count - headerLength else { throw damaged }
            let header = Array(body[..<headerLength])
            let ciphertext = Array(body[headerLength...])
            let wrapKey: SecureBytes
            do {
                wrapKey = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, opsLimit: ops, memLimit: mem)
            } catch let error as CryptoError where error.code == .invalidInput {
                throw damaged
            } catch {
                throw StoreError(.io, "Not enough memory to unlock the keyring.")
            }
            var plain: [UInt8]
            do {
                plain = try AEAD.open(ciphertext, additionalData: header, nonce: nonce, key: wrapKey)
            } catch {
                throw StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")
            }
            defer { Sodium.wipe(&plain) }
            return try decodeSecrets(plain)
        } catch let error as StoreError {
            throw error
        } catch {
            throw damaged
        }
    }

    private static func decodeSecrets(_ plain: [UInt8]) throws -> Keyring {
        var r = ByteReader(plain)
        let vaultID = try r.read(count: 16)
        var seed = try r.read(count: 32)
        let device = try SigningKeyPair(seed: SecureBytes(consuming: &seed))
        let name = try r.readString()
        var keys: [VaultKey] = []
        for _ in 0..<(try r.readCount(minimumElementSize: 36)) {
            let epoch = try r.read(bigEndian: UInt32.self)
            var raw = try r.read(count: 32)
            keys.append(VaultKey(epoch: epoch, root: SecureBytes(consuming: &raw)))
        }
        guard r.isAtEnd, !keys.isEmpty else { throw CoreError(.malformed, "keyring") }
        return Keyring(vaultID: vaultID, device: device, deviceName: name, keys: keys)
    }
}
