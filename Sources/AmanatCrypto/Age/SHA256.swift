import CSodium

/// SHA-256 hashing (FIPS 180-4) over libsodium.
public enum SHA256 {
    /// Digest length in bytes (32).
    public static let digestLength = Int(crypto_hash_sha256_BYTES)

    /// Hashes `message` in one call.
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: digestLength)
        _ = crypto_hash_sha256(&out, message, UInt64(message.count))
        return out
    }

    /// An incremental SHA-256 hasher for long or streamed inputs.
    public final class Hasher {
        private var state = crypto_hash_sha256_state()

        /// Starts a new hash.
        public init() {
            Sodium.ensureInitialized()
            _ = crypto_hash_sha256_init(&state)
        }

        /// Feeds bytes.
        public func update(_ bytes: [UInt8]) {
            _ = crypto_hash_sha256_update(&state, bytes, UInt64(bytes.count))
        }

        /// Returns the digest; the hasher must not be used afterwards.
        public func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: SHA256.digestLength)
            _ = crypto_hash_sha256_final(&state, &out)
            return out
        }
    }
}
