import CSodium

#if canImport(CCryptoBoringSSL)
    // swift-crypto's own build of BoringSSL (already linked for SHA-256): its ChaCha20-Poly1305 computes the cipher
    // and the authenticator in one pass of AVX2 assembly, about 1.7 times libsodium's on attachment chunks
    // (Docs/architecture.md, "Attachment throughput").
    import CCryptoBoringSSL
#endif

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
        if let input = plaintext.baseAddress {
            let sealed = key.withUnsafePointer { k in
                nonce.withUnsafeBufferPointer { n in
                    LargeMessages.seal(
                        input.assumingMemoryBound(to: UInt8.self), count: plaintext.count,
                        additionalData: additionalData,
                        nonce: n.baseAddress!, key: k, into: outBase.assumingMemoryBound(to: UInt8.self))
                }
            }
            if let sealed {
                guard sealed else { throw CryptoError(.invalidInput, "Encryption failed.") }
                return
            }
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
        try checkOpen(ciphertext, nonce: nonce, key: key)
        return try outputArray(length: ciphertext.count - tagLength) { out in
            try nonce.withUnsafeBufferPointer { n in
                try decrypt(
                    ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), count: ciphertext.count,
                    additionalData: additionalData, additionalCount: additionalData.count, nonce: n.baseAddress!,
                    key: key, into: out)
            }
        }
    }

    /// Like ``open(_:additionalData:nonce:key:)-(UnsafeRawBufferPointer,_,_,_)``, into `out`, which must hold
    /// exactly `ciphertext.count - tagLength` bytes (an extracted chunk goes straight into the page-aligned memory
    /// its file is written from). On a failure `out` is zeroed.
    public static func open(
        _ ciphertext: UnsafeRawBufferPointer, additionalData: [UInt8], nonce: ArraySlice<UInt8>, key: SecureBytes,
        into out: UnsafeMutableRawBufferPointer
    ) throws {
        try checkOpen(ciphertext, nonce: nonce, key: key)
        guard out.count == ciphertext.count - tagLength, out.count == 0 || out.baseAddress != nil else {
            throw CryptoError(.invalidInput, "A decryption buffer has the wrong length.")
        }
        var one: UInt8 = 0
        try withUnsafeMutablePointer(to: &one) { spare in
            try nonce.withUnsafeBufferPointer { n in
                try decrypt(
                    ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), count: ciphertext.count,
                    additionalData: additionalData, additionalCount: additionalData.count, nonce: n.baseAddress!,
                    key: key, into: out.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? spare)
            }
        }
    }

    /// The checks both ciphertext-slice forms of `open` make before decrypting.
    private static func checkOpen(_ ciphertext: UnsafeRawBufferPointer, nonce: ArraySlice<UInt8>, key: SecureBytes)
        throws
    {
        Sodium.ensureInitialized()
        guard key.count == keyLength else { throw CryptoError(.invalidInput, "A decryption key has the wrong length.") }
        guard nonce.count == nonceLength else {
            throw CryptoError(.invalidInput, "A decryption nonce has the wrong length.")
        }
        guard ciphertext.count >= tagLength else {
            throw CryptoError(.authenticationFailed, "The ciphertext is too short to be authentic.")
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
        return try outputArray(length: sealed.count - nonceLength - tagLength) { out in
            try decrypt(
                nonce + nonceLength, count: sealed.count - nonceLength,
                additionalData: additionalData.baseAddress?.assumingMemoryBound(to: UInt8.self),
                additionalCount: additionalData.count, nonce: nonce, key: key, into: out)
        }
    }

    /// A new array of `length` bytes that `fill` decrypts into (at least one byte of capacity, so the output pointer
    /// exists even for an empty message).
    private static func outputArray(length: Int, _ fill: (UnsafeMutablePointer<UInt8>) throws -> Void) throws
        -> [UInt8]
    {
        var failure: (any Error)?
        let out = [UInt8](unsafeUninitializedCapacity: max(1, length)) { buffer, initialized in
            do { try fill(buffer.baseAddress!) } catch { failure = error }
            initialized = length
        }
        if let failure { throw failure }
        return out
    }

    /// The one decryption every pointer form shares: `count` bytes of ciphertext ‖ tag (at least a tag's) into `out`
    /// (`count - tagLength` bytes), which is zeroed when they do not authenticate, so every byte is initialized
    /// either way and nothing unauthenticated is left in it.
    private static func decrypt(
        _ ciphertext: UnsafePointer<UInt8>, count: Int, additionalData: UnsafePointer<UInt8>?, additionalCount: Int,
        nonce: UnsafePointer<UInt8>, key: SecureBytes, into out: UnsafeMutablePointer<UInt8>
    ) throws {
        var outLength: UInt64 = 0
        let length = count - tagLength
        let opened = key.withUnsafePointer { k in
            if let opened = LargeMessages.open(
                ciphertext, count: length, additionalData: additionalData, additionalCount: additionalCount,
                nonce: nonce, key: k, into: out)
            {
                return opened
            }
            return crypto_aead_xchacha20poly1305_ietf_decrypt(
                out, &outLength, nil, ciphertext, UInt64(count), additionalData, UInt64(additionalCount), nonce, k) == 0
        }
        guard opened else {
            out.update(repeating: 0, count: length)
            throw CryptoError(
                .authenticationFailed, "The data could not be authenticated: wrong key, or it was altered.")
        }
    }

    /// Whether ciphertext ‖ tag authenticates under `key`, `nonce` and `additionalData`, without decrypting it: only
    /// the Poly1305 tag is computed (libsodium's detached decryption with no output), a fraction of an opening's cost.
    /// For ciphertext this device passes on unread (a chunk it sends to a carrier).
    public static func authenticates(
        _ ciphertext: UnsafeRawBufferPointer, additionalData: [UInt8], nonce: ArraySlice<UInt8>, key: SecureBytes
    ) -> Bool {
        Sodium.ensureInitialized()
        guard key.count == keyLength, nonce.count == nonceLength, ciphertext.count >= tagLength,
            let base = ciphertext.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return false }
        let length = ciphertext.count - tagLength
        let nonceBytes = Array(nonce)
        let rc = key.withUnsafePointer { k in
            crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                nil, nil, base, UInt64(length), base + length, additionalData, UInt64(additionalData.count),
                nonceBytes, k)
        }
        return rc == 0
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

