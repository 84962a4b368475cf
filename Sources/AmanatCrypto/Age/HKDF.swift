import CSodium

/// HMAC-SHA-256 (RFC 2104) over libsodium's incremental API, which accepts keys of any length.
public enum HMACSHA256 {
    /// MAC length in bytes (32).
    public static let macLength = Int(crypto_auth_hmacsha256_BYTES)

    /// Computes HMAC-SHA-256 of `message` under a public or already-exposed key.
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in message.withUnsafeBytes { m in mac(key: k, parts: [m]) } }
    }

    /// Computes HMAC-SHA-256 of `message` under a key held in secure memory.
    public static func authenticate(_ message: [UInt8], key: SecureBytes) -> [UInt8] {
        key.withUnsafeBytes { k in message.withUnsafeBytes { m in mac(key: k, parts: [m]) } }
    }

    /// Computes HMAC-SHA-256 of the concatenation of `parts` under `key`.
    static func mac(key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: macLength)
        out.withUnsafeMutableBufferPointer { o in
            // The buffer has exactly macLength elements, so its base address exists.
            if let base = o.baseAddress { mac(key: key, parts: parts, into: base) }
        }
        return out
    }

    /// Computes HMAC-SHA-256 of the concatenation of `parts` under `key`, writing 32 bytes to `output`.
    static func mac(
        key: UnsafeRawBufferPointer, parts: [UnsafeRawBufferPointer], into output: UnsafeMutablePointer<UInt8>
    ) {
        Sodium.ensureInitialized()
        var state = crypto_auth_hmacsha256_state()
        // libsodium wants a valid pointer even for an empty key; an empty key equals an all-zero block key.
        var zero: UInt8 = 0
        if let base = key.baseAddress, key.count > 0 {
            _ = crypto_auth_hmacsha256_init(&state, base.assumingMemoryBound(to: UInt8.self), key.count)
        } else {
            _ = crypto_auth_hmacsha256_init(&state, &zero, 0)
        }
        for part in parts {
            if let base = part.baseAddress, part.count > 0 {
                _ = crypto_auth_hmacsha256_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(part.count))
            }
        }
        _ = crypto_auth_hmacsha256_final(&state, output)
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress, $0.count) }
    }
}

/// HKDF with SHA-256 (RFC 5869): extract-then-expand key derivation, outputs kept in secure memory.
///
/// ```swift
/// let key = try HKDF.deriveKey(ikm: fileKey, salt: nonce, info: Array("payload".utf8))
/// ```
public enum HKDF {
    /// The largest output HKDF-SHA-256 can produce (255 × 32 bytes).
    public static let maxOutputLength = 255 * HMACSHA256.macLength

    /// HKDF-Extract: the pseudorandom key HMAC-SHA-256(salt, ikm); an empty salt means 32 zero bytes.
    public static func extract(salt: [UInt8], ikm: SecureBytes) -> SecureBytes {
        SecureBytes(count: HMACSHA256.macLength) { out in
            salt.withUnsafeBytes { s in
                ikm.withUnsafeBytes { i in HMACSHA256.mac(key: s, parts: [i], into: out) }
            }
        }
    }

    /// HKDF-Expand: `length` bytes of output keying material from a pseudorandom key and context `info`.
    public static func expand(prk: SecureBytes, info: [UInt8], length: Int) throws -> SecureBytes {
        guard length >= 0, length <= maxOutputLength, prk.count >= HMACSHA256.macLength else {
            throw AgeError(.invalidUse, "An HKDF output length or pseudorandom key length is out of range.")
        }
        let blockLength = HMACSHA256.macLength
        // T(i) lives in a scratch buffer that is wiped before it is freed.
        let block = UnsafeMutablePointer<UInt8>.allocate(capacity: blockLength)
        defer {
            sodium_memzero(block, blockLength)
            block.deallocate()
        }
        return SecureBytes(count: length) { out in
            var written = 0
            var counter: UInt8 = 1
            prk.withUnsafeBytes { key in
                info.withUnsafeBytes { infoBytes in
                    while written < length {
                        var counterByte = counter
                        withUnsafeBytes(of: &counterByte) { c in
                            let previous = UnsafeRawBufferPointer(start: block, count: counter == 1 ? 0 : blockLength)
                            HMACSHA256.mac(key: key, parts: [previous, infoBytes, c], into: block)
                        }
                        let take = min(blockLength, length - written)
                        (out + written).update(from: block, count: take)
                        written += take
                        counter &+= 1
                    }
                }
            }
        }
    }

    /// HKDF-Extract followed by HKDF-Expand, as age uses it (32-byte output by default).
    public static func deriveKey(ikm: SecureBytes, salt: [UInt8], info: [UInt8], length: Int = 32) throws
        -> SecureBytes
    {
        try expand(prk: extract(salt: salt, ikm: ikm), info: info, length: length)
    }
}
