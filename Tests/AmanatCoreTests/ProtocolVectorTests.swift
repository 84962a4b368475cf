import AmanatCrypto
import Foundation
import Testing

@testable import AmanatCore

// Test vectors for other implementations of the protocol, produced by this code.
//
// `AMANAT_WRITE_VECTORS=1 swift test --filter ProtocolVectorTests` (re)writes Protocol/vectors/*.json from the code;
// a normal run reads them and checks the code still produces exactly the same bytes.

/// An operation id in a vector file.
struct OpIDVector: Codable, Equatable {
    var device: String
    var seq: UInt64
    var index: UInt32
}

/// One operation in a vector file; `type` says which of the optional members are present.
struct OperationVector: Codable, Equatable {
    var type: String
    var kind: String?
    var field: String?
    var value: String?
    var tag: String?
    var pred: [OpIDVector]?
    var observed: [OpIDVector]?
    var contentHash: String?
    var vault: String?
    var record: String?
    var envelope: String?
    var key: String?
    var attachment: AttachmentVector?
    var attachmentOp: OpIDVector?
}

/// What an `attach` operation states, in a vector file.
struct AttachmentVector: Codable, Equatable {
    var epoch: UInt32
    var size: UInt64
    var sha256: String
    var mediaType: String
    var name: String
    var note: String
    var metadataFlags: UInt8
    var chunkSize: UInt32
    var chunkRoot: String
    var chunks: [String]
}

/// One change and its canonical encoding.
struct ChangeVector: Codable, Equatable {
    var name: String
    var record: String
    var wallMillis: UInt64
    var counter: UInt32
    var operations: [OperationVector]
    /// The canonical encoding before padding.
    var unpadded: String
    /// The plaintext that is encrypted: the encoding zero-padded to a multiple of 64 bytes.
    var encoded: String
}

struct ChangeVectorFile: Codable, Equatable {
    var description: String
    var cases: [ChangeVector]
}

/// One envelope of a device's log, with every intermediate value.
struct EnvelopeVector: Codable, Equatable {
    var seq: UInt64
    var previousHash: String
    var nonce: String
    /// The padded change plaintext.
    var plaintext: String
    var envelopeKey: String
    var header: String
    var ciphertextHash: String
    var signature: String
    var envelope: String
    var envelopeHash: String
    /// The envelope purged (Protocol/envelope.md §7): header ‖ "AMNP" ‖ ciphertext hash ‖ signature.
    var purged: String
}

struct EnvelopeVectorFile: Codable, Equatable {
    var description: String
    var deviceSeed: String
    var devicePublicKey: String
    var vaultID: String
    var vaultKey: String
    var keyEpoch: UInt32
    var envelopes: [EnvelopeVector]
}

enum VectorCodec {
    static func vector(_ id: OpID) -> OpIDVector { OpIDVector(device: id.device.hex, seq: id.seq, index: id.index) }

    static func opID(_ v: OpIDVector) throws -> OpID {
        OpID(device: try DeviceID(try unhex(v.device)), seq: v.seq, index: v.index)
    }

    static func vector(_ op: RecordOperation) -> OperationVector {
        switch op {
        case .create(let kind): OperationVector(type: "create", kind: kind)
        case .set(let field, let value, let pred):
            OperationVector(type: "set", field: field, value: value, pred: pred.sorted().map(vector))
        case .addTag(let tag): OperationVector(type: "addTag", tag: tag)
        case .removeTag(let tag, let observed):
            OperationVector(type: "removeTag", tag: tag, observed: observed.sorted().map(vector))
        case .delete(let observed): OperationVector(type: "delete", observed: observed.sorted().map(vector))
        case .seal(let hash): OperationVector(type: "seal", contentHash: Hex.encode(hash))
        case .origin(let vault, let record):
            OperationVector(type: "origin", vault: Hex.encode(vault), record: record.hex)
        case .custody(let envelope, let key):
            OperationVector(type: "custody", envelope: Hex.encode(envelope), key: Hex.encode(key))
        case .attach(let spec):
            OperationVector(
                type: "attach",
                attachment: AttachmentVector(
                    epoch: spec.epoch, size: spec.size, sha256: Hex.encode(spec.sha256), mediaType: spec.mediaType,
                    name: spec.name, note: spec.note, metadataFlags: spec.metadataFlags, chunkSize: spec.chunkSize,
                    chunkRoot: Hex.encode(spec.root), chunks: spec.chunks.map { Hex.encode($0) }))
        case .detach(let op): OperationVector(type: "detach", attachmentOp: vector(op))
        }
    }

