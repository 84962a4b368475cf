import CSodium

/// An X25519 key pair for receiving sealed boxes (libsodium `crypto_box_seal`): a member's key-agreement key.
///
/// It is separate from the device's Ed25519 signing key, so no key serves two purposes.
///
/// ```swift
/// let member = AgreementKeyPair.generate()
/// let box = try SealedBox.seal(secret, to: member.publicKey)
/// let back = try SealedBox.open(box, with: member)
/// ```
public struct AgreementKeyPair: Sendable {
    /// Key length (32).
    public static let keyLength = Int(crypto_box_PUBLICKEYBYTES)

    /// The 32-byte X25519 public key.
    public let publicKey: [UInt8]
    /// The 32-byte X25519 secret key, in secure memory.
    public let secretKey: SecureBytes

    /// Rebuilds the pair from its secret key.
    public init(secretKey: SecureBytes) throws {
        Sodium.ensureInitialized()
        guard secretKey.count == Self.keyLength else {
            throw CryptoError(.invalidInput, "An agreement secret key must be 32 bytes.")
        }
        var pk = [UInt8](repeating: 0, count: Self.keyLength)
        let rc = secretKey.withUnsafePointer { crypto_scalarmult_curve25519_base(&pk, $0) }
        guard rc == 0 else { throw CryptoError(.invalidInput, "The agreement secret key is not usable.") }
        publicKey = pk
        self.secretKey = secretKey
    }

    /// A new random key pair.
    public static func generate() -> AgreementKeyPair {
        // 32 random bytes are always a valid X25519 secret key (clamped by the scalar multiplication).
        guard let pair = try? AgreementKeyPair(secretKey: .random(count: keyLength)) else {
            fatalError("unreachable: 32-byte X25519 secret rejected")
        }
        return pair
    }
}

/// Anonymous public-key encryption to an X25519 key (libsodium sealed boxes: ephemeral X25519, XSalsa20-Poly1305).
public enum SealedBox {
    /// Bytes a box adds to its message (48).
    public static let overhead = Int(crypto_box_sealbytes())

    /// Encrypts `message` so that only the holder of `publicKey`'s secret key can read it.
    public static func seal(_ message: [UInt8], to publicKey: [UInt8]) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard publicKey.count == AgreementKeyPair.keyLength else {
            throw CryptoError(.invalidInput, "A sealed box needs a 32-byte X25519 public key.")
        }
        var out = [UInt8](repeating: 0, count: message.count + overhead)
        guard crypto_box_seal(&out, message, UInt64(message.count), publicKey) == 0 else {
            throw CryptoError(.invalidInput, "The X25519 public key is not usable.")
        }
        return out
    }

    /// Opens a box sealed to `pair`; throws if it was sealed to another key or altered.
    public static func open(_ box: [UInt8], with pair: AgreementKeyPair) throws -> SecureBytes {
        Sodium.ensureInitialized()
        guard box.count >= overhead else { throw CryptoError(.authenticationFailed, "A sealed box is too short.") }
        var failed = false
        let plain = SecureBytes(count: box.count - overhead) { out in
            pair.secretKey.withUnsafePointer { sk in
                failed = crypto_box_seal_open(out, box, UInt64(box.count), pair.publicKey, sk) != 0
            }
        }
        guard !failed else { throw CryptoError(.authenticationFailed, "A sealed box does not open with this key.") }
        return plain
    }
}
