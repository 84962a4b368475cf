import AmanatCrypto

/// A device's identity: its Ed25519 public key (32 bytes).
public struct DeviceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The public key.
    public let bytes: [UInt8]

    /// Wraps a 32-byte public key.
    public init(_ bytes: [UInt8]) throws {
        guard bytes.count == 32 else { throw CoreError(.malformed, "A device id must be 32 bytes.") }
        self.bytes = bytes
    }

    /// Hex form, as shown to people.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }

    public static func < (a: DeviceID, b: DeviceID) -> Bool { precedes(a.bytes, b.bytes) }
}

/// A record's identity: 16 random bytes chosen by the device that created it.
///
/// Held as two numbers, not an array: a vault handles one per record, and each array was an allocation of its own
/// to make, hash a byte at a time, count references to and free (allocation and reference counting were the largest
/// share of a 100k-record `list` after the decryption).
public struct RecordID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first eight bytes, read as a big-endian number.
    public let high: UInt64
    /// The last eight bytes, likewise.
    public let low: UInt64

    /// Wraps 16 bytes.
    public init(_ bytes: [UInt8]) throws {
        guard bytes.count == 16 else { throw CoreError(.malformed, "A record id must be 16 bytes.") }
        (high, low) = bytes.withUnsafeBytes {
            (
                UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)),
                UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            )
        }
    }

    /// The id whose bytes are `high` then `low`, each big-endian.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the 32-character hex form.
    public init?(hex: String) {
        guard let raw = Hex.decode(hex), let id = try? RecordID(raw) else { return nil }
        self = id
    }

    /// The raw id.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { Array($0) }
    }

    /// Hex form, as shown to people and used in JSON.
    public var hex: String { Hex.encode(bytes) }

    public var description: String { hex }

    /// Byte order, which is the order of (`high`, `low`).
    public static func < (a: RecordID, b: RecordID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

/// The identity of one operation: the change that holds it (author and seq) and its index in that change.
public struct OpID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The device that wrote the change.
    public var device: DeviceID
    /// The change's sequence number in its device's log.
    public var seq: UInt64
    /// The operation's position in the change.
    public var index: UInt32

    /// Creates an operation id.
    public init(device: DeviceID, seq: UInt64, index: UInt32) {
        self.device = device
        self.seq = seq
        self.index = index
    }

    public static func < (a: OpID, b: OpID) -> Bool {
        if a.device != b.device { return a.device < b.device }
        return (a.seq, a.index) < (b.seq, b.index)
    }

    /// A short human reference: the first 8 hex digits of the device, the seq and the index.
    public var description: String { "\(device.hex.prefix(8))/\(seq).\(index)" }
}

/// Whether `a` sorts before `b`, byte by byte as `lexicographicallyPrecedes` (a shorter array that is a prefix of the
/// other sorts first), but eight bytes at a time read as big-endian integers: the generic version took 13 % of a
/// 100k-record `list` to sort its ids.
@inline(__always)
func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.withUnsafeBytes { x in
        b.withUnsafeBytes { y in
            let n = min(x.count, y.count)
            var i = 0
            while i + 8 <= n {
                let p = UInt64(bigEndian: x.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let q = UInt64(bigEndian: y.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if p != q { return p < q }
                i += 8
            }
            while i < n {
                if x[i] != y[i] { return x[i] < y[i] }
                i += 1
            }
            return x.count < y.count
        }
    }
}
