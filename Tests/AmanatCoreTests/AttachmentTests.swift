import AmanatCrypto
import Foundation
import Testing

@testable import AmanatCore

/// One sealed chunk in the vector file.
struct ChunkVector: Codable, Equatable {
    var plaintext: String
    var address: String
    var sealed: String
}

/// Protocol/vectors/attachment-v1.json: chunk keys, sealed chunks, a chunk root and an attachment id.
struct AttachmentVectorFile: Codable, Equatable {
    var description: String
    var vaultKey: String
    var epoch: UInt32
    var addressKey: String
    var encryptionKey: String
    var chunks: [ChunkVector]
    var chunkSize: UInt32
    var size: UInt64
    var chunkRoot: String
    var attachOp: OpIDVector
    var attachmentID: String
}

@Suite("Attachments: chunks, operations and state")
struct AttachmentTests {
    static let vaultKey = VaultKey(epoch: 1, root: SecureBytes(counting(from: 0x80, count: 32)))

    static func vectorFile() throws -> AttachmentVectorFile {
        let keys = ChunkKeys(vaultKey)
        let plaintexts: [[UInt8]] = [
            Array("The first chunk of a recording.".utf8), counting(from: 0x00, count: 200), [],
        ]
        let chunks = try plaintexts.map { plain -> ChunkVector in
            let (address, sealed) = try keys.seal(plain)
            return ChunkVector(plaintext: Hex.encode(plain), address: Hex.encode(address), sealed: Hex.encode(sealed))
        }
        let addresses = try chunks.map { try unhex($0.address) }
        let op = OpID(device: try DeviceID(counting(from: 0x10, count: 32)), seq: 7, index: 0)
        return AttachmentVectorFile(
            description:
                "Amanat attachment chunks v1 (Protocol/attachments.md §2-§3): chunk keys from a vault key, sealed chunks, the chunk root of the three addresses as a 4096-byte-chunk file of 10000 bytes, and an attachment id.",
            vaultKey: Hex.encode(counting(from: 0x80, count: 32)), epoch: 1,
            addressKey: Hex.encode(vaultKey.subkey(id: 6, context: "amnt-cha").copyBytes()),
            encryptionKey: Hex.encode(vaultKey.subkey(id: 7, context: "amnt-chk").copyBytes()), chunks: chunks,
            chunkSize: 4096, size: 10_000,
            chunkRoot: Hex.encode(AttachmentSpec.root(chunkSize: 4096, size: 10_000, chunks: addresses)),
            attachOp: VectorCodec.vector(op), attachmentID: AttachmentInfo.id(of: op))
    }

    @Test func theVectorFileMatchesTheCode() throws {
        let produced = try Self.vectorFile()
        if ProtocolVectorTests.writing { try ProtocolVectorTests.write(produced, "attachment-v1.json") }
        #expect(try ProtocolVectorTests.load(AttachmentVectorFile.self, "attachment-v1.json") == produced)
    }

