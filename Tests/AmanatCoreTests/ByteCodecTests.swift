import Testing

@testable import AmanatCore

@Suite("ByteWriter and ByteReader")
struct ByteCodecTests {
    static func encodeVarint(_ value: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.write(varint: value)
        return w.bytes
    }

    @Test(
        "varints round-trip at the boundaries with the LEB128 length",
        arguments: [
            (0, 1), (1, 1), (127, 1), (128, 2), (255, 2), (16383, 2), (16384, 3),
            (UInt64(UInt32.max), 5), (1 << 32, 5), (1 << 35 - 1, 5), (1 << 35, 6), (1 << 63 - 1, 9), (1 << 63, 10),
            (UInt64.max, 10),
        ] as [(UInt64, Int)])
    func varintRoundTrip(value: UInt64, length: Int) throws {
        let bytes = Self.encodeVarint(value)
        #expect(bytes.count == length)
        // Every byte but the last has the continuation bit; the last does not.
        #expect(bytes.dropLast().allSatisfy { $0 & 0x80 != 0 })
        #expect(bytes.last.map { $0 & 0x80 == 0 } == true)
        var r = ByteReader(bytes)
        #expect(try r.readVarint() == value)
        #expect(r.isAtEnd)
    }

    @Test("varint bytes are little-endian base-128 groups")
    func varintLayout() {
        #expect(Self.encodeVarint(0) == [0x00])
        #expect(Self.encodeVarint(127) == [0x7f])
        #expect(Self.encodeVarint(128) == [0x80, 0x01])
        #expect(Self.encodeVarint(300) == [0xac, 0x02])
        #expect(Self.encodeVarint(1 << 32) == [0x80, 0x80, 0x80, 0x80, 0x10])
        #expect(Self.encodeVarint(UInt64.max) == [UInt8](repeating: 0xff, count: 9) + [0x01])
    }

    @Test(
        "non-minimal varints are rejected",
        arguments: [
            [0x80, 0x00], [0xff, 0x00], [0x80, 0x80, 0x00], [0x81, 0x80, 0x80, 0x00],
            [UInt8](repeating: 0x80, count: 9) + [0x00],
        ] as [[UInt8]])
    func nonMinimal(_ bytes: [UInt8]) {
        var r = ByteReader(bytes)
        #expect(coreErrorCode { try r.readVarint() } == .malformed)
    }

    @Test(
        "varints beyond 64 bits or longer than 10 bytes are rejected",
        arguments: [
            [UInt8](repeating: 0xff, count: 9) + [0x02],  // 2^64 + …: overflows
            [UInt8](repeating: 0xff, count: 9) + [0x7f],
            [UInt8](repeating: 0x80, count: 9) + [0x81, 0x00],  // 11 bytes
            [UInt8](repeating: 0x80, count: 10) + [0x01],
            [UInt8](repeating: 0xff, count: 20),
        ] as [[UInt8]])
    func overlong(_ bytes: [UInt8]) {
        var r = ByteReader(bytes)
        #expect(coreErrorCode { try r.readVarint() } == .malformed)
    }

    @Test("a varint cut short is rejected", arguments: [[], [0x80], [0xff, 0xff], [0x80, 0x80, 0x80]] as [[UInt8]])
    func truncatedVarint(_ bytes: [UInt8]) {
        var r = ByteReader(bytes)
        #expect(coreErrorCode { try r.readVarint() } == .malformed)
    }

