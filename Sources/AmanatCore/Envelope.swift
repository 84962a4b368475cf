import AmanatCrypto

/// The fixed-layout plaintext header of an envelope (Protocol/envelope.md §2).
public struct EnvelopeHeader: Hashable, Sendable {
    /// The four magic bytes `AMNE`.
    public static let magic: [UInt8] = Array("AMNE".utf8)
    /// The format version this build writes and reads.
    public static let formatVersion: UInt8 = 1
    /// The header's length in bytes.
    public static let length = 125

    /// The vault the envelope belongs to (16 bytes).
    public var vaultID: [UInt8]
    /// The device that wrote and signed it.
    public var author: DeviceID
    /// Its position in the author's log, from 1.
    public var seq: UInt64
    /// The hash of the author's previous envelope, or 32 zero bytes for seq 1.
    public var previousHash: [UInt8]
    /// The epoch of the vault key its envelope key derives from.
    public var keyEpoch: UInt32
    /// The 24-byte XChaCha20-Poly1305 nonce.
    public var nonce: [UInt8]
    /// The length of the ciphertext that follows, tag included.
    public var ciphertextLength: UInt32

    /// Creates a header.
    public init(
        vaultID: [UInt8], author: DeviceID, seq: UInt64, previousHash: [UInt8], keyEpoch: UInt32, nonce: [UInt8],
        ciphertextLength: UInt32
    ) {
        self.vaultID = vaultID
        self.author = author
        self.seq = seq
        self.previousHash = previousHash
        self.keyEpoch = keyEpoch
        self.nonce = nonce
        self.ciphertextLength = ciphertextLength
    }

    /// The 125 header bytes.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.length)
        w.write(raw: Self.magic)
        w.write(Self.formatVersion)
        w.write(raw: vaultID)
        w.write(raw: author.bytes)
        w.write(bigEndian: seq)
        w.write(raw: previousHash)
        w.write(bigEndian: keyEpoch)
        w.write(raw: nonce)
        w.write(bigEndian: ciphertextLength)
        return w.bytes
    }

    /// Decodes the header at the reader's position.
    public init(from r: inout ByteReader) throws {
        guard try r.read(count: 4) == Self.magic else {
            throw CoreError(.malformed, "This is not an Amanat envelope.")
        }
        let version = try r.readByte()
        guard version == Self.formatVersion else {
            throw CoreError(
                .unsupportedVersion, "This envelope was written by a newer version of Amanat (format \(version)).")
        }
        vaultID = try r.read(count: 16)
        author = try DeviceID(r.read(count: 32))
        seq = try r.read(bigEndian: UInt64.self)
        previousHash = try r.read(count: 32)
        keyEpoch = try r.read(bigEndian: UInt32.self)
        nonce = try r.read(count: 24)
        ciphertextLength = try r.read(bigEndian: UInt32.self)
        guard seq >= 1 else { throw CoreError(.malformed, "An envelope has sequence number 0.") }
        // Stored as SQLite's signed 64-bit integer: a larger seq is never a real one (Protocol/envelope.md §2).
        guard seq <= UInt64(Int64.max) else {
            throw CoreError(.malformed, "An envelope's sequence number is too large.")
        }
    }
}

/// The unit that is stored, synced and verified: header, ciphertext of one change, and the author's signature.
///
/// The signature covers `header ‖ BLAKE2b-256(ciphertext)`; the envelope hash covers
/// `header ‖ BLAKE2b-256(ciphertext) ‖ signature`, so a ciphertext could later be purged while the chain still
/// verifies (Protocol/envelope.md §3–4).
public struct Envelope: Hashable, Sendable {
    /// The plaintext header.
    public let header: EnvelopeHeader
    /// XChaCha20-Poly1305 ciphertext of the padded change, tag included.
    public let ciphertext: [UInt8]
    /// The author's Ed25519 signature.
    public let signature: [UInt8]
    /// BLAKE2b-256 of the ciphertext.
    public let ciphertextHash: [UInt8]
    /// The envelope hash that the author's next envelope names as `previousHash`.
    public let hash: [UInt8]
    /// The encoded header bytes.
    public let headerBytes: [UInt8]
    /// Whether the ciphertext was destroyed by a coordinator's purge: header, ciphertext hash and signature remain,
    /// so the signature, the hash and the chain still verify; ``ciphertext`` is empty (Protocol/envelope.md §7).
    public let isPurged: Bool