/// ChaCha20-Poly1305 of large messages (from ``LargeMessages/threshold`` bytes: attachment chunks, age payload chunks)
/// through BoringSSL's `EVP_aead_xchacha20_poly1305` (24-byte nonces: the same construction as libsodium's
/// `crypto_aead_xchacha20poly1305_ietf`, an HChaCha20 subkey then RFC 8439) or `EVP_aead_chacha20_poly1305` (12-byte
/// nonces: RFC 8439, libsodium's `crypto_aead_chacha20poly1305_ietf`). The bytes are identical, which tests check
/// against libsodium at every size around the threshold and against the `age` tool. Where swift-crypto builds no
/// BoringSSL (Apple platforms use CryptoKit), both functions answer nil and the caller uses libsodium.
enum LargeMessages {
    /// Below this, libsodium: a row or an envelope is a few hundred bytes, where setting up BoringSSL's context
    /// costs as much as it saves.
    static let threshold = 16 << 10

    /// Seals `count` bytes into `out` (`count` + 16: ciphertext ‖ tag) under a 32-byte key and a nonce of
    /// `nonceLength` bytes (24 or 12); nil below ``threshold`` or without BoringSSL (the caller uses libsodium), else
    /// whether it sealed.
    static func seal(
        _ plaintext: UnsafePointer<UInt8>, count: Int, additionalData: [UInt8], nonce: UnsafePointer<UInt8>,
        nonceLength: Int = AEAD.nonceLength, key: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<UInt8>
    ) -> Bool? {
        guard count >= threshold else { return nil }
        #if canImport(CCryptoBoringSSL)
            return withContext(key: key, nonceLength: nonceLength) { context in
                var tagLength = 0
                return CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(
                    context, out, out + count, &tagLength, AEAD.tagLength, nonce, nonceLength, plaintext, count,
                    nil, 0, additionalData, additionalData.count) == 1 && tagLength == AEAD.tagLength
            }
        #else
            return nil
        #endif
    }

    /// Opens `count` bytes of ciphertext followed by their 16-byte tag into `out` (`count` bytes); nil below
    /// ``threshold`` or without BoringSSL, else whether they authenticated (when not, `out` holds unauthenticated
    /// bytes the caller zeroes).
    static func open(
        _ ciphertext: UnsafePointer<UInt8>, count: Int, additionalData: UnsafePointer<UInt8>?, additionalCount: Int,
        nonce: UnsafePointer<UInt8>, nonceLength: Int = AEAD.nonceLength, key: UnsafePointer<UInt8>,
        into out: UnsafeMutablePointer<UInt8>
    ) -> Bool? {
        guard count >= threshold else { return nil }
        #if canImport(CCryptoBoringSSL)
            return withContext(key: key, nonceLength: nonceLength) { context in
                CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(
                    context, out, nonce, nonceLength, ciphertext, count, ciphertext + count, AEAD.tagLength,
                    additionalData, additionalCount) == 1
            }
        #else
            return nil
        #endif
    }

    #if canImport(CCryptoBoringSSL)
        /// Runs `body` with a BoringSSL context holding a copy of `key`, wiped afterwards: XChaCha20-Poly1305 for
        /// 24-byte nonces, ChaCha20-Poly1305 for 12-byte ones.
        private static func withContext(
            key: UnsafePointer<UInt8>, nonceLength: Int, _ body: (UnsafeMutablePointer<EVP_AEAD_CTX>) -> Bool
        ) -> Bool {
            let aead: OpaquePointer
            switch nonceLength {
            case 24: aead = CCryptoBoringSSL_EVP_aead_xchacha20_poly1305()
            case 12: aead = CCryptoBoringSSL_EVP_aead_chacha20_poly1305()
            default: return false
            }
            var context = EVP_AEAD_CTX()
            defer {
                CCryptoBoringSSL_EVP_AEAD_CTX_cleanup(&context)
                withUnsafeMutableBytes(of: &context) { sodium_memzero($0.baseAddress, $0.count) }
            }
            guard CCryptoBoringSSL_EVP_AEAD_CTX_init(&context, aead, key, AEAD.keyLength, AEAD.tagLength, nil) == 1
            else { return false }
            return body(&context)
        }
    #endif
}
