import CSodium

/// XChaCha20-Poly1305 (IETF) authenticated encryption with associated data.
///
/// ```swift
/// let nonce = AEAD.randomNonce()
/// let box = try AEAD.seal(plaintext, additionalData: header, nonce: nonce, key: key)
/// let back = try AEAD.open(box, additionalData: header, nonce: nonce, key: key)
/// ```
public enum AEAD {
    /// Key length in bytes (32).
    public static let keyLength = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    /// Nonce length in bytes (24); random nonces are safe at this length.
    public static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    /// Authentication tag length in bytes (16).
    public static let tagLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    /// A fresh random nonce.
    public static func randomNonce() -> [UInt8] { Sodium.randomBytes(nonceLength) }

    /// Encrypts and authenticates `plaintext`, binding `additionalData`; returns ciphertext ‖ tag.
    public static func seal(
        _ plaintext: [UInt8], additionalData: [UInt8], nonce: [UInt8], key: SecureBytes
    ) throws -> [UInt8] {
        guard key.count == keyLength else {
            throw CryptoError(.invalidInput, "An encryption key has the wrong length.")
        }
        return try key.withUnsafePointer {
            try seal(plaintext, additionalData: additionalData, nonce: nonce, keyBytes: $0)
        }
    }

    /// Encrypts with a 32-byte key the caller holds (for short-lived derived keys kept in wiped stack memory).
    public static func seal(
        _ plaintext: [UInt8], additionalData: [UInt8], nonce: [UInt8], keyBytes: UnsafePointer<UInt8>
    ) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard nonce.count == nonceLength else {
            throw CryptoError(.invalidInput, "An encryption nonce has the wrong length.")
        }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var outLength: UInt64 = 0
        let rc = crypto_aead_xchacha20poly1305_ietf_encrypt(
            &out, &outLength, plaintext, UInt64(plaintext.count), additionalData, UInt64(additionalData.count), nil,
            nonce, keyBytes)
        guard rc == 0 else { throw CryptoError(.invalidInput, "Encryption failed.") }
        return out
    }

    /// Verifies and decrypts ciphertext ‖ tag; throws ``CryptoError/Code/authenticationFailed`` on any alteration.
    public static func open(
        _ ciphertext: [UInt8], additionalData: [UInt8], nonce: [UInt8], key: SecureBytes
    ) throws -> [UInt8] {
        guard key.count == keyLength else { throw CryptoError(.invalidInput, "A decryption key has the wrong length.") }
        return try key.withUnsafePointer {
            try open(ciphertext, additionalData: additionalData, nonce: nonce, keyBytes: $0)
        }
    }

    /// Decrypts with a 32-byte key the caller holds (for short-lived derived keys kept in wiped stack memory).
    public static func open(
        _ ciphertext: [UInt8], additionalData: [UInt8], nonce: [UInt8], keyBytes: UnsafePointer<UInt8>
    ) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard nonce.count == nonceLength else {
            throw CryptoError(.invalidInput, "A decryption nonce has the wrong length.")
        }
        guard ciphertext.count >= tagLength else {
            throw CryptoError(.authenticationFailed, "The ciphertext is too short to be authentic.")
        }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        var outLength: UInt64 = 0
        let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
            &out, &outLength, nil, ciphertext, UInt64(ciphertext.count), additionalData, UInt64(additionalData.count),
            nonce, keyBytes)
        guard rc == 0 else {
            throw CryptoError(
                .authenticationFailed, "The data could not be authenticated: wrong key, or it was altered.")
        }
        return out
    }
}
