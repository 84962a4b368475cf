import CSodium

/// An age X25519 identity (`AGE-SECRET-KEY-1…`): a 32-byte secret scalar held in secure memory.
public struct AgeX25519Identity: AgeIdentity, Sendable {
    static let stanzaType = "X25519"
    static let wrapInfo = "age-encryption.org/v1/X25519"
    static let hrp = "AGE-SECRET-KEY-"

    private let secretKey: SecureBytes
    /// The recipient that files for this identity are encrypted to.
    public let recipient: AgeX25519Recipient

    /// Parses an `AGE-SECRET-KEY-1…` string, or a whole `age-keygen` key file holding exactly one key.
    ///
    /// Lines that are empty, whitespace only or start with `#` are skipped; surrounding whitespace is ignored.
    public init(parsing text: String) throws {
        let keys = try Self.parseAll(text)
        guard keys.count == 1 else {
            throw AgeError(.invalidKey, "Expected exactly one age secret key, found \(keys.count).")
        }
        self = keys[0]
    }

    /// Parses every `AGE-SECRET-KEY-1…` line of a key file, skipping empty lines and `#` comments.
    public static func parseAll(_ text: String) throws -> [AgeX25519Identity] {
        var keys = [AgeX25519Identity]()
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            keys.append(try parseKey(String(line)))
        }
        return keys
    }

    private static func parseKey(_ string: String) throws -> AgeX25519Identity {
        let decoded: (hrp: String, data: [UInt8])
        do {
            decoded = try Bech32.decode(string)
        } catch let error as AgeError {
            throw AgeError(.invalidKey, "The age secret key is not valid: \(error.message)")
        }
        var data = decoded.data
        defer { Sodium.wipe(&data) }
        guard decoded.hrp == hrp else {
            throw AgeError(.invalidKey, "The text is not an uppercase age X25519 secret key (AGE-SECRET-KEY-1…).")
        }
        return try AgeX25519Identity(secretKey: SecureBytes(data))
    }

    /// Creates an identity from a 32-byte X25519 secret scalar (for example a device key's X25519 form).
    public init(secretKey: SecureBytes) throws {
        Sodium.ensureInitialized()
        guard secretKey.count == Int(crypto_scalarmult_curve25519_SCALARBYTES) else {
            throw AgeError(.invalidKey, "An age X25519 secret key must be 32 bytes.")
        }
        var publicKey = [UInt8](repeating: 0, count: 32)
        let rc = secretKey.withUnsafePointer { crypto_scalarmult_curve25519_base(&publicKey, $0) }
        guard rc == 0 else { throw AgeError(.invalidKey, "The age X25519 secret key is not usable.") }
        self.secretKey = secretKey
        self.recipient = try AgeX25519Recipient(publicKey: publicKey)
    }

    /// A new random identity.
    public static func generate() -> AgeX25519Identity {
        // A 32-byte random scalar is always accepted: X25519 clamps it.
        guard let identity = try? AgeX25519Identity(secretKey: .random(count: 32)) else {
            fatalError("unreachable: a random 32-byte X25519 scalar was rejected")
        }
        return identity
    }

    /// The `AGE-SECRET-KEY-1…` encoding of this identity; it is a secret, handle it as one.
    public var stringValue: String {
        var data = secretKey.copyBytes()
        defer { Sodium.wipe(&data) }
        // Bech32 encoding of 32 bytes under a constant valid prefix cannot fail.
        return ((try? Bech32.encode(hrp: Self.hrp, data: data)) ?? "").uppercased()
    }

    /// Checks an X25519 stanza's structure and returns its 32-byte ephemeral share.
    static func parseStanza(_ stanza: AgeStanza) throws -> [UInt8] {
        guard stanza.arguments.count == 1 else {
            throw AgeError(.headerFailure, "An age X25519 stanza must have exactly one argument after its type.")
        }
        guard let share = AgeBase64.decodeUnpadded(stanza.arguments[0].utf8), share.count == 32 else {
            throw AgeError(.headerFailure, "An age X25519 stanza's share is not canonical base64 of 32 bytes.")
        }
        guard stanza.body.count == AgeStream.fileKeySize + AgeStream.tagSize else {
            throw AgeError(.headerFailure, "An age X25519 stanza's body is not exactly 32 bytes.")
        }
        return share
    }

    /// Returns the file key from the first X25519 stanza addressed to this identity, or nil.
    public func unwrap(stanzas: [AgeStanza]) throws -> SecureBytes? {
        for stanza in stanzas where stanza.type == Self.stanzaType {
            let share = try Self.parseStanza(stanza)
            var rc: Int32 = -1
            let shared = SecureBytes(count: 32) { out in
                secretKey.withUnsafePointer { k in rc = crypto_scalarmult_curve25519(out, k, share) }
            }
            guard rc == 0, shared.withUnsafeBytes({ sodium_is_zero($0.baseAddress, $0.count) }) == 0 else {
                throw AgeError(.headerFailure, "An age X25519 stanza uses a low-order share (all-zero shared secret).")
            }
            let wrapKey = try HKDF.deriveKey(
                ikm: shared, salt: share + recipient.publicKey, info: Array(Self.wrapInfo.utf8))
            if let fileKey = AgeStream.unwrapFileKey(stanza.body, wrapKey: wrapKey) { return fileKey }
        }
        return nil
    }
}

extension Substring {
    /// The substring without leading and trailing spaces, tabs, carriage returns and line feeds.
    fileprivate func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
