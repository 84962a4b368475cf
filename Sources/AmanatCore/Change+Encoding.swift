/// The binary encoding of changes (Protocol/change.md).
extension Change {
    /// The format version written in the first byte.
    public static let formatVersion: UInt8 = 1

    /// Plaintexts are padded with zeros to a multiple of this many bytes, so lengths say less (§5).
    public static let paddingBlock = 64

    /// Encodes the change canonically, padded with zero bytes to a multiple of ``paddingBlock``.
    public func encoded(padded: Bool = true) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.write(Self.formatVersion)
        w.write(recordID: record)
        w.write(bigEndian: timestamp.wallMillis)
        w.write(bigEndian: timestamp.counter)
        w.write(varint: UInt64(operations.count))
        for op in operations { op.encode(into: &w) }
        return padded ? Self.pad(w.bytes) : w.bytes
    }

    /// `bytes` followed by zeros up to a multiple of ``paddingBlock`` (also used for membership entries).
    static func pad(_ bytes: [UInt8]) -> [UInt8] {
        let remainder = bytes.count % paddingBlock
        return remainder == 0 ? bytes : bytes + repeatElement(0, count: paddingBlock - remainder)
    }

    /// Decodes a change; trailing bytes must all be zero padding.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == Self.formatVersion else {
            throw CoreError(
                .unsupportedVersion, "This change was written by a newer version of Amanat (format \(version)).")
        }
        record = try r.readRecordID()
        timestamp = HLCTimestamp(
            wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
        let count = try r.readCount()
        var ops: [RecordOperation] = []
        ops.reserveCapacity(count)
        for _ in 0..<count { ops.append(try RecordOperation(from: &r)) }
        operations = ops
        guard r.remaining.allSatisfy({ $0 == 0 }) else {
            throw CoreError(.malformed, "A change has unexpected bytes after its operations.")
        }
    }
}

extension RecordOperation {
    enum Tag: UInt8 {
        case create = 1
        case set = 2
        case addTag = 3
        case removeTag = 4
        case delete = 5
        case seal = 6
        case origin = 7
        case custody = 8
        case attach = 9
        case detach = 10
    }

    func encode(into w: inout ByteWriter) {
        switch self {
        case .create(let kind):
            w.write(Tag.create.rawValue)
            w.write(string: kind)
        case .set(let field, let value, let pred):
            w.write(Tag.set.rawValue)
            w.write(string: field)
            w.write(string: value)
            Self.encode(pred, into: &w)
        case .addTag(let tag):
            w.write(Tag.addTag.rawValue)
            w.write(string: tag)
        case .removeTag(let tag, let observed):
            w.write(Tag.removeTag.rawValue)
            w.write(string: tag)
            Self.encode(observed, into: &w)
        case .delete(let observed):
            w.write(Tag.delete.rawValue)
            Self.encode(observed, into: &w)
        case .seal(let hash):
            w.write(Tag.seal.rawValue)
            w.write(raw: hash)
        case .origin(let vault, let record):
            w.write(Tag.origin.rawValue)
            w.write(raw: vault)
            w.write(recordID: record)
        case .custody(let envelope, let key):
            w.write(Tag.custody.rawValue)
            w.write(lengthPrefixed: envelope)
            w.write(lengthPrefixed: key)
        case .attach(let spec):
            w.write(Tag.attach.rawValue)
            spec.encode(into: &w)
        case .detach(let attachment):
            w.write(Tag.detach.rawValue)
            attachment.encode(into: &w)
        }
    }

    init(from r: inout ByteReader) throws {
        guard let tag = Tag(rawValue: try r.readByte()) else {
            throw CoreError(.malformed, "A change holds an operation of an unknown type.")
        }
        switch tag {
        case .create: self = .create(kind: try r.readString())
        case .set: self = .set(field: try r.readString(), value: try r.readString(), pred: try Self.decodeIDs(&r))
        case .addTag: self = .addTag(try r.readString())
        case .removeTag: self = .removeTag(try r.readString(), observed: try Self.decodeIDs(&r))
        case .delete: self = .delete(observed: try Self.decodeIDs(&r))
        case .seal: self = .seal(contentHash: try r.read(count: 32))
        case .origin: self = .origin(vault: try r.read(count: 16), record: try r.readRecordID())
        case .custody:
            let envelope = try r.readLengthPrefixed()
            let key = try r.readLengthPrefixed()
            guard key.isEmpty || key.count == 32 else {
                throw CoreError(.malformed, "A custody operation holds a key that is neither empty nor 32 bytes.")
            }
            self = .custody(envelope: envelope, key: key)
        case .attach: self = .attach(try AttachmentSpec(from: &r))
        case .detach: self = .detach(attachment: try OpID(from: &r))
        }
    }

    /// RecordOperation id lists are written sorted and without duplicates, so equal sets encode equally.
    static func encode(_ ids: [OpID], into w: inout ByteWriter) {
        let sorted = Array(Set(ids)).sorted()
        w.write(varint: UInt64(sorted.count))
        for id in sorted { id.encode(into: &w) }
    }

    static func decodeIDs(_ r: inout ByteReader) throws -> [OpID] {
        let count = try r.readCount(minimumElementSize: 34)
        var ids: [OpID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try OpID(from: &r)) }
        return ids
    }
}

extension OpID {
    func encode(into w: inout ByteWriter) {
        w.write(raw: device.bytes)
        w.write(varint: seq)
        w.write(varint: UInt64(index))
    }

    init(from r: inout ByteReader) throws {
        device = try DeviceID(r.read(count: 32))
        seq = try r.readVarint()
        let i = try r.readVarint()
        guard i <= UInt64(UInt32.max) else { throw CoreError(.malformed, "An operation index is too large.") }
        index = UInt32(i)
    }
}
