import AmanatCrypto

/// The vault key of one epoch, and the keys derived from it (Protocol/envelope.md §5).
public struct VaultKey: Sendable {
    /// The epoch this key belongs to.
    public let epoch: UInt32
    /// The 32-byte vault key.
    public let root: SecureBytes
    /// The key from which every envelope key is derived.
    private let contentKey: SecureBytes

    /// Wraps a 32-byte vault key of `epoch`.
    public init(epoch: UInt32, root: SecureBytes) {
        precondition(root.count == 32)
        self.epoch = epoch
        self.root = root
        contentKey = KeyDerivation.deriveSubkey(from: root, id: 1, context: "amnt-env")
    }

    /// A new random key.
    public static func generate(epoch: UInt32 = 1) -> VaultKey {
        VaultKey(epoch: epoch, root: .random(count: 32))
    }

    /// The key of the envelope at (`author`, `seq`): keyed BLAKE2b-256, so disclosing it reveals no other key.
    public func envelopeKey(author: DeviceID, seq: UInt64) -> SecureBytes {
        BLAKE2b.deriveKey(from: contentKey, message: Self.envelopeKeyMessage(author: author, seq: seq))
    }

    /// Lends the envelope key to `body` in wiped stack memory (the fast path for sealing and opening).
    public func withEnvelopeKey<R>(author: DeviceID, seq: UInt64, _ body: (UnsafePointer<UInt8>) throws -> R) rethrows
        -> R
    {
        try BLAKE2b.withDerivedKey(from: contentKey, message: Self.envelopeKeyMessage(author: author, seq: seq), body)
    }

    static func envelopeKeyMessage(author: DeviceID, seq: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.write(raw: Array("amanat/envelope-key/v1".utf8))
        w.write(raw: author.bytes)
        w.write(bigEndian: seq)
        return w.bytes
    }

    /// A subkey for a local purpose, such as the projection table (`context` is exactly 8 characters).
    public func subkey(id: UInt64, context: String) -> SecureBytes {
        KeyDerivation.deriveSubkey(from: root, id: id, context: context)
    }
}

extension Envelope {
    /// Encrypts `change` as the author's envelope number `seq` and signs it.
    public static func seal(
        _ change: Change, vaultID: [UInt8], key: VaultKey, signer: SigningKeyPair, seq: UInt64, previousHash: [UInt8]
    ) throws -> Envelope {
        guard key.epoch != VaultKey.authorityEpoch else {
            throw CoreError(.malformed, "A record change cannot be sealed with the authority key.")
        }
        return try sealPlaintext(
            change.encoded(), vaultID: vaultID, key: key, signer: signer, seq: seq, previousHash: previousHash)
    }

    /// Encrypts an encoded plaintext as the author's envelope number `seq` and signs it.
    package static func sealPlaintext(
        _ plaintext: [UInt8], vaultID: [UInt8], key: VaultKey, signer: SigningKeyPair, seq: UInt64,
        previousHash: [UInt8]
    ) throws -> Envelope {
        guard vaultID.count == 16, previousHash.count == 32, seq >= 1 else {
            throw CoreError(
                .malformed, "An envelope needs a 16-byte vault id, a 32-byte previous hash and a seq from 1.")
        }
        guard plaintext.count + AEAD.tagLength + Envelope.overhead <= Envelope.maximumLength else {
            throw CoreError(
                .tooLarge,
                "This change is too large to sync (\(plaintext.count / 1024) KiB; an envelope holds at most \(Envelope.maximumLength >> 20) MiB): shorten the text or split it over several records."
            )
        }
        let author = try DeviceID(signer.publicKey)
        let nonce = AEAD.randomNonce()
        let header = EnvelopeHeader(
            vaultID: vaultID, author: author, seq: seq, previousHash: previousHash, keyEpoch: key.epoch, nonce: nonce,
            ciphertextLength: UInt32(plaintext.count + AEAD.tagLength))
        let headerBytes = header.encoded()
        let ciphertext = try key.withEnvelopeKey(author: author, seq: seq) {
            try AEAD.seal(plaintext, additionalData: headerBytes, nonce: nonce, keyBytes: $0)
        }
        let signature = signer.sign(headerBytes + BLAKE2b.hash(ciphertext))
        return Envelope(header: header, ciphertext: ciphertext, signature: signature)
    }

    /// Decrypts the change with the vault key of the envelope's epoch.
    public func open(with key: VaultKey) throws -> Change {
        guard key.epoch == header.keyEpoch else {
            throw CoreError(.unknownKeyEpoch, "An envelope uses key epoch \(header.keyEpoch), which this vault lacks.")
        }
        return try key.withEnvelopeKey(author: header.author, seq: header.seq) {
            try Change(decoding: openPlaintext(withKeyBytes: $0))
        }
    }

    /// Decrypts the change with its own envelope key (as disclosed in an evidence bundle).
    public func open(withEnvelopeKey envelopeKey: SecureBytes) throws -> Change {
        guard envelopeKey.count == AEAD.keyLength else {
            throw CoreError(.tampered, "An envelope key must be 32 bytes.")
        }
        return try envelopeKey.withUnsafePointer { try Change(decoding: openPlaintext(withKeyBytes: $0)) }
    }

    func openPlaintext(withKeyBytes key: UnsafePointer<UInt8>) throws -> [UInt8] {
        guard !isPurged else {
            throw CoreError(
                .purged,
                "Change \(header.seq) of device \(header.author.hex.prefix(12)) was purged by a coordinator: its content is gone."
            )
        }
        let plaintext: [UInt8]
        do {
            plaintext = try AEAD.open(ciphertext, additionalData: headerBytes, nonce: header.nonce, keyBytes: key)
        } catch {
            throw CoreError(
                .tampered,
                "Envelope \(header.seq) of device \(header.author.hex.prefix(12)) does not decrypt: it was altered or the key is wrong."
            )
        }
        return plaintext
    }

    /// Decrypts and pairs the change with its author and seq.
    public func openAuthored(with key: VaultKey) throws -> AuthoredChange {
        AuthoredChange(author: header.author, seq: header.seq, change: try open(with: key))
    }
}