    @Test("lengths larger than the remaining data are rejected before anything is allocated")
    func hostileLengths() throws {
        for length: UInt64 in [4, 1000, 1 << 40, 1 << 62, UInt64(Int.max), UInt64.max] {
            var w = ByteWriter()
            w.write(varint: length)
            w.write(raw: [1, 2, 3])
            var r = ByteReader(w.bytes)
            #expect(coreErrorCode { try r.readLengthPrefixed() } == .malformed, "length \(length)")
            var r2 = ByteReader(w.bytes)
            #expect(coreErrorCode { try r2.readString() } == .malformed, "length \(length)")
            var r3 = ByteReader(w.bytes)
            #expect(coreErrorCode { try r3.readCount() } == .malformed, "length \(length)")
        }
        // A count of elements is bounded by what the remaining bytes can hold at the minimum element size.
        var w = ByteWriter()
        w.write(varint: 2)
        w.write(raw: [UInt8](repeating: 0, count: 67))
        var tight = ByteReader(w.bytes)
        #expect(coreErrorCode { try tight.readCount(minimumElementSize: 34) } == .malformed)
        var ok = ByteReader(w.bytes)
        #expect(try ok.readCount(minimumElementSize: 33) == 2)
        // Exactly the remaining length is fine.
        var exact = ByteWriter()
        exact.write(lengthPrefixed: [7, 8, 9])
        var r = ByteReader(exact.bytes)
        #expect(try r.readLengthPrefixed() == [7, 8, 9])
        #expect(r.isAtEnd)
    }

    @Test("raw reads past the end or of negative length are rejected and consume nothing")
    func rawReads() throws {
        var r = ByteReader([1, 2, 3])
        #expect(coreErrorCode { try r.read(count: 4) } == .malformed)
        #expect(coreErrorCode { try r.read(count: -1) } == .malformed)
        #expect(r.offset == 0)
        #expect(try r.read(count: 2) == [1, 2])
        #expect(Array(r.remaining) == [3])
        #expect(try r.readByte() == 3)
        #expect(coreErrorCode { try r.readByte() } == .malformed)
        #expect(try r.read(count: 0) == [])
        #expect(r.isAtEnd)
        var offset = ByteReader([9, 8, 7], offset: 1)
        #expect(try offset.readByte() == 8)
    }

    @Test("fixed-width integers are big-endian")
    func bigEndian() throws {
        var w = ByteWriter()
        w.write(bigEndian: UInt32(0x0102_0304))
        w.write(bigEndian: UInt64(0x1122_3344_5566_7788))
        w.write(bigEndian: UInt16(0xabcd))
        #expect(w.bytes == [1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xab, 0xcd])
        var r = ByteReader(w.bytes)
        #expect(try r.read(bigEndian: UInt32.self) == 0x0102_0304)
        #expect(try r.read(bigEndian: UInt64.self) == 0x1122_3344_5566_7788)
        #expect(try r.read(bigEndian: UInt16.self) == 0xabcd)
        #expect(coreErrorCode { try r.read(bigEndian: UInt8.self) } == .malformed)
        var short = ByteReader([1, 2, 3])
        #expect(coreErrorCode { try short.read(bigEndian: UInt32.self) } == .malformed)
    }

    @Test(
        "strings round-trip as varint length + UTF-8",
        arguments: [
            "", "a", "ö", "افغانستان", "👩🏽‍⚖️", String(repeating: "x", count: 200),
            // U+FFFD itself and a byte-order mark: a decoder that repairs or strips would change their bytes.
            "\u{FFFD}", "\u{FEFF}a", "a\u{0}b",
        ])
    func strings(_ text: String) throws {
        var w = ByteWriter()
        w.write(string: text)
        let utf8 = Array(text.utf8)
        #expect(w.bytes == Self.encodeVarint(UInt64(utf8.count)) + utf8)
        var r = ByteReader(w.bytes)
        #expect(try r.readString() == text)
        #expect(r.isAtEnd)
    }

    @Test(
        "invalid UTF-8 is rejected",
        arguments: [
            [0xc3, 0x28],  // bad continuation
            [0xc0, 0xaf],  // overlong "/"
            [0xed, 0xa0, 0x80],  // UTF-16 surrogate
            [0xf4, 0x90, 0x80, 0x80],  // beyond U+10FFFF
            [0xff],
            [0x61, 0x80],  // stray continuation
            [0xe2, 0x82],  // truncated sequence
            [0xef, 0xbf, 0xbd, 0xc3],  // a real U+FFFD, then a truncated sequence
        ] as [[UInt8]])
    func invalidUTF8(_ raw: [UInt8]) {
        var w = ByteWriter()
        w.write(lengthPrefixed: raw)
        var r = ByteReader(w.bytes)
        #expect(coreErrorCode { try r.readString() } == .malformed)
    }
}