    @Test func equalChunksSealEquallyAndOpenOnlyAsTheirAddress() throws {
        let keys = ChunkKeys(Self.vaultKey)
        let a = counting(from: 0x01, count: 4096)
        let b = counting(from: 0x02, count: 4096)
        let (addressA, sealedA) = try keys.seal(a)
        let (addressB, sealedB) = try keys.seal(b)
        #expect(try keys.seal(a).sealed == sealedA, "convergent: equal content, equal bytes")
        #expect(addressA != addressB)
        #expect(try keys.open(sealedA, address: addressA, length: 4096).get() == a)

        var flipped = sealedA
        flipped[flipped.count - 20] ^= 0x80
        #expect(keys.open(flipped, address: addressA, length: 4096) == .failure(ChunkOpenError(problem: .tampered)))
        #expect(keys.open(sealedB, address: addressA, length: 4096) == .failure(ChunkOpenError(problem: .swapped)))
        #expect(
            keys.open(Array(sealedA.dropLast(10)), address: addressA, length: 4096)
                == .failure(ChunkOpenError(problem: .truncated)))
        #expect(
            keys.open(Array(sealedA.prefix(20)), address: addressA, length: 4096)
                == .failure(ChunkOpenError(problem: .truncated)))
        #expect(
            keys.open(sealedA + [0], address: addressA, length: 4096) == .failure(ChunkOpenError(problem: .tampered)))
        // Rewriting the stated address to the expected one does not help: the AEAD is bound to the address.
        var relabelled = sealedB
        relabelled.replaceSubrange(5..<37, with: addressA)
        #expect(keys.open(relabelled, address: addressA, length: 4096) == .failure(ChunkOpenError(problem: .tampered)))
        // Another epoch's keys neither address nor open it.
        let other = ChunkKeys(VaultKey(epoch: 2, root: SecureBytes(counting(from: 0x81, count: 32))))
        #expect(other.address(of: a) != addressA)
        #expect(other.open(sealedA, address: addressA, length: 4096) == .failure(ChunkOpenError(problem: .tampered)))
    }

    @Test func anAttachOperationIsCheckedWhenDecoded() throws {
        let record = try RecordID(counting(from: 0x30, count: 16))
        let spec = AttachmentSpec(
            epoch: 1, size: 8193, sha256: counting(from: 0, count: 32), mediaType: "audio/mp4", name: "a.m4a",
            note: "", metadataFlags: 0, chunkSize: 4096,
            chunks: [counting(from: 1, count: 32), counting(from: 2, count: 32), counting(from: 3, count: 32)])
        let change = Change(
            record: record, timestamp: HLCTimestamp(wallMillis: 1, counter: 0), operations: [.attach(spec)])
        #expect(try Change(decoding: change.encoded()) == change)

        func refused(_ edit: (inout AttachmentSpec) -> Void, root: [UInt8]? = nil) -> Bool {
            var bad = spec
            edit(&bad)
            var w = ByteWriter()
            w.write(1)
            w.write(raw: record.bytes)
            w.write(bigEndian: UInt64(1))
            w.write(bigEndian: UInt32(0))
            w.write(varint: 1)
            w.write(9)
            w.write(bigEndian: bad.epoch)
            w.write(bigEndian: bad.size)
            w.write(raw: bad.sha256)
            w.write(string: bad.mediaType)
            w.write(string: bad.name)
            w.write(string: bad.note)
            w.write(bad.metadataFlags)
            w.write(bigEndian: bad.chunkSize)
            w.write(raw: root ?? bad.root)
            w.write(varint: UInt64(bad.chunks.count))
            for c in bad.chunks { w.write(raw: c) }
            return (try? Change(decoding: w.bytes)) == nil
        }
        #expect(!refused { _ in })
        #expect(refused { $0.size = 4096 })  // two chunks too many for the size
        #expect(refused { $0.chunks.removeLast() })
        #expect(refused({ _ in }, root: counting(from: 9, count: 32)))
        #expect(refused { $0.chunkSize = 1024 })
        #expect(refused { $0.chunkSize = 8 << 20 })
        #expect(refused { $0.metadataFlags = 4 })
        #expect(refused { $0.epoch = 0 })
        // A count of chunks larger than the bytes that follow is refused before any allocation.
        var huge = ByteWriter()
        huge.write(1)
        huge.write(raw: record.bytes)
        huge.write(bigEndian: UInt64(1))
        huge.write(bigEndian: UInt32(0))
        huge.write(varint: 1)
        huge.write(9)
        huge.write(
            raw: [UInt8](repeating: 0, count: 4 + 8 + 32) + [0, 0, 0, 0] + [0, 0, 0x10, 0]
                + [UInt8](repeating: 0, count: 32))
        huge.write(varint: UInt64(1) << 40)
        #expect((try? Change(decoding: huge.bytes)) == nil)
    }

    @Test func attachmentsMergeLikeTheRestOfTheRecordAndEncodeCanonically() throws {
        let record = try RecordID(counting(from: 0x30, count: 16))
        let a = try DeviceID(counting(from: 0x10, count: 32))
        let b = try DeviceID(counting(from: 0xe0, count: 32))
        let spec = AttachmentSpec(
            epoch: 1, size: 5, sha256: counting(from: 0, count: 32), mediaType: "application/pdf", name: "scan.pdf",
            note: "page 1", metadataFlags: 0, chunkSize: 4096, chunks: [counting(from: 1, count: 32)])
        let create = AuthoredChange(
            author: a, seq: 1,
            change: Change(
                record: record, timestamp: HLCTimestamp(wallMillis: 1, counter: 0),
                operations: [.create(kind: "testimony")]))
        let attach = AuthoredChange(
            author: b, seq: 1,
            change: Change(
                record: record, timestamp: HLCTimestamp(wallMillis: 2, counter: 0), operations: [.attach(spec)]))
        let detach = AuthoredChange(
            author: a, seq: 2,
            change: Change(
                record: record, timestamp: HLCTimestamp(wallMillis: 3, counter: 0),
                operations: [.detach(attachment: attach.opID(0))]))
        var one = RecordState(id: record)
        for c in [create, attach, detach] { one.apply(c) }
        var two = RecordState(id: record)
        for c in [detach, attach, create, attach] { two.apply(c) }
        #expect(one == two && one.encoded() == two.encoded())
        #expect(one.attachments.isEmpty && one.allAttachments.count == 1)
        #expect(try RecordState(decoding: one.encoded()) == one)

        var listed = RecordState(id: record)
        for c in [create, attach] { listed.apply(c) }
        #expect(listed.attachments.map(\.id) == [AttachmentInfo.id(of: attach.opID(0))])
        #expect(try RecordState(decoding: listed.encoded()) == listed)
        // A record without attachments encodes as before (no new section).
        var plain = RecordState(id: record)
        plain.apply(create)
        #expect(try RecordState(decoding: plain.encoded()).encoded() == plain.encoded())
        #expect(!plain.encoded().isEmpty && plain.attachmentOps.isEmpty)
    }

    @Test func mediaTypesAndMetadataComeFromTheContent() throws {
        #expect(MediaType.sniff([0xFF, 0xD8, 0xFF, 0xE0]) == "image/jpeg")
        #expect(MediaType.sniff(Array("%PDF-1.4".utf8)) == "application/pdf")
        #expect(MediaType.sniff([0, 0, 0, 20] + Array("ftypmif1".utf8)) == "image/heic")
        #expect(MediaType.sniff([0xFF, 0xFB, 0x90]) == "audio/mpeg")
        #expect(MediaType.sniff(Array("plain text".utf8)) == "application/octet-stream")
        #expect(MediaType.sniff([]) == "application/octet-stream")

        let scanner = MetadataScanner()
        scanner.feed([0, 0, 0, 20] + Array("ftypisom".utf8) + [UInt8](repeating: 0, count: 100), 0)
        scanner.feed([UInt8](repeating: 0, count: 50) + [0xA9] + Array("xyz+34.5+069.1/".utf8), 1)
        #expect(scanner.flags(mediaType: "video/mp4") == AttachmentSpec.locationFlag)
        #expect(scanner.flags(mediaType: "application/pdf") == 0)
        // An IFD whose offset points past the end is ignored, never read out of bounds.
        let broken = Array("Exif".utf8) + [0, 0] + Array("MM".utf8) + [0, 42, 0xFF, 0xFF, 0xFF, 0xF0]
        #expect(MetadataScanner.scan(broken) == 0)
        let xmp = Array("<x:xmpmeta><exif:GPSLatitude>34,30.0N</exif:GPSLatitude>".utf8)
        #expect(MetadataScanner.scan(xmp) == AttachmentSpec.locationFlag)
    }
}
