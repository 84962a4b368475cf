import AmanatCrypto

/// The canonical binary encoding of a record state (Protocol/change.md §7), used for the encrypted
/// projection table and for `state_digest`.
extension RecordState {
    /// The encoding's version byte.
    public static let formatVersion: UInt8 = 1

    /// Encodes the state canonically: every set is written sorted, so equal states encode to equal bytes.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(Self.formatVersion)
        w.write(recordID: id)
        if let op = creationOp {
            w.write(1)
            op.encode(into: &w)
            w.write(string: creationKind)
        } else {
            w.write(0)
        }
        // Keys are written in NFC: Swift groups canonically equivalent names as one key, whichever spelling came first.
        let names = values.keys.map { (written: $0.nfc, key: $0) }.sorted {
            $0.written.utf8.lexicographicallyPrecedes($1.written.utf8)
        }
        w.write(varint: UInt64(names.count))
        for (written, name) in names {
            let list = values[name]!.sorted { $0.op < $1.op }
            w.write(string: written)
            w.write(varint: UInt64(list.count))
            for v in list {
                v.op.encode(into: &w)
                w.write(string: v.value)
                w.write(bigEndian: v.timestamp.wallMillis)
                w.write(bigEndian: v.timestamp.counter)
            }
        }
        RecordOperation.encode(Array(overwritten), into: &w)
        let adds = tagAdds.keys.sorted()
        w.write(varint: UInt64(adds.count))
        for op in adds {
            op.encode(into: &w)
            w.write(string: tagAdds[op]!)
        }
        RecordOperation.encode(Array(removedTags), into: &w)
        RecordOperation.encode(Array(deleteObserved), into: &w)
        if let seal {
            w.write(1)
            seal.op.encode(into: &w)
            w.write(raw: seal.contentHash)
            w.write(bigEndian: seal.timestamp.wallMillis)
            w.write(bigEndian: seal.timestamp.counter)
        } else {
            w.write(0)
        }
        w.write(varint: UInt64(changes.count))
        for c in changes {
            w.write(raw: c.author.bytes)
            w.write(varint: c.seq)
            w.write(bigEndian: c.timestamp.wallMillis)
            w.write(bigEndian: c.timestamp.counter)
        }
        // Imported records and records with attachments only: the sections are absent otherwise, so every other
        // state encodes as before.
        let hasAttachments = !attachmentOps.isEmpty || !detached.isEmpty
        if origin != nil || !custody.isEmpty || hasAttachments {
            if let origin {
                w.write(1)
                origin.op.encode(into: &w)
                w.write(raw: origin.vault)
                w.write(recordID: origin.record)
            } else {
                w.write(0)
            }
            let items = custody.sorted {
                $0.envelope != $1.envelope
                    ? $0.envelope.lexicographicallyPrecedes($1.envelope) : $0.key.lexicographicallyPrecedes($1.key)
            }
            w.write(varint: UInt64(items.count))
            for item in items {
                w.write(lengthPrefixed: item.envelope)
                w.write(lengthPrefixed: item.key)
            }
        }
        if hasAttachments {
            let ops = attachmentOps.keys.sorted()
            w.write(varint: UInt64(ops.count))
            for op in ops {
                let a = attachmentOps[op]!
                op.encode(into: &w)
                w.write(bigEndian: a.timestamp.wallMillis)
                w.write(bigEndian: a.timestamp.counter)
                w.write(bigEndian: a.epoch)
                w.write(bigEndian: a.size)
                w.write(raw: a.sha256)
                w.write(string: a.mediaType)
                w.write(string: a.name)
                w.write(string: a.note)
                w.write(a.metadataFlags)
                w.write(bigEndian: a.chunkSize)
                w.write(raw: a.root)
                w.write(varint: a.chunkCount)
            }
            RecordOperation.encode(Array(detached), into: &w)
        }
        return w.bytes
    }

    /// Decodes a state written by ``encoded()``.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard try r.readByte() == Self.formatVersion else {
            throw CoreError(.unsupportedVersion, "A stored record was written by a newer version of Amanat.")
        }
        self.init(id: try r.readRecordID())
        if try Self.readFlag(&r) {
            creationOp = try OpID(from: &r)
            creationKind = try r.readString()
        }
        for _ in 0..<(try r.readCount()) {
            let name = try r.readString()
            var list: [FieldValue] = []
            for _ in 0..<(try r.readCount()) {
                let op = try OpID(from: &r)
                let value = try r.readString()
                let stamp = HLCTimestamp(
                    wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
                list.append(FieldValue(op: op, value: value, timestamp: stamp))
            }
            values[name] = list.sorted { $0.wins(over: $1) }
        }
        overwritten = Set(try RecordOperation.decodeIDs(&r))
        for _ in 0..<(try r.readCount()) {
            let op = try OpID(from: &r)
            tagAdds[op] = try r.readString()
        }
        removedTags = Set(try RecordOperation.decodeIDs(&r))
        deleteObserved = Set(try RecordOperation.decodeIDs(&r))
        if try Self.readFlag(&r) {
            let op = try OpID(from: &r)
            let hash = try r.read(count: 32)
            let stamp = HLCTimestamp(
                wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
            seal = SealInfo(op: op, contentHash: hash, timestamp: stamp)
        }
        for _ in 0..<(try r.readCount(minimumElementSize: 45)) {
            let author = try DeviceID(r.read(count: 32))
            let seq = try r.readVarint()
            let stamp = HLCTimestamp(
                wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
            changes.append(ChangeRef(author: author, seq: seq, timestamp: stamp))
        }
        if !r.isAtEnd {
            if try Self.readFlag(&r) {
                origin = OriginInfo(
                    op: try OpID(from: &r), vault: try r.read(count: 16), record: try r.readRecordID())
            }
            for _ in 0..<(try r.readCount(minimumElementSize: 2)) {
                custody.insert(CustodyItem(envelope: try r.readLengthPrefixed(), key: try r.readLengthPrefixed()))
            }
            if !r.isAtEnd {
                for _ in 0..<(try r.readCount(minimumElementSize: 34)) {
                    let op = try OpID(from: &r)
                    let stamp = HLCTimestamp(
                        wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
                    attachmentOps[op] = AttachmentInfo(
                        op: op, timestamp: stamp, epoch: try r.read(bigEndian: UInt32.self),
                        size: try r.read(bigEndian: UInt64.self), sha256: try r.read(count: 32),
                        mediaType: try r.readString(), name: try r.readString(), note: try r.readString(),
                        metadataFlags: try r.readByte(), chunkSize: try r.read(bigEndian: UInt32.self),
                        root: try r.read(count: 32), chunkCount: try r.readVarint())
                }
                detached = Set(try RecordOperation.decodeIDs(&r))
                guard !attachmentOps.isEmpty || !detached.isEmpty else {
                    throw CoreError(.malformed, "A stored record has an empty attachment section.")
                }
            } else {
                guard origin != nil || !custody.isEmpty else {
                    throw CoreError(.malformed, "A stored record has an empty import section.")
                }
            }
        }
        guard r.isAtEnd else { throw CoreError(.malformed, "A stored record has unexpected trailing bytes.") }
    }

    /// Reads a presence flag: exactly 0 or 1, so every state has a single encoding.
    static func readFlag(_ r: inout ByteReader) throws -> Bool {
        switch try r.readByte() {
        case 0: return false
        case 1: return true
        default: throw CoreError(.malformed, "A stored record has an invalid flag byte.")
        }
    }

    /// The content hash a `seal` operation commits to: BLAKE2b-256 over the kind and the sorted (field, value)
    /// pairs of the sealing change (Protocol/change.md §4).
    public static func sealHash(kind: String, fields: [(String, String)]) -> [UInt8] {
        var w = ByteWriter()
        w.write(raw: Array("amanat/seal/v1".utf8))
        w.write(string: kind)
        let sorted = fields.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
        w.write(varint: UInt64(sorted.count))
        for (name, value) in sorted {
            w.write(string: name)
            w.write(string: value)
        }
        return BLAKE2b.hash(w.bytes)
    }
}

extension Array where Element == RecordState {
    /// The states in record-id order (`sorted(byID:)`).
    public func sortedByID() -> [RecordState] { sorted(byID: \.id) }
}

extension Array {
    /// The elements in the order of their record ids (`sortByID`).
    @inlinable public func sorted(byID id: (Element) -> RecordID) -> [Element] {
        var copy = self
        copy.sortByID(id)
        return copy
    }

    /// Puts the elements in the order of their record ids. Ids are sorted, not elements: a state or a view is a
    /// large value, and sorting 100k of them moved each several times (most of `amanat status` on such a vault).
    /// The elements are then swapped into place along the permutation's cycles, never copied: a copy touches every
    /// string and dictionary an element holds to count a reference. Inlinable, so that it is compiled for the
    /// caller's element type: the generic version copied each element to swap it.
    @inlinable public mutating func sortByID(_ id: (Element) -> RecordID) {
        // Through the buffer: an element is read in place to take its id, and a swap moves the two elements' bytes
        // (the array's own `swapAt` and subscript copied each element, retaining every string and dictionary of a
        // view: a tenth of `list`'s time on 100k records).
        withUnsafeMutableBufferPointer { elements in
            var order: [(id: RecordID, index: Int)] = []
            order.reserveCapacity(elements.count)
            for index in elements.indices { order.append((id(elements[index]), index)) }
            order.sort { $0.id < $1.id }
            // source[i]: where the element that belongs at i is now.
            var source = order.map(\.index)
            for start in source.indices {
                var i = start
                while source[i] != start {
                    let next = source[i]
                    elements.swapAt(i, next)
                    source[i] = i
                    i = next
                }
                source[i] = i
            }
        }
    }
}

/// The digest two replicas compare to prove they converged.
public enum StateDigest {
    /// BLAKE2b-256 over the canonical encodings of every record state, in record-id order (Protocol/change.md §8).
    public static func compute<S: Sequence>(_ states: S) -> [UInt8] where S.Element == RecordState {
        let hasher = BLAKE2b.Hasher()
        hasher.update(Array("amanat/state/v1".utf8))
        for state in Array(states).sortedByID() {
            var w = ByteWriter()
            w.write(lengthPrefixed: state.encoded())
            hasher.update(w.bytes)
        }
        return hasher.finalize()
    }
}
