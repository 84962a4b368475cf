import CSodium

/// Secret bytes held in libsodium secure memory: guarded pages, locked in RAM, wiped and freed on release.
///
/// ```swift
/// let key = SecureBytes.random(count: 32)
/// key.withUnsafeBytes { raw in /* use the key */ }
/// ```
/// The bytes are never copied into ordinary Swift arrays by this type; use ``withUnsafeBytes(_:)``.
public final class SecureBytes: @unchecked Sendable {
    // @unchecked Sendable: the buffer is written only in initialisers and read-only afterwards,
    // so sharing it across tasks cannot race.
    private let pointer: UnsafeMutableRawPointer
    /// The number of secret bytes.
    public let count: Int

    /// Allocates `count` zeroed bytes of secure memory.
    public init(count: Int) {
        Sodium.ensureInitialized()
        guard let p = sodium_malloc(max(count, 1)) else {
            fatalError("sodium_malloc failed: out of secure memory")
        }
        sodium_memzero(p, max(count, 1))
        pointer = p
        self.count = count
    }

    /// Copies bytes into secure memory; the caller remains responsible for wiping its own copy.
    public convenience init(_ bytes: [UInt8]) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { pointer.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    /// Copies bytes into secure memory and wipes the source array.
    public convenience init(consuming bytes: inout [UInt8]) {
        self.init(bytes)
        Sodium.wipe(&bytes)
    }

    /// Fills a new buffer with `count` random bytes.
    public static func random(count: Int) -> SecureBytes {
        let s = SecureBytes(count: count)
        randombytes_buf(s.pointer, count)
        return s
    }

    /// Creates a buffer and lets `body` fill it in place.
    public convenience init(count: Int, initializer body: (UnsafeMutablePointer<UInt8>) throws -> Void) rethrows {
        self.init(count: count)
        try body(pointer.assumingMemoryBound(to: UInt8.self))
    }

    deinit {
        sodium_free(pointer)
    }

    /// Gives read-only access to the secret bytes for the duration of `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Gives a typed read-only pointer to the secret bytes for the duration of `body`.
    public func withUnsafePointer<R>(_ body: (UnsafePointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafePointer(pointer.assumingMemoryBound(to: UInt8.self)))
    }

    /// Copies the secret out into an ordinary array: only for writing it, wrapped, to a file or a bundle.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Compares with another secret in constant time.
    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        count == other.count && sodium_memcmp(pointer, other.pointer, count) == 0
    }
}
