import Foundation

/// Bytes compared in `#expect(Bytes(a) == Bytes(b))`. Compared as arrays or `Data`, a failure makes the test library
/// compute their difference for its message, which for MiB of bytes runs for hours (a broken round trip would hang
/// the test run instead of failing it), or print every byte. A failure shows each side's length and its first and
/// last bytes.
public struct Bytes: Equatable, CustomStringConvertible, Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: some Sequence<UInt8>) { self.bytes = Array(bytes) }

    public var description: String {
        func hex(_ part: ArraySlice<UInt8>) -> String { part.map { String(format: "%02x", $0) }.joined() }
        return "\(bytes.count) bytes, \(hex(bytes.prefix(8)))…\(hex(bytes.suffix(8)))"
    }
}
