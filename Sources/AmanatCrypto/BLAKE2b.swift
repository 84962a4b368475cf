import CSodium

/// BLAKE2b hashing (RFC 7693), plain or keyed.
public enum BLAKE2b {
    /// Hashes `message` to `outputLength` bytes (16...64), optionally keyed.
    public static func hash(_ message: [UInt8], outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength) && key.count <= 64)
        var out = [UInt8](repeating: 0, count: outputLength)
        _ = crypto_generichash(&out, outputLength, message, UInt64(message.count), key.isEmpty ? nil : key, key.count)
        return out
    }

    /// Hashes `message` keyed with a secret held in secure memory.
    public static func hash(_ message: [UInt8], outputLength: Int = 32, key: SecureBytes) -> [UInt8] {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength) && (16...64).contains(key.count))
        var out = [UInt8](repeating: 0, count: outputLength)
        key.withUnsafePointer { k in
            _ = crypto_generichash(&out, outputLength, message, UInt64(message.count), k, key.count)
        }
        return out
    }

    /// Hashes bytes the caller holds (a chunk in a reused buffer), keyed with a secret held in secure memory.
    public static func hash(_ message: UnsafeRawBufferPointer, outputLength: Int = 32, key: SecureBytes) -> [UInt8] {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength) && (16...64).contains(key.count))
        var out = [UInt8](repeating: 0, count: outputLength)
        key.withUnsafePointer { k in
            _ = crypto_generichash(
                &out, outputLength, message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count), k,
                key.count)
        }
        return out
    }

    /// Derives a secret subkey: keyed BLAKE2b of `message` under `key`, output kept in secure memory.
    public static func deriveKey(from key: SecureBytes, message: [UInt8], outputLength: Int = 32) -> SecureBytes {
        Sodium.ensureInitialized()
        return SecureBytes(count: outputLength) { out in
            key.withUnsafePointer { k in
                _ = crypto_generichash(out, outputLength, message, UInt64(message.count), k, key.count)
            }
        }
    }

    /// Derives a short-lived 32-byte key into a stack buffer, lends it to `body`, and wipes it afterwards.
    ///
    /// For per-envelope keys, which are derived thousands of times a second: guarded `sodium_malloc` pages would
    /// cost several system calls each.
    public static func withDerivedKey<R>(
        from key: SecureBytes, message: [UInt8], _ body: (UnsafePointer<UInt8>) throws -> R
    ) rethrows -> R {
        Sodium.ensureInitialized()
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            let out = buffer.baseAddress!
            defer { sodium_memzero(out, 32) }
            key.withUnsafePointer { k in
                _ = crypto_generichash(out, 32, message, UInt64(message.count), k, key.count)
            }
            return try body(UnsafePointer(out))
        }
    }

    /// An incremental hasher for long inputs.
    public final class Hasher {
        // The libsodium state is an aligned opaque struct; it lives in its own allocation.
        private let state: UnsafeMutableRawPointer
        private let outputLength: Int

        /// Starts an unkeyed hash of `outputLength` bytes.
        public init(outputLength: Int = 32) {
            Sodium.ensureInitialized()
            self.outputLength = outputLength
            state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
            _ = crypto_generichash_init(OpaquePointer(state), nil, 0, outputLength)
        }

        deinit { state.deallocate() }

        /// Feeds bytes.
        public func update(_ bytes: [UInt8]) {
            _ = crypto_generichash_update(OpaquePointer(state), bytes, UInt64(bytes.count))
        }

        /// Returns the digest; the hasher must not be used afterwards.
        public func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: outputLength)
            _ = crypto_generichash_final(OpaquePointer(state), &out, outputLength)
            return out
        }
    }
}
