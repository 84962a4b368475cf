import CSodium

/// An Ed25519 signing key pair whose secret half lives in secure memory.
///
/// ```swift
/// let device = SigningKeyPair.generate()
/// let signature = device.sign(message)
/// let ok = SigningKeyPair.verify(signature, of: message, publicKey: device.publicKey)
/// ```
public struct SigningKeyPair: Sendable {
    /// Public key length (32).
    public static let publicKeyLength = Int(crypto_sign_PUBLICKEYBYTES)
    /// Seed length (32).
    public static let seedLength = Int(crypto_sign_SEEDBYTES)
    /// Signature length (64).
    public static let signatureLength = Int(crypto_sign_BYTES)

    /// The 32-byte public key.
    public let publicKey: [UInt8]
    /// The 64-byte libsodium secret key (seed ‖ public key), in secure memory.
    private let secretKey: SecureBytes
    /// The 32-byte seed the pair is derived from, in secure memory.
    public let seed: SecureBytes

    /// Derives the key pair from a 32-byte seed.
    public init(seed: SecureBytes) throws {
        Sodium.ensureInitialized()
        guard seed.count == Self.seedLength else {
            throw CryptoError(.invalidInput, "A signing seed must be 32 bytes.")
        }
        var pk = [UInt8](repeating: 0, count: Self.publicKeyLength)
        let sk = SecureBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { out in
            seed.withUnsafePointer { s in _ = crypto_sign_seed_keypair(&pk, out, s) }
        }
        self.publicKey = pk
        self.secretKey = sk
        self.seed = seed
    }

    /// A new random key pair.
    public static func generate() -> SigningKeyPair {
        // A 32-byte random seed always yields a key pair.
        guard let pair = try? SigningKeyPair(seed: .random(count: seedLength)) else {
            fatalError("unreachable: 32-byte seed rejected")
        }
        return pair
    }

    /// Signs `message`, returning a 64-byte detached signature.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Self.signatureLength)
        secretKey.withUnsafePointer { sk in
            _ = crypto_sign_detached(&sig, nil, message, UInt64(message.count), sk)
        }
        return sig
    }

    /// Checks a detached Ed25519 signature.
    public static func verify(_ signature: [UInt8], of message: [UInt8], publicKey: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    /// The X25519 secret key corresponding to this Ed25519 key (for age decryption), in secure memory.
    public func x25519SecretKey() -> SecureBytes {
        SecureBytes(count: 32) { out in
            secretKey.withUnsafePointer { sk in _ = crypto_sign_ed25519_sk_to_curve25519(out, sk) }
        }
    }

    /// The X25519 public key corresponding to an Ed25519 public key (the device's age recipient).
    public static func x25519PublicKey(fromEd25519 publicKey: [UInt8]) throws -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: 32)
        guard publicKey.count == publicKeyLength, crypto_sign_ed25519_pk_to_curve25519(&out, publicKey) == 0 else {
            throw CryptoError(.invalidInput, "The public key is not a valid Ed25519 key.")
        }
        return out
    }
}
