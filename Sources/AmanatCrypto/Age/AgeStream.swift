import CSodium

/// The age v1 payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks, plus the file-key wrapping AEAD.
enum AgeStream {
    /// Plaintext bytes per chunk (64 KiB).
    static let chunkSize = 64 * 1024
    /// Poly1305 tag length (16).
    static let tagSize = Int(crypto_aead_chacha20poly1305_ietf_ABYTES)
    /// Ciphertext bytes per full chunk.
    static let encryptedChunkSize = chunkSize + tagSize
    /// Payload nonce length (16).
    static let nonceSize = 16
    /// File key length (16).
    static let fileKeySize = 16

    /// The payload key HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload").
    static func payloadKey(fileKey: SecureBytes, nonce: [UInt8]) throws -> SecureBytes {
        try HKDF.deriveKey(ikm: fileKey, salt: nonce, info: Array("payload".utf8))
    }

    /// The 12-byte chunk nonce: an 11-byte big-endian counter and a final-chunk flag byte.
    static func chunkNonce(counter: UInt64, last: Bool) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { nonce[3 + i] = UInt8(truncatingIfNeeded: counter >> (8 * (7 - UInt64(i)))) }
        nonce[11] = last ? 1 : 0
        return nonce
    }

    /// ChaCha20-Poly1305 encryption of `plaintext` (no associated data).
    static func seal(_ plaintext: UnsafeRawBufferPointer, key: SecureBytes, nonce: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: plaintext.count + tagSize) { out, initialized in
            seal(plaintext, into: UnsafeMutableRawBufferPointer(out), key: key, nonce: nonce)
            initialized = plaintext.count + tagSize
        }
    }

    /// ChaCha20-Poly1305 encryption of `plaintext` into the first `plaintext.count + tagSize` bytes of `output`.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, key: SecureBytes,
        nonce: [UInt8]
    ) {
        precondition(output.count >= plaintext.count + tagSize, "the sealed chunk does not fit its place")
        var outLength: UInt64 = 0
        key.withUnsafePointer { k in
            // A full chunk (64 KiB) through BoringSSL's one-pass assembly (AEAD.swift, LargeMessages).
            if let input = plaintext.baseAddress,
                LargeMessages.seal(
                    input.assumingMemoryBound(to: UInt8.self), count: plaintext.count, additionalData: [],
                    nonce: nonce, nonceLength: 12, key: k,
                    into: output.baseAddress!.assumingMemoryBound(to: UInt8.self)) == true
            {
                return
            }
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count), nil, 0, nil, nonce,
                k
            )
        }
    }

    /// ChaCha20-Poly1305 decryption into a new array; nil if the tag does not verify.
    static func open(_ ciphertext: ArraySlice<UInt8>, key: SecureBytes, nonce: [UInt8]) -> [UInt8]? {
        guard ciphertext.count >= tagSize else { return nil }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagSize)
        var outLength: UInt64 = 0
        let rc = ciphertext.withUnsafeBufferPointer { c -> Int32 in
            guard let base = c.baseAddress else { return -1 }
            return key.withUnsafePointer { k in
                if let opened = out.withUnsafeMutableBufferPointer({ o -> Bool? in
                    // An empty chunk (an empty file's only one) may have no address; it stays with libsodium.
                    guard let into = o.baseAddress else { return nil }
                    let opened = LargeMessages.open(
                        base, count: c.count - tagSize, additionalData: nil, additionalCount: 0, nonce: nonce,
                        nonceLength: 12, key: k, into: into)
                    // BoringSSL decrypts while it authenticates: nothing unauthenticated is kept.
                    if opened == false { o.update(repeating: 0) }
                    return opened
                }) {
                    return opened ? 0 : -1
                }
                return crypto_aead_chacha20poly1305_ietf_decrypt(
                    &out, &outLength, nil, base, UInt64(c.count), nil, 0, nonce, k)
            }
        }
        return rc == 0 ? out : nil
    }

    /// Wraps a file key under a wrap key with the all-zero nonce, as the X25519 and scrypt stanzas do.
    static func wrapFileKey(_ fileKey: SecureBytes, wrapKey: SecureBytes) -> [UInt8] {
        fileKey.withUnsafeBytes { seal($0, key: wrapKey, nonce: [UInt8](repeating: 0, count: 12)) }
    }

    /// Unwraps a 32-byte stanza body into a 16-byte file key in secure memory; nil if it does not authenticate.
    static func unwrapFileKey(_ body: [UInt8], wrapKey: SecureBytes) -> SecureBytes? {
        precondition(body.count == fileKeySize + tagSize, "stanza body length is checked by the caller")
        var rc: Int32 = -1
        let key = SecureBytes(count: fileKeySize) { out in
            var outLength: UInt64 = 0
            wrapKey.withUnsafePointer { k in
                rc = crypto_aead_chacha20poly1305_ietf_decrypt(
                    out, &outLength, nil, body, UInt64(body.count), nil, 0, [UInt8](repeating: 0, count: 12), k)
            }
        }
        return rc == 0 ? key : nil
    }
}
