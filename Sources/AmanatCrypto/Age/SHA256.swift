import Crypto

/// SHA-256 hashing (FIPS 180-4) over swift-crypto (BoringSSL's assembly, with the processor's SHA extensions where
/// it has them: attachments hash every byte, and libsodium's portable SHA-256 was their slowest step).
public enum SHA256 {
    /// Digest length in bytes (32).
    public static let digestLength = 32

    /// Hashes `message` in one call.
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        let hasher = Hasher()
        hasher.update(message)
        return hasher.finalize()
    }

    /// An incremental SHA-256 hasher for long or streamed inputs.
    public final class Hasher {
        private var state = Crypto.SHA256()

        /// Starts a new hash.
        public init() {}

        /// Feeds bytes.
        public func update(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { state.update(bufferPointer: $0) }
        }

        /// Feeds bytes the caller holds.
        public func update(_ buffer: UnsafeRawBufferPointer) { state.update(bufferPointer: buffer) }

        /// Returns the digest; the hasher must not be used afterwards.
        public func finalize() -> [UInt8] { Array(state.finalize()) }
    }
}
