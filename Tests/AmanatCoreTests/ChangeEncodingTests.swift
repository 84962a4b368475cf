import AmanatCrypto
import Testing

@testable import AmanatCore

@Suite("Change encoding")
struct ChangeEncodingTests {
    static func ids() throws -> (OpID, OpID, OpID) {
        let a = try makeDevice(1)
        let b = try makeDevice(2)
        return (
            OpID(device: a, seq: 1, index: 0), OpID(device: a, seq: 300, index: 2),
            OpID(device: b, seq: 1, index: UInt32.max)
        )
    }

    /// One change per operation kind, with pred/observed lists already sorted (as decoding returns them).
    static func samples() throws -> [Change] {
        let record = try makeRecord(7)
        let (x, y, z) = try ids()
        let stamp = HLCTimestamp(wallMillis: 1_735_000_000_123, counter: 4)
        let hash = BLAKE2b.hash(Array("sealed".utf8))
        let operations: [[RecordOperation]] = [
            [.create(kind: "testimony")],
            [.set(field: "narrative", value: "Ö — شهادت", pred: [])],
            [.set(field: "title", value: "", pred: [x, y, z])],
            [.addTag("urgent")],
            [.removeTag("urgent", observed: [x, z])],
            [.delete(observed: [])],
            [.delete(observed: [x, y, z])],
            [.seal(contentHash: hash)],
            [],
            [
                .create(kind: "statement"), .set(field: "title", value: "t", pred: []),
                .set(field: "body", value: String(repeating: "b", count: 300), pred: [y]), .addTag("a"),
                .removeTag("b", observed: [z]), .seal(contentHash: hash), .delete(observed: [x]),
            ],
        ]
        return operations.map { Change(record: record, timestamp: stamp, operations: $0) }
    }

    @Test("every operation kind round-trips")
    func roundTrip() throws {
        for change in try Self.samples() {
            let bytes = change.encoded()
            #expect(try Change(decoding: bytes) == change, "\(change.operations)")
            #expect(try Change(decoding: change.encoded(padded: false)) == change)
        }
    }

    @Test("the header layout: version, record id, big-endian stamp, op count")
    func layout() throws {
        let record = try makeRecord(9)
        let change = Change(
            record: record, timestamp: HLCTimestamp(wallMillis: 0x0102_0304_0506_0708, counter: 0x0a0b_0c0d),
            operations: [.create(kind: "statement")])
        let expected: [UInt8] =
            [1] + record.bytes + [1, 2, 3, 4, 5, 6, 7, 8] + [0x0a, 0x0b, 0x0c, 0x0d] + [1]
            + [1, 9] + Array("statement".utf8)
        #expect(change.encoded(padded: false) == expected)
        #expect(change.encoded() == expected + [UInt8](repeating: 0, count: 64 - expected.count))
    }

    @Test("operation encodings: tag byte, strings, sorted id lists, raw 32-byte hash")
    func operationLayout() throws {
        let (x, _, z) = try Self.ids()
        var w = ByteWriter()
        RecordOperation.set(field: "f", value: "v", pred: [z, x]).encode(into: &w)
        let idX = x.device.bytes + [1, 0]
        let idZ = z.device.bytes + [1, 0xff, 0xff, 0xff, 0xff, 0x0f]
        #expect(w.bytes == [2, 1, UInt8(ascii: "f"), 1, UInt8(ascii: "v"), 2] + idX + idZ)
        var s = ByteWriter()
        let hash = [UInt8](repeating: 0xab, count: 32)
        RecordOperation.seal(contentHash: hash).encode(into: &s)
        #expect(s.bytes == [6] + hash)
        var t = ByteWriter()
        RecordOperation.addTag("x").encode(into: &t)
        RecordOperation.removeTag("x", observed: []).encode(into: &t)
        RecordOperation.delete(observed: []).encode(into: &t)
        #expect(t.bytes == [3, 1, UInt8(ascii: "x"), 4, 1, UInt8(ascii: "x"), 0, 5, 0])
    }

    @Test("plaintexts are zero-padded to a multiple of 64 bytes")
    func padding() throws {
        for change in try Self.samples() {
            let raw = change.encoded(padded: false)
            let padded = change.encoded()
            #expect(padded.count % Change.paddingBlock == 0)
            #expect(padded.count >= raw.count && padded.count < raw.count + Change.paddingBlock)
            #expect(Array(padded.prefix(raw.count)) == raw)
            #expect(padded.dropFirst(raw.count).allSatisfy { $0 == 0 })
        }
        #expect(Change.paddingBlock == 64)
    }

    @Test("an encoding that already fills whole blocks gets no extra block")
    func exactBlock() throws {
        let record = try makeRecord(1)
        var found = false
        for length in 0..<64 {
            let change = Change(
                record: record, timestamp: .zero, operations: [.create(kind: String(repeating: "k", count: length))])
            let raw = change.encoded(padded: false)
            if raw.count % 64 == 0 {
                found = true
                #expect(change.encoded() == raw)
            }
        }
        #expect(found)
    }

