#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Appends the primitive encodings of Protocol/change.md §1 to a byte buffer.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// Creates an empty writer.
    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    /// Appends one byte.
    public mutating func write(_ byte: UInt8) { bytes.append(byte) }

    /// Appends raw bytes with no length prefix.
    public mutating func write(raw: [UInt8]) { bytes.append(contentsOf: raw) }

    /// Appends a big-endian fixed-width unsigned integer.
    public mutating func write<T: FixedWidthInteger & UnsignedInteger>(bigEndian value: T) {
        var v = value.bigEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    /// Appends a record id's 16 bytes.
    public mutating func write(recordID: RecordID) {
        write(bigEndian: recordID.high)
        write(bigEndian: recordID.low)
    }

    /// Appends an unsigned LEB128 varint.
    public mutating func write(varint value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends a varint length followed by the bytes.
    public mutating func write(lengthPrefixed data: [UInt8]) {
        write(varint: UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    /// Appends a varint length followed by the string's UTF-8 bytes.
    public mutating func write(string: String) {
        write(lengthPrefixed: Array(string.utf8))
    }
}

/// Reads the primitive encodings of Protocol/change.md §1, throwing ``CoreError/Code/malformed`` on any overrun.
public struct ByteReader {
    private let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    /// Reads from `bytes`, starting at `offset`.
    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }

    /// The bytes not read yet.
    public var remaining: ArraySlice<UInt8> { bytes[offset...] }

    /// Reads one byte.
    public mutating func readByte() throws -> UInt8 {
        guard offset < bytes.count else { throw CoreError(.malformed, "The data ends too early.") }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads `count` raw bytes.
    public mutating func read(count: Int) throws -> [UInt8] {
        guard count >= 0, count <= bytes.count - offset else {
            throw CoreError(.malformed, "The data ends too early.")
        }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a big-endian fixed-width unsigned integer.
    public mutating func read<T: FixedWidthInteger & UnsignedInteger>(bigEndian type: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= bytes.count - offset else { throw CoreError(.malformed, "The data ends too early.") }
        defer { offset += size }
        // Byte by byte from the buffer: reading an array first allocated one for every number.
        var value = T(0)
        for byte in bytes[offset..<offset + size] { value = value << 8 | T(byte) }
        return value
    }

    /// Reads a 16-byte record id.
    public mutating func readRecordID() throws -> RecordID {
        let high = try read(bigEndian: UInt64.self)
        return RecordID(high: high, low: try read(bigEndian: UInt64.self))
    }

    /// Reads a minimal unsigned LEB128 varint of at most 10 bytes.
    public mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for index in 0..<10 {
            let byte = try readByte()
            if index == 9 && byte > 1 { throw CoreError(.malformed, "A number is too large.") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                if index > 0 && byte == 0 { throw CoreError(.malformed, "A number is not minimally encoded.") }
                return result
            }
            shift += 7
        }
        throw CoreError(.malformed, "A number is too long.")
    }

    /// Reads a count, bounded so that a hostile length cannot make the reader allocate more than the input holds.
    public mutating func readCount(minimumElementSize: Int = 1) throws -> Int {
        let n = try readVarint()
        guard n <= UInt64(bytes.count - offset) / UInt64(max(minimumElementSize, 1)) else {
            throw CoreError(.malformed, "A length is larger than the data.")
        }
        return Int(n)
    }

    /// Reads a varint-length-prefixed byte string.
    public mutating func readLengthPrefixed() throws -> [UInt8] {
        try read(count: try readCount())
    }

    /// Reads a varint-length-prefixed UTF-8 string, rejecting invalid UTF-8.
    public mutating func readString() throws -> String {
        let count = try readCount()
        defer { offset += count }
        return try bytes.withUnsafeBufferPointer { all in
            let raw = UnsafeBufferPointer(rebasing: all[offset..<offset + count])
            // `String(decoding:)` repairs invalid UTF-8 rather than refusing it, and is much faster than the generic
            // `String(validating:)`: a string that differs from its bytes was repaired, so they were not UTF-8.
            var s = String(decoding: raw, as: UTF8.self)
            // memcmp: the generic `elementsEqual` compared a byte at a time (4 % of an export of 1 MiB narratives).
            let same = s.withUTF8 {
                $0.count == count && (count == 0 || memcmp($0.baseAddress!, raw.baseAddress!, count) == 0)
            }
            guard same else { throw CoreError(.malformed, "A text field is not valid UTF-8.") }
            return s
        }
    }
}
