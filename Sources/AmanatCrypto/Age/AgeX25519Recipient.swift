import CSodium

/// An age X25519 recipient (`age1…`): the public half of an ``AgeX25519Identity``.
public struct AgeX25519Recipient: AgeRecipient, Sendable, Hashable {
    /// The Bech32 human-readable part of recipient strings.
    static let hrp = "age"

    /// The 32-byte X25519 public key.
    public let publicKey: [UInt8]

    /// Parses an `age1…` recipient string (lowercase Bech32, 32-byte key).
    public init(parsing string: String) throws {
        let (hrp, data): (String, [UInt8])
        do {
            (hrp, data) = try Bech32.decode(string)
        } catch let error as AgeError {
            throw AgeError(.invalidKey, "The age recipient is not valid: \(error.message)")
        }
        guard hrp == Self.hrp else {
            throw AgeError(.invalidKey, "The text is not a lowercase age X25519 recipient (age1…).")
        }
        try self.init(publicKey: data)
    }

    /// Creates a recipient from a 32-byte X25519 public key.
    public init(publicKey: [UInt8]) throws {
        guard publicKey.count == Int(crypto_scalarmult_curve25519_BYTES) else {
            throw AgeError(.invalidKey, "An age X25519 public key must be 32 bytes.")
        }
        self.publicKey = publicKey
    }

    /// The `age1…` encoding of this recipient.
    public var stringValue: String {
        // Bech32 encoding of 32 bytes under a constant valid prefix cannot fail.
        (try? Bech32.encode(hrp: Self.hrp, data: publicKey)) ?? ""
    }

    /// Wraps the file key to this recipient in one X25519 stanza with a fresh ephemeral key.
    public func wrap(fileKey: SecureBytes) throws -> [AgeStanza] {
        Sodium.ensureInitialized()
        let ephemeral = SecureBytes.random(count: 32)
        var share = [UInt8](repeating: 0, count: 32)
        ephemeral.withUnsafePointer { e in _ = crypto_scalarmult_curve25519_base(&share, e) }
        var rc: Int32 = -1
        let shared = SecureBytes(count: 32) { out in
            ephemeral.withUnsafePointer { e in rc = crypto_scalarmult_curve25519(out, e, publicKey) }
        }
        guard rc == 0, shared.withUnsafeBytes({ sodium_is_zero($0.baseAddress, $0.count) }) == 0 else {
            throw AgeError(.invalidKey, "The age recipient's public key is a low-order point and cannot be used.")
        }
        let wrapKey = try HKDF.deriveKey(
            ikm: shared, salt: share + publicKey, info: Array(AgeX25519Identity.wrapInfo.utf8))
        let body = AgeStream.wrapFileKey(fileKey, wrapKey: wrapKey)
        let shareText = String(decoding: AgeBase64.encodeUnpadded(share), as: UTF8.self)
        return [AgeStanza(type: AgeX25519Identity.stanzaType, arguments: [shareText], body: body)]
    }
}
