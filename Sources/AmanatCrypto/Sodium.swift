import CSodium

/// One-time initialisation of libsodium; every entry point of this module calls ``Sodium/ensureInitialized()``.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium once per process; traps if the library cannot start, since nothing is safe without it.
    @inline(__always)
    public static func ensureInitialized() {
        precondition(initialized, "libsodium could not be initialised")
    }

    /// `count` bytes that depend only on the 32-byte `seed` (libsodium's ChaCha20-based deterministic generator): for
    /// reproducible test and benchmark data, never for keys.
    public static func deterministicBytes(_ count: Int, seed: [UInt8]) -> [UInt8] {
        ensureInitialized()
        precondition(seed.count == Int(randombytes_SEEDBYTES))
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf_deterministic($0.baseAddress!, count, seed) }
        return out
    }

    /// Returns `count` bytes from the operating system's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return bytes
    }

    /// Compares two byte strings in constant time (for equal lengths).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    /// Overwrites a byte array with zeros in a way the compiler will not optimise away.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
    }

    /// Overwrites memory the caller holds with zeros in a way the compiler will not optimise away.
    public static func wipe(_ memory: UnsafeMutableRawBufferPointer) {
        if let base = memory.baseAddress { sodium_memzero(base, memory.count) }
    }
}
