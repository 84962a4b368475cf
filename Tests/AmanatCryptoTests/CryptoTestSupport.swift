import AmanatCrypto
import Testing

/// Decodes a hex literal of a test vector; records a test failure if the literal itself is malformed.
func unhex(_ string: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    try #require(Hex.decode(string), "bad hex literal in a test vector", sourceLocation: sourceLocation)
}

/// `bytes` with bit `bit` (0...7) of byte `index` inverted.
func flipping(_ bytes: [UInt8], byte index: Int, bit: Int = 0) -> [UInt8] {
    var copy = bytes
    copy[index] ^= UInt8(1) << UInt8(bit)
    return copy
}

/// The bytes `start`, `start + 1`, … of length `count` (the counting patterns of the published vectors).
func counting(from start: UInt8, count: Int) -> [UInt8] {
    (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0) }
}

/// Runs `body` and returns the ``CryptoError`` code it threw, or nil if it threw nothing or something else.
func cryptoErrorCode<T>(_ body: () throws -> T) -> CryptoError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as CryptoError {
        return error.code
    } catch {
        return nil
    }
}