    @Test("a non-zero byte anywhere in the padding is rejected")
    func nonZeroPadding() throws {
        let change = try Self.samples()[0]
        let raw = change.encoded(padded: false)
        let padded = change.encoded()
        for index in raw.count..<padded.count {
            var bytes = padded
            bytes[index] = 1
            #expect(coreErrorCode { try Change(decoding: bytes) } == .malformed, "padding byte \(index)")
        }
        #expect(coreErrorCode { try Change(decoding: raw + [0x80]) } == .malformed)
    }

    @Test("unknown operation tags are rejected", arguments: [0, 9, 0x80, 0xff] as [UInt8])
    func unknownTag(_ tag: UInt8) throws {
        var bytes = try Self.samples()[0].encoded()
        let tagOffset = 1 + 16 + 8 + 4 + 1
        #expect(bytes[tagOffset] == 1)
        bytes[tagOffset] = tag
        #expect(coreErrorCode { try Change(decoding: bytes) } == .malformed)
    }

    @Test("unknown format versions are rejected as unsupported", arguments: [0, 2, 0xff] as [UInt8])
    func unknownVersion(_ version: UInt8) throws {
        var bytes = try Self.samples()[0].encoded()
        bytes[0] = version
        #expect(coreErrorCode { try Change(decoding: bytes) } == .unsupportedVersion)
    }

    @Test("every truncation of a change is rejected")
    func truncation() throws {
        for change in try Self.samples() {
            let raw = change.encoded(padded: false)
            for length in 0..<raw.count {
                #expect(
                    coreErrorCode { try Change(decoding: Array(raw.prefix(length))) } == .malformed,
                    "\(change.operations) cut to \(length)")
            }
        }
    }

    @Test("id lists are canonical: order and duplicates do not change the bytes")
    func canonicalIDLists() throws {
        let record = try makeRecord(3)
        let (x, y, z) = try Self.ids()
        func bytes(_ ids: [OpID]) -> [[UInt8]] {
            [
                RecordOperation.set(field: "f", value: "v", pred: ids),
                .removeTag("t", observed: ids),
                .delete(observed: ids),
            ].map { Change(record: record, timestamp: .zero, operations: [$0]).encoded() }
        }
        let canonical = bytes([x, y, z])
        #expect(bytes([z, y, x]) == canonical)
        #expect(bytes([y, x, z, x, y]) == canonical)
        #expect(bytes([z, z, z, y, x]) == canonical)
        #expect(bytes([x, y]) != canonical)
        // Decoding returns the canonical (sorted, de-duplicated) list.
        let decoded = try Change(decoding: canonical[2])
        #expect(decoded.operations == [.delete(observed: [x, y, z])])
    }

    @Test("op ids sort by device, then seq, then index")
    func opIDOrder() throws {
        let a = try makeDevice(1)
        let b = try makeDevice(2)
        #expect(OpID(device: a, seq: 9, index: 9) < OpID(device: b, seq: 1, index: 0))
        #expect(OpID(device: a, seq: 1, index: 9) < OpID(device: a, seq: 2, index: 0))
        #expect(OpID(device: a, seq: 2, index: 0) < OpID(device: a, seq: 2, index: 1))
    }

    @Test("an operation index above 32 bits is rejected")
    func indexOverflow() throws {
        let record = try makeRecord(1)
        var w = ByteWriter()
        w.write(Change.formatVersion)
        w.write(raw: record.bytes)
        w.write(bigEndian: UInt64(1))
        w.write(bigEndian: UInt32(0))
        w.write(varint: 1)
        w.write(5)  // delete
        w.write(varint: 1)
        w.write(raw: try makeDevice(1).bytes)
        w.write(varint: 1)
        w.write(varint: UInt64(UInt32.max) + 1)
        #expect(coreErrorCode { try Change(decoding: w.bytes) } == .malformed)
    }

    @Test("a seal must carry a full 32-byte hash")
    func shortSeal() throws {
        let record = try makeRecord(1)
        var bytes = Change(
            record: record, timestamp: .zero, operations: [.seal(contentHash: [UInt8](repeating: 1, count: 32))]
        )
        .encoded(padded: false)
        bytes.removeLast()
        #expect(coreErrorCode { try Change(decoding: bytes) } == .malformed)
    }

    @Test("an operation count larger than the data is rejected")
    func hugeCount() throws {
        var bytes = try Self.samples()[0].encoded(padded: false)
        let countOffset = 1 + 16 + 8 + 4
        bytes.replaceSubrange(countOffset..<countOffset + 1, with: [0xff, 0xff, 0xff, 0xff, 0x0f])
        #expect(coreErrorCode { try Change(decoding: bytes) } == .malformed)
    }

    @Test("ids have fixed sizes")
    func idSizes() throws {
        #expect(coreErrorCode { try DeviceID([UInt8](repeating: 0, count: 31)) } == .malformed)
        #expect(coreErrorCode { try DeviceID([UInt8](repeating: 0, count: 33)) } == .malformed)
        #expect(coreErrorCode { try RecordID([UInt8](repeating: 0, count: 15)) } == .malformed)
        #expect(coreErrorCode { try RecordID([UInt8](repeating: 0, count: 17)) } == .malformed)
        let record = try makeRecord(0xab)
        #expect(RecordID(hex: record.hex) == record)
        #expect(RecordID(hex: String(record.hex.dropLast(2))) == nil)
        #expect(RecordID(hex: "zz" + String(record.hex.dropFirst(2))) == nil)
    }
}
