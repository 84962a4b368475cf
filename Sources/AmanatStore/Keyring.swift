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
    /// Version 3 splits the passphrase key into a subkey for the secrets and one for the duress slot, which every
    /// version 3 file carries; version 2 (agreement key) and version 1 (the first release) are still read.
    static let formatVersion: UInt8 = 3
    static let headerLength = 4 + 1 + 8 + 8 + 16 + 24 + 4
    /// The duress payload's fixed plaintext size (mode, decoy path, zero padding).
    package static let duressPayloadLength = 1024
    /// The duress slot: nonce ‖ sealed payload; random bytes when no duress passphrase is set.
    package static let duressSlotLength = AEAD.nonceLength + duressPayloadLength + AEAD.tagLength
    /// The subkey context of version 3: subkey 1 opens the secrets, subkey 2 the duress slot.
    static let subkeyContext = "amnt-kr3"

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
    /// How the file was wrapped: salt, Argon2id costs and the key derived from the passphrase, kept so that the
    /// keyring can be rewritten (upgraded, a duress passphrase set) without deriving it again.
    var wrapping: Wrapping?
    /// The duress passphrase's slot key and payload, when one is set (kept inside the secrets so that every rewrite
    /// can seal the slot again under a new nonce).
    var duress: DuressSecret?

    /// Salt, costs and the passphrase-derived key of a keyring file.
    struct Wrapping: @unchecked Sendable {
        /// The format version the file had when it was read (or written).
        var version: UInt8
        var salt: [UInt8]
        var ops: UInt64
        var mem: UInt64
        var master: SecureBytes
    }

    /// What opening the duress slot gives, and what the secrets keep of it.
    package struct DuressSecret: @unchecked Sendable {
        /// Subkey 2 of the key derived from the duress passphrase.
        package var key: SecureBytes
        /// The slot's plaintext (``duressPayloadLength`` bytes).
        package var payload: SecureBytes
    }

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
        copy.wrapping = wrapping
        copy.duress = duress
        return copy
    }

    /// The same keyring for a new device identity (`amanat recover`).
    func withNewDevice(_ signer: SigningKeyPair, agreement: AgreementKeyPair) -> Keyring {
        var copy = Keyring(vaultID: vaultID, device: signer, deviceName: deviceName, keys: keys, agreement: agreement)
        copy.wrapping = wrapping
        copy.duress = duress
        return copy
    }

    /// Rewrites the file under the same passphrase (after an upgrade, a new identity or a duress change): with the
    /// salt, costs and derived key it was read with, so no second Argon2id derivation is needed. A keyring that was
    /// never written (none of these known) is wrapped anew under `passphrase`.
    mutating func rewrite(to url: URL, passphrase: SecureBytes) throws {
        guard let wrapping else {
            try write(to: url, passphrase: passphrase, strength: .moderate)
            return
        }
        try write(to: url, wrapping: wrapping)
    }

    /// Wraps the secrets under a new passphrase with a new salt and the same costs. A duress passphrase is bound
    /// to the salt, so it is cleared; returns whether one was set (the caller tells the user to set it again).
    mutating func changePassphrase(to url: URL, passphrase: SecureBytes) throws -> Bool {
        let costs =
            wrapping.map { ($0.ops, $0.mem) }
            ?? (PasswordHash.Strength.moderate.opsLimit, PasswordHash.Strength.moderate.memLimit)
        let hadDuress = duress != nil
        var copy = self
        copy.duress = nil
        try copy.write(to: url, passphrase: passphrase, opsLimit: costs.0, memLimit: costs.1)
        self = copy
        return hadDuress
    }

    /// Wraps the secrets under the passphrase with a new salt and writes them atomically (new file, fsync, rename).
    public mutating func write(to url: URL, passphrase: SecureBytes, strength: PasswordHash.Strength) throws {
        try write(to: url, passphrase: passphrase, opsLimit: strength.opsLimit, memLimit: strength.memLimit)
    }

    mutating func write(to url: URL, passphrase: SecureBytes, opsLimit: UInt64, memLimit: UInt64) throws {
        let salt = Sodium.randomBytes(PasswordHash.saltLength)
        let master = try Self.derive(passphrase, salt: salt, opsLimit: opsLimit, memLimit: memLimit)
        let wrapping = Wrapping(
            version: agreement == nil ? 1 : Self.formatVersion, salt: salt, ops: opsLimit, mem: memLimit, master: master
        )
        try write(to: url, wrapping: wrapping)
        self.wrapping = wrapping
    }

    /// The Argon2id key of `passphrase` (errors say what to do).
    static func derive(_ passphrase: SecureBytes, salt: [UInt8], opsLimit: UInt64, memLimit: UInt64) throws
        -> SecureBytes
    {
        do {
            return try PasswordHash.deriveKey(
                passphrase: passphrase, salt: salt, opsLimit: opsLimit, memLimit: memLimit)
        } catch {
            throw StoreError(.io, "Not enough memory to protect the keyring; try `init --kdf interactive`.")
        }
    }

    /// Writes the file as version 3 (version 1 for a first-release keyring that has no agreement key yet).
    mutating func write(to url: URL, wrapping: Wrapping) throws {
        var plain = secretBytes()
        defer { Sodium.wipe(&plain) }
        let file = try Self.seal(
            plain, version: agreement == nil ? 1 : Self.formatVersion, salt: wrapping.salt, opsLimit: wrapping.ops,
            memLimit: wrapping.mem, wrapKey: wrapping.master, duress: duress)
        try AtomicFile.write(file, to: url)
        self.wrapping = wrapping
        self.wrapping?.version = agreement == nil ? 1 : Self.formatVersion
    }

    /// The file bytes: header, `plain` sealed under the key derived from the passphrase (`wrapKey`; in version 3 its
    /// subkey 1), the duress slot (version 3: sealed under `duress.key`, else random bytes of the same length),
    /// then the BLAKE2b-256 checksum of everything before it.
    package static func seal(
        _ plain: [UInt8], version: UInt8, salt: [UInt8], opsLimit: UInt64, memLimit: UInt64, wrapKey: SecureBytes,
        duress: DuressSecret? = nil
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
        let key = version >= 3 ? KeyDerivation.deriveSubkey(from: wrapKey, id: 1, context: subkeyContext) : wrapKey
        let ciphertext = try AEAD.seal(plain, additionalData: header, nonce: nonce, key: key)
        var file = header + ciphertext
        if version >= 3 {
            if let duress {
                let slotNonce = AEAD.randomNonce()
                var payload = duress.payload.copyBytes()
                defer { Sodium.wipe(&payload) }
                file += slotNonce + (try AEAD.seal(payload, additionalData: header, nonce: slotNonce, key: duress.key))
            } else {
                file += Sodium.randomBytes(duressSlotLength)
            }
        }
        file += BLAKE2b.hash(file)
        return file
    }

    /// The secret plaintext: vault id, device seed, device name, every epoch's key, (version 2 and later) the
    /// agreement secret key, and (version 3) the duress record: a flag, the duress slot key and its payload (zeros
    /// when no duress passphrase is set, so the length does not tell).
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
        if let agreement {
            w.write(raw: agreement.secretKey.copyBytes())
            if let duress {
                w.write(UInt8(1))
                w.write(raw: duress.key.copyBytes())
                w.write(raw: duress.payload.copyBytes())
            } else {
                w.write(UInt8(0))
                w.write(raw: [UInt8](repeating: 0, count: 32 + Self.duressPayloadLength))
            }
        }
        return w.bytes
    }

    /// What a passphrase opened: the keyring, or the duress slot (with its payload decoded).
    enum Unlocked {
        case keyring(Keyring)
        case duress(DuressSetting)
    }

    /// The one message of a passphrase that opens nothing (a duress passphrase in its default mode prints it too).
    static let wrongPassphrase = StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")

    /// A keyring file checked and parsed, not yet unlocked: what can be known without the passphrase.
    struct Sealed {
        var version: UInt8
        var ops: UInt64
        var mem: UInt64
        var salt: [UInt8]
        var nonce: [UInt8]
        var header: [UInt8]
        var ciphertext: [UInt8]
        var slot: [UInt8]
        /// The whole file's length.
        var fileLength: Int
    }

    static var damaged: StoreError {
        StoreError(.damaged, "The vault is damaged: its keyring file is corrupt. Restore it from a backup.")
    }

    /// Reads and checks the file (checksum, magic, version, lengths); no key is derived.
    static func load(from url: URL) throws -> Sealed {
        let file: [UInt8]
        do {
            file = Array(try Data(contentsOf: url))
        } catch {
            throw StoreError(
                .noVault, "There is no vault here (no keyring file at \(url.path)); run `amanat init` first.")
        }
        guard file.count > headerLength + AEAD.tagLength + 32 else { throw damaged }
        let body = Array(file[..<(file.count - 32)])
        guard Sodium.constantTimeEquals(BLAKE2b.hash(body), Array(file[(file.count - 32)...])) else { throw damaged }
        var r = ByteReader(body)
        do {
            guard try r.read(count: 4) == magic else { throw damaged }
            let version = try r.readByte()
            guard (1...formatVersion).contains(version) else {
                throw StoreError(
                    .damaged, "The keyring was written by a newer version of Amanat (format \(version)); update Amanat."
                )
            }
            let ops = try r.read(bigEndian: UInt64.self)
            let mem = try r.read(bigEndian: UInt64.self)
            let salt = try r.read(count: 16)
            let nonce = try r.read(count: 24)
            let length = try r.read(bigEndian: UInt32.self)
            let slotLength = version >= 3 ? duressSlotLength : 0
            guard Int(length) >= AEAD.tagLength, Int(length) == body.count - headerLength - slotLength else {
                throw damaged
            }
            let ciphertextEnd = headerLength + Int(length)
            return Sealed(
                version: version, ops: ops, mem: mem, salt: salt, nonce: nonce, header: Array(body[..<headerLength]),
                ciphertext: Array(body[headerLength..<ciphertextEnd]), slot: Array(body[ciphertextEnd...]),
                fileLength: file.count)
        } catch let error as StoreError {
            throw error
        } catch {
            throw damaged
        }
    }

    /// One Argon2id derivation, then the secrets' AEAD; if that fails, the duress slot's (version 3). Throws
    /// ``wrongPassphrase`` when neither opens.
    static func unlock(_ sealed: Sealed, passphrase: SecureBytes) throws -> Unlocked {
        let master: SecureBytes
        do {
            master = try PasswordHash.deriveKey(
                passphrase: passphrase, salt: sealed.salt, opsLimit: sealed.ops, memLimit: sealed.mem)
        } catch let error as CryptoError where error.code == .invalidInput {
            throw damaged
        } catch {
            throw StoreError(.io, "Not enough memory to unlock the keyring.")
        }
        let key =
            sealed.version >= 3 ? KeyDerivation.deriveSubkey(from: master, id: 1, context: subkeyContext) : master
        guard
            var plain = try? AEAD.open(sealed.ciphertext, additionalData: sealed.header, nonce: sealed.nonce, key: key)
        else {
            guard sealed.version >= 3 else { throw wrongPassphrase }
            let duressKey = KeyDerivation.deriveSubkey(from: master, id: 2, context: subkeyContext)
            let slotNonce = Array(sealed.slot.prefix(AEAD.nonceLength))
            let slotCiphertext = Array(sealed.slot.dropFirst(AEAD.nonceLength))
            guard
                var payload = try? AEAD.open(
                    slotCiphertext, additionalData: sealed.header, nonce: slotNonce, key: duressKey)
            else { throw wrongPassphrase }
            defer { Sodium.wipe(&payload) }
            return .duress(DuressSetting(payload: payload) ?? DuressSetting(mode: .wrongPassphrase, decoy: nil))
        }
        defer { Sodium.wipe(&plain) }
        do {
            var keyring = try decodeSecrets(plain, version: sealed.version)
            keyring.wrapping = Wrapping(
                version: sealed.version, salt: sealed.salt, ops: sealed.ops, mem: sealed.mem, master: master)
            return .keyring(keyring)
        } catch {
            throw damaged
        }
    }

    /// Reads and unwraps a keyring; a damaged file and a wrong passphrase are told apart by the file checksum. The
    /// duress passphrase opens nothing here (it reads as a wrong passphrase): only ``Vault/open(at:passphrase:)``
    /// acts on it.
    public static func read(from url: URL, passphrase: SecureBytes) throws -> Keyring {
        switch try unlock(try load(from: url), passphrase: passphrase) {
        case .keyring(let keyring): return keyring
        case .duress: throw wrongPassphrase
        }
    }

    /// A keyring-shaped file that no passphrase opens (left in place of a keyring destroyed by a duress passphrase
    /// or the unlock limit, so that later attempts read as wrong passphrases): a version 3 header with `sealed`'s
    /// costs, a new salt and nonce, random bytes for the ciphertext and slot, and a valid checksum.
    static func tombstone(like sealed: Sealed?) -> [UInt8] {
        let ops = sealed?.ops ?? PasswordHash.Strength.moderate.opsLimit
        let mem = sealed?.mem ?? PasswordHash.Strength.moderate.memLimit
        let length = max(sealed?.ciphertext.count ?? 1248, 160)
        var w = ByteWriter(capacity: 256)
        w.write(raw: magic)
        w.write(formatVersion)
        w.write(bigEndian: ops)
        w.write(bigEndian: mem)
        w.write(raw: Sodium.randomBytes(PasswordHash.saltLength))
        w.write(raw: AEAD.randomNonce())
        w.write(bigEndian: UInt32(length))
        var file = w.bytes + Sodium.randomBytes(length + duressSlotLength)
        file += BLAKE2b.hash(file)
        return file
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
        var duress: DuressSecret?
        if version >= 2 {
            var raw = try r.read(count: 32)
            agreement = try AgreementKeyPair(secretKey: SecureBytes(consuming: &raw))
        }
        if version >= 3 {
            let flag = try r.readByte()
            var key = try r.read(count: 32)
            var payload = try r.read(count: duressPayloadLength)
            guard flag <= 1 else { throw CoreError(.malformed, "keyring duress flag") }
            if flag == 1 {
                duress = DuressSecret(key: SecureBytes(consuming: &key), payload: SecureBytes(consuming: &payload))
            } else {
                Sodium.wipe(&key)
                Sodium.wipe(&payload)
            }
        }
        guard r.isAtEnd, !keys.isEmpty else { throw CoreError(.malformed, "keyring") }
        var keyring = Keyring(vaultID: vaultID, device: device, deviceName: name, keys: keys, agreement: agreement)
        keyring.duress = duress
        return keyring
    }
}

