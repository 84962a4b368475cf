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

    /// Encrypts bytes the caller holds into `out`, which must hold exactly `plaintext.count + tagLength` bytes
    /// (ciphertext ‖ tag): no intermediate array, for attachment chunks sealed straight into their stored form.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, additionalData: [UInt8], nonce: ArraySlice<UInt8>, key: SecureBytes,
        into out: UnsafeMutableRawBufferPointer
    ) throws {
        Sodium.ensureInitialized()
        guard key.count == keyLength else {
            throw CryptoError(.invalidInput, "An encryption key has the wrong length.")
        }
        guard nonce.count == nonceLength else {
            throw CryptoError(.invalidInput, "An encryption nonce has the wrong length.")
        }
        guard out.count == plaintext.count + tagLength, let outBase = out.baseAddress else {
            throw CryptoError(.invalidInput, "An encryption buffer has the wrong length.")
        }
        var outLength: UInt64 = 0
        let rc = key.withUnsafePointer { k in
            nonce.withUnsafeBufferPointer { n in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    outBase.assumingMemoryBound(to: UInt8.self), &outLength,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                    additionalData, UInt64(additionalData.count), nil, n.baseAddress!, k)
            }
        }
        guard rc == 0 else { throw CryptoError(.invalidInput, "Encryption failed.") }
    }

    /// Verifies and decrypts ciphertext ‖ tag held by the caller (a slice of a stored chunk, not copied first);
    /// throws ``CryptoError/Code/authenticationFailed`` on any alteration.
    public static func open(
        _ ciphertext: UnsafeRawBufferPointer, additionalData: [UInt8], nonce: ArraySlice<UInt8>, key: SecureBytes
    ) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard key.count == keyLength else { throw CryptoError(.invalidInput, "A decryption key has the wrong length.") }
        guard nonce.count == nonceLength else {
            throw CryptoError(.invalidInput, "A decryption nonce has the wrong length.")
        }
        guard ciphertext.count >= tagLength else {
            throw CryptoError(.authenticationFailed, "The ciphertext is too short to be authentic.")
        }
        return try nonce.withUnsafeBufferPointer { n in
            try decrypt(
                ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), count: ciphertext.count,
                additionalData: additionalData, additionalCount: additionalData.count, nonce: n.baseAddress!, key: key)
        }
    }

    /// Verifies and decrypts a sealed row held by the caller, `nonce ‖ ciphertext ‖ tag`, bound to `additionalData`:
    /// no intermediate array, for the rows a scan reads straight from SQLite's buffers.
    public static func open(
        sealed: UnsafeRawBufferPointer, additionalData: UnsafeRawBufferPointer, key: SecureBytes
    ) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard key.count == keyLength else { throw CryptoError(.invalidInput, "A decryption key has the wrong length.") }
        guard sealed.count >= nonceLength + tagLength, let base = sealed.baseAddress else {
            throw CryptoError(.authenticationFailed, "The ciphertext is too short to be authentic.")
        }
        let nonce = base.assumingMemoryBound(to: UInt8.self)
        return try decrypt(
            nonce + nonceLength, count: sealed.count - nonceLength,
            additionalData: additionalData.baseAddress?.assumingMemoryBound(to: UInt8.self),
            additionalCount: additionalData.count, nonce: nonce, key: key)
    }

    /// The one decryption both pointer forms share: `count` bytes of ciphertext ‖ tag (at least a tag's).
    private static func decrypt(
        _ ciphertext: UnsafePointer<UInt8>, count: Int, additionalData: UnsafePointer<UInt8>?, additionalCount: Int,
        nonce: UnsafePointer<UInt8>, key: SecureBytes
    ) throws -> [UInt8] {
        var outLength: UInt64 = 0
        var rc: Int32 = -1
        let length = count - tagLength
        // At least one byte of capacity, so the output pointer exists even for an empty message.
        let out = [UInt8](unsafeUninitializedCapacity: max(1, length)) { buffer, initialized in
            rc = key.withUnsafePointer { k in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    buffer.baseAddress!, &outLength, nil, ciphertext, UInt64(count), additionalData,
                    UInt64(additionalCount), nonce, k)
            }
            // On failure the output is not trusted: zero it, so every byte is initialized either way.
            if rc != 0 { buffer.initialize(repeating: 0) }
            initialized = length
        }
        guard rc == 0 else {
            throw CryptoError(
                .authenticationFailed, "The data could not be authenticated: wrong key, or it was altered.")
        }
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