    /// The four bytes after the header that mark a purged envelope's wire form (Protocol/envelope.md §7).
    public static let purgedMarker: [UInt8] = Array("AMNP".utf8)
    /// The length of a purged envelope's wire form: header, marker, ciphertext hash, signature.
    public static let purgedLength = EnvelopeHeader.length + 4 + 32 + 64

    /// Assembles an envelope and computes its hashes.
    /// The largest envelope, header and signature included, that is created, accepted from a sync file or a relay,
    /// or pulled: 8 MiB, the relay's request limit (Protocol/envelope.md §1). Longer content is split.
    public static let maximumLength = 8 * 1024 * 1024
    /// The bytes of an envelope around its ciphertext: the header and the signature.
    public static let overhead = EnvelopeHeader.length + 64

    public init(header: EnvelopeHeader, ciphertext: [UInt8], signature: [UInt8]) {
        self.header = header
        self.ciphertext = ciphertext
        self.signature = signature
        headerBytes = header.encoded()
        ciphertextHash = BLAKE2b.hash(ciphertext)
        hash = BLAKE2b.hash(headerBytes + ciphertextHash + signature)
        isPurged = false
    }

    /// A purged envelope: the header, the hash of the destroyed ciphertext and the signature.
    public init(header: EnvelopeHeader, purgedCiphertextHash: [UInt8], signature: [UInt8]) {
        self.header = header
        ciphertext = []
        self.signature = signature
        headerBytes = header.encoded()
        ciphertextHash = purgedCiphertextHash
        hash = BLAKE2b.hash(headerBytes + ciphertextHash + signature)
        isPurged = true
    }

    /// This envelope with its ciphertext destroyed: the same signature, hash and place in the chain.
    public func purged() -> Envelope {
        isPurged ? self : Envelope(header: header, purgedCiphertextHash: ciphertextHash, signature: signature)
    }

    /// The bytes the signature covers.
    public var signedMessage: [UInt8] { headerBytes + ciphertextHash }

    /// The length of ``encoded()``, without encoding.
    public var encodedLength: Int { isPurged ? Self.purgedLength : Self.overhead + ciphertext.count }

    /// Whether the author's signature is valid.
    public func hasValidSignature() -> Bool {
        SigningKeyPair.verify(signature, of: signedMessage, publicKey: header.author.bytes)
    }

    /// The wire form: header ‖ ciphertext ‖ signature; purged: header ‖ `AMNP` ‖ ciphertext hash ‖ signature.
    public func encoded() -> [UInt8] {
        guard !isPurged else { return headerBytes + Self.purgedMarker + ciphertextHash + signature }
        var out = headerBytes
        out.reserveCapacity(headerBytes.count + ciphertext.count + signature.count)
        out.append(contentsOf: ciphertext)
        out.append(contentsOf: signature)
        return out
    }

    /// Decodes the wire form, full or purged; the byte count must match exactly.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        let header = try EnvelopeHeader(from: &r)
        // A full envelope's ciphertext is at least 80 bytes (a padded change and the tag), so a 225-byte body
        // with the marker after the header is never one (Protocol/envelope.md §7).
        if bytes.count == Self.purgedLength, header.ciphertextLength >= 80,
            Array(bytes[EnvelopeHeader.length..<EnvelopeHeader.length + 4]) == Self.purgedMarker
        {
            // Membership entries are never purged (Protocol/envelope.md §7): every store must read them, so a
            // stripped one (a courier's doing) is refused like any damaged envelope, never stored without effect.
            guard header.keyEpoch != VaultKey.authorityEpoch else {
                throw CoreError(.malformed, "A membership entry arrived without its content; it is never purged.")
            }
            _ = try r.read(count: 4)
            let hash = try r.read(count: 32)
            self.init(header: header, purgedCiphertextHash: hash, signature: try r.read(count: 64))
            return
        }
        guard bytes.count == EnvelopeHeader.length + Int(header.ciphertextLength) + 64 else {
            throw CoreError(.malformed, "An envelope's length does not match its header.")
        }
        let ciphertext = try r.read(count: Int(header.ciphertextLength))
        let signature = try r.read(count: 64)
        self.init(header: header, ciphertext: ciphertext, signature: signature)
    }
}