/// What a duress passphrase does once it has destroyed this device's keys.
public struct DuressSetting: Sendable, Equatable {
    /// Behave as a wrong passphrase, or open a decoy vault.
    public enum Mode: UInt8, Sendable {
        case wrongPassphrase = 1
        case decoy = 2
    }

    /// The mode.
    public var mode: Mode
    /// The decoy vault's folder (absolute), in `decoy` mode.
    public var decoy: String?

    /// The longest decoy path the slot holds, in UTF-8 bytes.
    public static let maximumPathBytes = Keyring.duressPayloadLength - 3

    /// A setting; the path is checked by ``payload()``.
    public init(mode: Mode, decoy: String?) {
        self.mode = mode
        self.decoy = decoy
    }

    /// Decodes `u8 mode ‖ u16 BE n ‖ n bytes path ‖ zero padding`; nil when malformed.
    init?(payload: [UInt8]) {
        guard payload.count == Keyring.duressPayloadLength, let mode = Mode(rawValue: payload[0]) else { return nil }
        let n = Int(payload[1]) << 8 | Int(payload[2])
        guard n <= Self.maximumPathBytes else { return nil }
        self.mode = mode
        decoy = n == 0 ? nil : String(decoding: payload[3..<(3 + n)], as: UTF8.self)
    }

    /// The fixed-size slot plaintext.
    func payload() throws -> [UInt8] {
        let path = Array((decoy ?? "").utf8)
        guard path.count <= Self.maximumPathBytes else {
            throw StoreError(
                .invalid, "The decoy folder's path is longer than \(Self.maximumPathBytes) bytes; choose a shorter one."
            )
        }
        var bytes = [mode.rawValue, UInt8(path.count >> 8), UInt8(path.count & 0xFF)] + path
        bytes += [UInt8](repeating: 0, count: Keyring.duressPayloadLength - bytes.count)
        return bytes
    }
}
