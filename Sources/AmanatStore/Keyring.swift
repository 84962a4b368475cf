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
    /// Version 2 adds the agreement key; version 1 (the first release) is still read.
    static let formatVersion: UInt8 = 2
    static let headerLength = 4 + 1 + 8 + 8 + 16 + 24 + 4

    /// The vault's id (16 bytes).
    public let vaultID: [UInt8]
    /// This device's signing key pair.
    public let device: SigningKeyPair
    /// The name this device was given at `init` or `join`.
    public let deviceName: String
    /// Vault keys this keyring was given (epoch 1, and any later epochs an invitation carried). Keys of later
    /// rotations are not stored here: they are opened from the membership log each time the vault opens.
    public let keys: [VaultKey]
    /// This device's X25519 key for sealed vault keys and bundles; nil only in a first-release keyring.
    public let agreement: AgreementKeyPair?
    /// The Argon2id costs the file was wrapped with (kept when the keyring is rewritten).
    var costs: (ops: UInt64, mem: UInt64)?

    /// Creates a keyring from its parts.
    public init(
        vaultID: [UInt8], device: SigningKeyPair, deviceName: String, keys: [VaultKey],
        agreement: AgreementKeyPair? = .generate()
    ) {
        precondition(!keys.isEmpty)
        self.vaultID = vaultID
        self.device = device
        self.deviceName = deviceName
        self.keys = keys.sorted { $0.epoch < $1.epoch }
        self.agreement = agreement
    }

    /// A new vault's keyring: a new device key, a vault id derived from it and `salt` (Protocol/membership.md §3),
    /// and a new vault key.
    public static func generate(deviceName: String, salt: [UInt8]) -> Keyring {
        let device = SigningKeyPair.generate()
        // A 32-byte public key always makes a device id.
        guard let founder = try? DeviceID(device.publicKey) else { fatalError("unreachable") }
        return Keyring(
            vaultID: MembershipProof.vaultID(founder: founder, salt: salt), device: device, deviceName: deviceName,
            keys: [.generate(epoch: 1)])
    }

    /// The greatest epoch this keyring holds (its local, on-disk rows are keyed from it).
    public var currentKey: VaultKey { keys[keys.count - 1] }

    /// The vault key of `epoch`, if this keyring has it.
    public func key(epoch: UInt32) -> VaultKey? { keys.first { $0.epoch == epoch } }

    /// The same keyring with an agreement key (the upgrade of a first-release keyring).
    func withAgreement(_ pair: AgreementKeyPair) -> Keyring {
        var copy = Keyring(vaultID: vaultID, device: device, deviceName: deviceName, keys: keys, agreement: pair)
        copy.costs = costs
        return copy
    }

    /// The same keyring for a new device identity (`amanat recover`).
    func withNewDevice(_ signer: SigningKeyPair, agreement: AgreementKeyPair) -> Keyring {
        var copy = Keyring(vaultID: vaultID, device: signer, deviceName: deviceName, keys: keys, agreement: agreement)
        copy.costs = costs
        return copy
    }

    /// Rewrites the file with the costs it was read with (after an upgrade or a new identity).
    func rewrite(to url: URL, passphrase: SecureBytes) throws {
        let costs = costs ?? (PasswordHash.Strength.moderate.opsLimit, PasswordHash.Strength.moderate.memLimit)
        try write(to: url, passphrase: passphrase, opsLimit: costs.ops, memLimit: costs.mem)
    }

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
        let file = try Self.seal(
            plain, version: agreement == nil ? 1 : Self.formatVersion, salt: salt, opsLimit: opsLimit,
            memLimit: memLimit, wrapKey: wrapKey)
        try AtomicFile.write(file, to: url)
    }

    /// The file bytes: header, `plain` sealed under `wrapKey` (derived from the passphrase, `salt` and the costs),
    /// then the BLAKE2b-256 checksum of everything before it.
    package static func seal(
        _ plain: [UInt8], version: UInt8, salt: [UInt8], opsLimit: UInt64, memLimit: UInt64, wrapKey: SecureBytes
    ) throws -> [UInt8] {
        let nonce = AEAD.randomNonce()
        var w = ByteWriter(capacity: 256)
        w.write(raw: magic)
        w.write(version)
        w.write(bigEndian: opsLimit)
        w.write(bigEndian: memLimit)
        w.write(raw: salt)
        w.write(raw: nonce)
        w.write(bigEndian: UInt32(plain.count + AEAD.tagLength))
        let header = w.bytes
        let ciphertext = try AEAD.seal(plain, additionalData: header, nonce: nonce, key: wrapKey)
        var file = header + ciphertext
        file += BLAKE2b.hash(file)
        return file
    }

    /// The secret plaintext: vault id, device seed, device name, every epoch's key, and (version 2) the agreement
    /// secret key.
    package func secretBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(raw: vaultID)
        w.write(raw: device.seed.copyBytes())
        w.write(string: deviceName)
        w.write(varint: UInt64(keys.count))
        for key in keys {
            w.write(bigEndian: key.epoch)
            w.write(raw: key.root.copyBytes())
        }
        if let agreement { w.write(raw: agreement.secretKey.copyBytes()) }
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
            guard try r.read(count: 4) == magic else { throw damaged }
            let version = try r.readByte()
            guard version == 1 || version == formatVersion else {
                throw StoreError(
                    .damaged, "The keyring was written by a newer version of Amanat (format \(version)); update Amanat."
                )
            }
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
            var keyring = try decodeSecrets(plain, version: version)
            keyring.costs = (ops, mem)
            return keyring
        } catch let error as StoreError {
            throw error
        } catch {
            throw damaged
        }
    }

    private static func decodeSecrets(_ plain: [UInt8], version: UInt8) throws -> Keyring {
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
        var agreement: AgreementKeyPair?
        if version >= 2 {
            var raw = try r.read(count: 32)
            agreement = try AgreementKeyPair(secretKey: SecureBytes(consuming: &raw))
        }
        guard r.isAtEnd, !keys.isEmpty else { throw CoreError(.malformed, "keyring") }
        return Keyring(vaultID: vaultID, device: device, deviceName: name, keys: keys, agreement: agreement)
    }
}