    static func operation(_ v: OperationVector) throws -> RecordOperation {
        switch v.type {
        case "create": return .create(kind: try #require(v.kind))
        case "set":
            return .set(field: try #require(v.field), value: try #require(v.value), pred: try (v.pred ?? []).map(opID))
        case "addTag": return .addTag(try #require(v.tag))
        case "removeTag": return .removeTag(try #require(v.tag), observed: try (v.observed ?? []).map(opID))
        case "delete": return .delete(observed: try (v.observed ?? []).map(opID))
        case "seal": return .seal(contentHash: try unhex(try #require(v.contentHash)))
        case "origin":
            return .origin(
                vault: try unhex(try #require(v.vault)), record: try RecordID(try unhex(try #require(v.record))))
        case "custody":
            return .custody(envelope: try unhex(try #require(v.envelope)), key: try unhex(try #require(v.key)))
        case "attach":
            let a = try #require(v.attachment)
            return .attach(
                AttachmentSpec(
                    epoch: a.epoch, size: a.size, sha256: try unhex(a.sha256), mediaType: a.mediaType, name: a.name,
                    note: a.note, metadataFlags: a.metadataFlags, chunkSize: a.chunkSize,
                    chunks: try a.chunks.map { try unhex($0) }))
        case "detach": return .detach(attachment: try opID(try #require(v.attachmentOp)))
        default:
            Issue.record("unknown operation type \(v.type)")
            return .create(kind: "")
        }
    }
}

@Suite("Protocol test vectors", .serialized)
struct ProtocolVectorTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol").appendingPathComponent("vectors")

    static var writing: Bool { ProcessInfo.processInfo.environment["AMANAT_WRITE_VECTORS"] == "1" }

    // MARK: Inputs (fixed bytes, so the outputs are deterministic)

    static func changes() throws -> [(String, Change)] {
        let deviceA = try DeviceID(counting(from: 0x10, count: 32))
        let deviceB = try DeviceID(counting(from: 0xe0, count: 32))
        let record = try RecordID(counting(from: 0x30, count: 16))
        let stamp = HLCTimestamp(wallMillis: 1_735_689_600_000, counter: 0)
        let a1 = OpID(device: deviceA, seq: 1, index: 1)
        let a2 = OpID(device: deviceA, seq: 2, index: 0)
        let b1 = OpID(device: deviceB, seq: 1, index: 0)
        let big = OpID(device: deviceB, seq: 300, index: 128)
        let sealHash = RecordState.sealHash(
            kind: "testimony", fields: [("narrative", "They came at night."), ("witness", "W-17")])
        func change(_ ops: [RecordOperation], counter: UInt32 = 0) -> Change {
            Change(
                record: record, timestamp: HLCTimestamp(wallMillis: stamp.wallMillis, counter: counter), operations: ops
            )
        }
        return [
            ("create", change([.create(kind: "statement")])),
            ("set without pred", change([.set(field: "title", value: "Statement on recognition", pred: [])])),
            ("set overwriting two values (pred sorted)", change([.set(field: "title", value: "v2", pred: [b1, a1])])),
            ("add tag", change([.addTag("urgent")], counter: 7)),
            ("remove tag", change([.removeTag("urgent", observed: [big, a2])])),
            ("delete", change([.delete(observed: [a1, a2, b1])])),
            ("seal", change([.seal(contentHash: sealHash)])),
            ("no operations", change([])),
            (
                "testimony with several operations and a unicode value",
                change([
                    .create(kind: "testimony"), .set(field: "witness", value: "W-17", pred: []),
                    .set(field: "location", value: "کابل", pred: []),
                ])
            ),
            (
                "long value spanning several blocks",
                change([.set(field: "narrative", value: String(repeating: "They came at night. ", count: 12), pred: [])]
                )
            ),
            (
                "import: origin and kept original envelopes (a change with its key, a membership entry without)",
                change([
                    .create(kind: "testimony"),
                    .origin(
                        vault: counting(from: 0xa0, count: 16), record: try RecordID(counting(from: 0x50, count: 16))),
                    .custody(envelope: counting(from: 0x01, count: 70), key: counting(from: 0x80, count: 32)),
                    .custody(envelope: counting(from: 0x02, count: 3), key: []),
                ])
            ),
            (
                "attach: a 10000-byte photo in three 4096-byte chunks, with location and device metadata",
                change([
                    .attach(
                        AttachmentSpec(
                            epoch: 1, size: 10_000, sha256: counting(from: 0x20, count: 32), mediaType: "image/jpeg",
                            name: "IMG_0042.jpg", note: "یادداشت", metadataFlags: 3, chunkSize: 4096,
                            chunks: [
                                counting(from: 0x30, count: 32), counting(from: 0x50, count: 32),
                                counting(from: 0x70, count: 32),
                            ]))
                ])
            ),
            ("detach", change([.detach(attachment: a2)])),
        ]
    }

    static let deviceSeed = counting(from: 0x00, count: 32)
    static let vaultID = counting(from: 0xa0, count: 16)
    static let vaultKeyBytes = counting(from: 0x80, count: 32)
    static let keyEpoch: UInt32 = 1
    static let nonces = [counting(from: 0x40, count: 24), counting(from: 0x60, count: 24)]

    // MARK: Producing the vectors

    static func changeFile() throws -> ChangeVectorFile {
        let cases = try changes().map { name, change in
            ChangeVector(
                name: name, record: change.record.hex, wallMillis: change.timestamp.wallMillis,
                counter: change.timestamp.counter, operations: change.operations.map(VectorCodec.vector),
                unpadded: Hex.encode(change.encoded(padded: false)), encoded: Hex.encode(change.encoded()))
        }
        return ChangeVectorFile(
            description: "Amanat change encoding v1 (Protocol/change.md): operations and their canonical bytes.",
            cases: cases)
    }

    /// Builds an envelope exactly as `Envelope.seal` does, but with a given nonce.
    static func seal(
        _ plaintext: [UInt8], key: VaultKey, signer: SigningKeyPair, seq: UInt64, previousHash: [UInt8],
        nonce: [UInt8], vaultID: [UInt8] = vaultID
    ) throws -> Envelope {
        let author = try DeviceID(signer.publicKey)
        let header = EnvelopeHeader(
            vaultID: vaultID, author: author, seq: seq, previousHash: previousHash, keyEpoch: key.epoch, nonce: nonce,
            ciphertextLength: UInt32(plaintext.count + AEAD.tagLength))
        let headerBytes = header.encoded()
        let ciphertext = try AEAD.seal(
            plaintext, additionalData: headerBytes, nonce: nonce, key: key.envelopeKey(author: author, seq: seq))
        let signature = signer.sign(headerBytes + BLAKE2b.hash(ciphertext))
        return Envelope(header: header, ciphertext: ciphertext, signature: signature)
    }

    static func envelopeChanges() throws -> [Change] {
        let all = try changes().map(\.1)
        return [all[8], all[1]]
    }

    static func envelopeFile() throws -> EnvelopeVectorFile {
        let signer = try SigningKeyPair(seed: SecureBytes(deviceSeed))
        let key = VaultKey(epoch: keyEpoch, root: SecureBytes(vaultKeyBytes))
        let author = try DeviceID(signer.publicKey)
        var previous = ChainHead.empty
        var vectors: [EnvelopeVector] = []
        for (offset, change) in try envelopeChanges().enumerated() {
            let seq = UInt64(offset + 1)
            let plaintext = change.encoded()
            let e = try seal(
                plaintext, key: key, signer: signer, seq: seq, previousHash: previous.hash, nonce: nonces[offset])
            vectors.append(
                EnvelopeVector(
                    seq: seq, previousHash: Hex.encode(previous.hash), nonce: Hex.encode(nonces[offset]),
                    plaintext: Hex.encode(plaintext),
                    envelopeKey: Hex.encode(key.envelopeKey(author: author, seq: seq).copyBytes()),
                    header: Hex.encode(e.headerBytes), ciphertextHash: Hex.encode(e.ciphertextHash),
                    signature: Hex.encode(e.signature), envelope: Hex.encode(e.encoded()),
                    envelopeHash: Hex.encode(e.hash), purged: Hex.encode(e.purged().encoded())))
            previous = ChainHead(seq: seq, hash: e.hash)
        }
        return EnvelopeVectorFile(
            description:
                "Amanat envelope v1 (Protocol/envelope.md): one device's first two envelopes, every step in hex.",
            deviceSeed: Hex.encode(deviceSeed), devicePublicKey: Hex.encode(signer.publicKey),
            vaultID: Hex.encode(vaultID), vaultKey: Hex.encode(vaultKeyBytes), keyEpoch: keyEpoch, envelopes: vectors)
    }

    // MARK: Files

    static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONDecoder().decode(T.self, from: data)
    }

    static func write<T: Encodable>(_ value: T, _ name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var data = try encoder.encode(value)
        data.append(0x0a)
        try data.write(to: directory.appendingPathComponent(name), options: .atomic)
    }

    // MARK: Tests

    @Test("change-v1.json matches what the code produces, and its inputs encode to its outputs")
    func changeVectors() throws {
        let produced = try Self.changeFile()
        if Self.writing { try Self.write(produced, "change-v1.json") }
        let file = try Self.load(ChangeVectorFile.self, "change-v1.json")
        #expect(file == produced, "Protocol/vectors/change-v1.json is stale: rerun with AMANAT_WRITE_VECTORS=1")
        #expect(file.cases.count == 13)
        // Consume the file as another implementation would: from the JSON inputs to the bytes.
        for vector in file.cases {
            let change = Change(
                record: try RecordID(try unhex(vector.record)),
                timestamp: HLCTimestamp(wallMillis: vector.wallMillis, counter: vector.counter),
                operations: try vector.operations.map(VectorCodec.operation))
            #expect(Hex.encode(change.encoded(padded: false)) == vector.unpadded, "\(vector.name)")
            #expect(Hex.encode(change.encoded()) == vector.encoded, "\(vector.name)")
            #expect(try Change(decoding: try unhex(vector.encoded)) == change, "\(vector.name)")
            #expect(vector.encoded.count % 128 == 0, "\(vector.name) is padded to 64-byte blocks")
        }
    }

    @Test("envelope-v1.json matches what the code produces, and its inputs give its outputs")
    func envelopeVectors() throws {
        let produced = try Self.envelopeFile()
        if Self.writing { try Self.write(produced, "envelope-v1.json") }
        let file = try Self.load(EnvelopeVectorFile.self, "envelope-v1.json")
        #expect(file == produced, "Protocol/vectors/envelope-v1.json is stale: rerun with AMANAT_WRITE_VECTORS=1")

        let signer = try SigningKeyPair(seed: SecureBytes(try unhex(file.deviceSeed)))
        #expect(Hex.encode(signer.publicKey) == file.devicePublicKey)
        let root = SecureBytes(try unhex(file.vaultKey))
        let key = VaultKey(epoch: file.keyEpoch, root: root)
        let author = try DeviceID(signer.publicKey)
        let vaultID = try unhex(file.vaultID)
        var envelopes: [Envelope] = []
        var head = ChainHead.empty
        for vector in file.envelopes {
            // The envelope key, restated from Protocol/envelope.md §5 with the primitives.
            let contentKey = KeyDerivation.deriveSubkey(from: root, id: 1, context: "amnt-env")
            var message = Array("amanat/envelope-key/v1".utf8) + author.bytes
            withUnsafeBytes(of: vector.seq.bigEndian) { message.append(contentsOf: $0) }
            let restated = BLAKE2b.hash(message, outputLength: 32, key: contentKey)
            #expect(Hex.encode(restated) == vector.envelopeKey)
            #expect(Hex.encode(key.envelopeKey(author: author, seq: vector.seq).copyBytes()) == vector.envelopeKey)

            let e = try Self.seal(
                try unhex(vector.plaintext), key: key, signer: signer, seq: vector.seq,
                previousHash: try unhex(vector.previousHash), nonce: try unhex(vector.nonce))
            #expect(Hex.encode(e.headerBytes) == vector.header)
            #expect(Hex.encode(e.ciphertextHash) == vector.ciphertextHash)
            #expect(Hex.encode(e.signature) == vector.signature)
            #expect(Hex.encode(e.encoded()) == vector.envelope)
            #expect(Hex.encode(e.hash) == vector.envelopeHash)
            #expect(vector.previousHash == Hex.encode(head.hash), "envelope \(vector.seq) continues the chain")

            let decoded = try Envelope(decoding: try unhex(vector.envelope))
            #expect(decoded.header.vaultID == vaultID)
            // The purged form: the same header, hash and signature; no content to open.
            let purged = try Envelope(decoding: try unhex(vector.purged))
            #expect(purged.isPurged && purged.ciphertext.isEmpty)
            #expect(try unhex(vector.purged) == e.headerBytes + Array("AMNP".utf8) + e.ciphertextHash + e.signature)
            #expect(Hex.encode(purged.hash) == vector.envelopeHash && purged.hasValidSignature())
            #expect(throws: CoreError.self) { try purged.open(with: key) }
            #expect(Hex.encode(try decoded.open(with: key).encoded()) == vector.plaintext)
            envelopes.append(decoded)
            head = ChainHead(seq: vector.seq, hash: try unhex(vector.envelopeHash))
        }
        #expect(try ChainVerifier.verifyRun(envelopes[...], vaultID: vaultID, after: .empty) == head)
    }

    @Test("the manual construction is exactly Envelope.seal with the nonce it chose")
    func manualMatchesSeal() throws {
        let signer = try SigningKeyPair(seed: SecureBytes(Self.deviceSeed))
        let key = VaultKey(epoch: Self.keyEpoch, root: SecureBytes(Self.vaultKeyBytes))
        let change = try Self.envelopeChanges()[0]
        let sealed = try Envelope.seal(
            change, vaultID: Self.vaultID, key: key, signer: signer, seq: 1, previousHash: ChainHead.empty.hash)
        let manual = try Self.seal(
            change.encoded(), key: key, signer: signer, seq: 1, previousHash: ChainHead.empty.hash,
            nonce: sealed.header.nonce)
        #expect(manual.encoded() == sealed.encoded())
        #expect(manual.hash == sealed.hash)
        // Envelope.seal picks a fresh nonce each time.
        let again = try Envelope.seal(
            change, vaultID: Self.vaultID, key: key, signer: signer, seq: 1, previousHash: ChainHead.empty.hash)
        #expect(again.header.nonce != sealed.header.nonce)
        #expect(again.ciphertext != sealed.ciphertext)
    }

    @Test("the header layout is the fixed 125 bytes of Protocol/envelope.md §2")
    func headerLayout() throws {
        let author = try DeviceID(counting(from: 0x20, count: 32))
        let header = EnvelopeHeader(
            vaultID: Self.vaultID, author: author, seq: 0x0102_0304_0506_0708,
            previousHash: counting(from: 0xc0, count: 32),
            keyEpoch: 0x0a0b_0c0d, nonce: Self.nonces[0], ciphertextLength: 0x1122_3344)
        let expected: [UInt8] =
            Array("AMNE".utf8) + [1] + Self.vaultID + author.bytes + [1, 2, 3, 4, 5, 6, 7, 8]
            + counting(from: 0xc0, count: 32) + [0x0a, 0x0b, 0x0c, 0x0d] + Self.nonces[0] + [0x11, 0x22, 0x33, 0x44]
        #expect(header.encoded() == expected)
        #expect(expected.count == EnvelopeHeader.length)
        var r = ByteReader(expected)
        #expect(try EnvelopeHeader(from: &r) == header)
        #expect(r.isAtEnd)
    }
}
