/// The compact encoding of what a record shows, stored ahead of its full state so `list` decodes only this
/// (Protocol/storage.md §3).
extension RecordView {
    /// Encodes `view` (nil for a record that is not visible) of the record `id`.
    public static func encode(_ view: RecordView?, id: RecordID, into w: inout ByteWriter) {
        w.write(recordID: id)
        guard let view else {
            w.write(0)
            return
        }
        w.write(view.isSealed ? 3 : 1)
        w.write(string: view.kind)
        let names = view.fields.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        w.write(varint: UInt64(names.count))
        for name in names {
            w.write(string: name)
            w.write(string: view.fields[name]!)
            let others = view.conflicts[name] ?? []
            w.write(varint: UInt64(others.count))
            for other in others { w.write(string: other) }
        }
        w.write(varint: UInt64(view.tags.count))
        for tag in view.tags { w.write(string: tag) }
    }

    /// Decodes a view written by ``encode(_:id:into:)``; nil for a record that is not visible.
    public static func decode(from r: inout ByteReader) throws -> RecordView? {
        let id = try r.readRecordID()
        let flags = try r.readByte()
        guard flags & 1 == 1 else { return nil }
        let kind = try r.readString()
        var fields: [String: String] = [:]
        var conflicts: [String: [String]] = [:]
        for _ in 0..<(try r.readCount()) {
            let name = try r.readString()
            fields[name] = try r.readString()
            let n = try r.readCount()
            if n > 0 { conflicts[name] = try (0..<n).map { _ in try r.readString() } }
        }
        let tags = try (0..<(try r.readCount())).map { _ in try r.readString() }
        return RecordView(
            id: id, kind: kind, fields: fields, conflicts: conflicts, tags: tags, isSealed: flags & 2 == 2)
    }
}
