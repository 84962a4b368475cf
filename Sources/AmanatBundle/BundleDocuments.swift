import AmanatCore
import AmanatCrypto
import Foundation

// The documents of an evidence bundle of format 2 (Protocol/bundle.md §4–§5). Each is written as canonical JSON
// (§3.1) and read strictly: exactly the members the protocol lists, with the stated forms, and bytes that are the
// canonical form of what they hold.

/// A document that does not follow Protocol/bundle.md, with the file it came from.
struct DocumentError: Error {
    var message: String
    init(_ path: String, _ what: String) { message = "\(path) is not valid: \(what)." }
}

/// Strict readers of JSON members, each naming the file on failure.
struct DocumentReader {
    let path: String

    func fail(_ what: String) -> DocumentError { DocumentError(path, what) }

    /// The members of `value`, which must be an object with exactly `required` and at most `optional` besides.
    func object(_ value: JSONValue?, _ what: String, required: [String], optional: [String] = []) throws -> JSONValue {
        guard let value, let members = value.members else { throw fail("\(what) is not an object") }
        let names = value.memberNames
        for name in required where !names.contains(Array(name.utf8)) { throw fail("\(what) has no \"\(name)\"") }
        let allowed = Set((required + optional).map { Array($0.utf8) })
        if let extra = members.first(where: { !allowed.contains(Array($0.0.utf8)) }) {
            throw fail("\(what) has an unknown member \"\(extra.0)\"")
        }
        return value
    }

    func string(_ value: JSONValue?, _ what: String) throws -> String {
        guard let s = value?.stringValue else { throw fail("\(what) is not a string") }
        return s
    }

    func array(_ value: JSONValue?, _ what: String) throws -> [JSONValue] {
        guard let a = value?.arrayValue else { throw fail("\(what) is not an array") }
        return a
    }

    func bool(_ value: JSONValue?, _ what: String) throws -> Bool {
        guard let b = value?.boolValue else { throw fail("\(what) is not true or false") }
        return b
    }

    /// A positive integer (seq, link count).
    func positive(_ value: JSONValue?, _ what: String) throws -> UInt64 {
        guard let n = value?.integerValue, n >= 1 else { throw fail("\(what) is not a positive integer") }
        return UInt64(n)
    }

    func nonNegative(_ value: JSONValue?, _ what: String) throws -> UInt64 {
        guard let n = value?.integerValue, n >= 0 else { throw fail("\(what) is not a non-negative integer") }
        return UInt64(n)
    }

    /// Lowercase hex of exactly `bytes` bytes.
    func hex(_ value: JSONValue?, _ what: String, bytes: Int) throws -> [UInt8] {
        let s = try string(value, what)
        guard s.utf8.count == bytes * 2, s.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
            let raw = Hex.decode(s)
        else { throw fail("\(what) is not \(bytes * 2) lowercase hex digits") }
        return raw
    }

    func device(_ value: JSONValue?, _ what: String) throws -> DeviceID {
        // 32 bytes always make a device id.
        try DeviceID(try hex(value, what, bytes: 32))
    }

    func record(_ value: JSONValue?, _ what: String) throws -> RecordID {
        try RecordID(try hex(value, what, bytes: 16))
    }

    /// Standard base64 with padding and no line breaks, exactly as written (RFC 4648 §4).
    func base64(_ value: JSONValue?, _ what: String) throws -> [UInt8] {
        let s = try string(value, what)
        guard let data = Data(base64Encoded: s), data.base64EncodedString() == s else {
            throw fail("\(what) is not standard base64")
        }
        return Array(data)
    }

    /// Requires `keys` to be strictly ascending (sorted, no duplicates).
    func ascending<K: Comparable>(_ keys: [K], _ what: String) throws {
        for i in keys.indices.dropFirst() where !(keys[i - 1] < keys[i]) {
            throw fail("\(what) is not sorted or holds a duplicate")
        }
    }
}

/// A (device, seq) pair ordered by device bytes, then seq: the order of every list of changes in a bundle.
struct DeviceSeq: Comparable, Hashable {
    var device: DeviceID
    var seq: UInt64
    static func < (a: DeviceSeq, b: DeviceSeq) -> Bool {
        a.device != b.device ? a.device < b.device : a.seq < b.seq
    }
}

/// `manifest.json` (Protocol/bundle.md §4.1).
public struct BundleManifest: Sendable, Equatable {
    /// The format this version writes.
    public static let formatName = "amanat-bundle/2"
    /// The domain-separation prefix of the manifest signature (§4.2).
    public static let signatureContext = Array("amanat/bundle-manifest/v2".utf8)

    /// One file of the bundle and its SHA-256.
    public struct File: Sendable, Equatable {
        public var path: String
        public var sha256: [UInt8]
    }

    /// A device with a chain file, and the name the exporter states for it.
    public struct Device: Sendable, Equatable {
        public var device: DeviceID
        public var links: UInt64
        /// The exporter's statement of the device's name (not proven by anything in the bundle).
        public var name: String?
        public var chain: String { "chains/\(device.hex).bin" }
    }

    /// One change the exporter's vault applied to a record (the completeness statement).
    public struct StatedChange: Sendable, Equatable, Hashable {
        public var device: DeviceID
        public var seq: UInt64
        public var envelope: [UInt8]
    }

    /// One attached file of an exported record (Protocol/bundle.md §4.1, `attachments.md`).
    public struct Attachment: Sendable, Equatable {
        /// The attachment id (32 hex digits): BLAKE2b-128 of its `attach` operation id.
        public var attachment: String
        /// Its file in the bundle: `attachments/<record id>/<attachment id>.<ext>`.
        public var path: String
        /// SHA-256 of that file: the SHA-256 the signed `attach` operation states.
        public var sha256: [UInt8]
        /// Its size in bytes.
        public var size: UInt64
        /// Set when the file is a copy with its location removed (`export --strip-location`): then `sha256` and
        /// `size` are the copy's, and this names the original sealed in custody and what was removed.
        public var stripped: Stripped?

        /// Creates an entry.
        public init(attachment: String, path: String, sha256: [UInt8], size: UInt64, stripped: Stripped? = nil) {
            self.attachment = attachment
            self.path = path
            self.sha256 = sha256
            self.size = size
            self.stripped = stripped
        }
    }

    /// What a location-stripped copy stands for (Protocol/bundle.md §4.1 `stripped`).
    public struct Stripped: Sendable, Equatable {
        /// The SHA-256 of the original, as the signed `attach` operation states it.
        public var originalSHA256: [UInt8]
        /// The original's size, as the signed `attach` operation states it.
        public var originalSize: UInt64
        /// What was removed: names of ``LocationStripper/Removed``, sorted, at least one.
        public var removed: [String]

        /// Creates the statement.
        public init(originalSHA256: [UInt8], originalSize: UInt64, removed: [String]) {
            self.originalSHA256 = originalSHA256
            self.originalSize = originalSize
            self.removed = removed
        }

        /// The names `removed` may hold.
        public static let names: Set<String> = Set(LocationStripper.Removed.allCases.map(\.rawValue))
    }

    /// One exported record.
    public struct Record: Sendable, Equatable {
        public var id: RecordID
        public var kind: String
        /// For testimonies: `share`, `anonymised`, `restricted`, `conflict` or `unset` at export.
        public var consent: String?
        public var changes: [StatedChange]
        /// Its attached files in the bundle, sorted by path; the member is absent when there are none.
        public var attachments: [Attachment] = []
        public var record: String { "records/\(id.hex).json" }
        public var custody: String { "custody/\(id.hex).json" }
    }

    public var vaultID: [UInt8]
    public var exportedAtMillis: UInt64
    public var exportedBy: DeviceID
    public var files: [File]
    public var devices: [Device]
    public var records: [Record]

    /// Creates a manifest.
    public init(
        vaultID: [UInt8], exportedAtMillis: UInt64, exportedBy: DeviceID, files: [File], devices: [Device],
        records: [Record]
    ) {
        self.vaultID = vaultID
        self.exportedAtMillis = exportedAtMillis
        self.exportedBy = exportedBy
        self.files = files
        self.devices = devices
        self.records = records
    }

    /// The consent values a testimony's entry may state.
    public static let consentValues: Set<String> = ["share", "anonymised", "restricted", "conflict", "unset"]

    /// The canonical JSON value (Protocol/bundle.md).
    public var json: JSONValue {
        .object([
            ("format", .string(Self.formatName)),
            ("vault_id", .string(Hex.encode(vaultID))),
            ("exported_at_ms", .integer(Int64(exportedAtMillis))),
            ("exported_by", .string(exportedBy.hex)),
            ("membership", .string("membership.json")),
            (
                "files",
                .array(files.map { .object([("path", .string($0.path)), ("sha256", .string(Hex.encode($0.sha256)))]) })
            ),
            (
                "devices",
                .array(
                    devices.map { d in
                        var m: [(String, JSONValue)] = [
                            ("device", .string(d.device.hex)), ("chain", .string(d.chain)),
                            ("links", .integer(Int64(d.links))),
                        ]
                        if let name = d.name { m.append(("name", .string(name))) }
                        return .object(m)
                    })
            ),
            (
                "records",
                .array(
                    records.map { r in
                        var m: [(String, JSONValue)] = [
                            ("id", .string(r.id.hex)), ("kind", .string(r.kind)), ("record", .string(r.record)),
                            ("custody", .string(r.custody)),
                            (
                                "changes",
                                .array(
                                    r.changes.map {
                                        .object([
                                            ("device", .string($0.device.hex)), ("seq", .integer(Int64($0.seq))),
                                            ("envelope", .string(Hex.encode($0.envelope))),
                                        ])
                                    })
                            ),
                        ]
                        if let consent = r.consent { m.append(("consent", .string(consent))) }
                        if !r.attachments.isEmpty {
                            m.append(
                                (
                                    "attachments",
                                    .array(
                                        r.attachments.map { a in
                                            var members: [(String, JSONValue)] = [
                                                ("attachment", .string(a.attachment)), ("path", .string(a.path)),
                                                ("sha256", .string(Hex.encode(a.sha256))),
                                                ("size", .integer(Int64(a.size))),
                                            ]
                                            if let s = a.stripped {
                                                members.append(
                                                    (
                                                        "stripped",
                                                        .object([
                                                            ("original_sha256", .string(Hex.encode(s.originalSHA256))),
                                                            ("original_size", .integer(Int64(s.originalSize))),
                                                            ("removed", .array(s.removed.map(JSONValue.string))),
                                                        ])
                                                    ))
                                            }
                                            return .object(members)
                                        })
                                ))
                        }
                        return .object(m)
                    })
            ),
        ])
    }

    /// Reads a manifest of format 2 strictly (Protocol/bundle.md §7 step 1).
    init(json value: JSONValue) throws {
        let r = DocumentReader(path: "manifest.json")
        let top = try r.object(
            value, "the manifest",
            required: [
                "format", "vault_id", "exported_at_ms", "exported_by", "membership", "files", "devices", "records",
            ])
        guard try r.string(top["format"], "format") == Self.formatName else {
            throw r.fail("format is not \(Self.formatName)")
        }
        vaultID = try r.hex(top["vault_id"], "vault_id", bytes: 16)
        exportedAtMillis = try r.nonNegative(top["exported_at_ms"], "exported_at_ms")
        exportedBy = try r.device(top["exported_by"], "exported_by")
        guard try r.string(top["membership"], "membership") == "membership.json" else {
            throw r.fail("membership is not \"membership.json\"")
        }
        files = try r.array(top["files"], "files").map { item in
            let o = try r.object(item, "an item of files", required: ["path", "sha256"])
            return File(
                path: try r.string(o["path"], "a path of files"), sha256: try r.hex(o["sha256"], "a sha256", bytes: 32))
        }
        try r.ascending(files.map { ByteKey(bytes: $0.path.utf8.map(Int.init)) }, "files")
        devices = try r.array(top["devices"], "devices").map { item in
            let o = try r.object(
                item, "an item of devices", required: ["device", "chain", "links"], optional: ["name"])
            let d = Device(
                device: try r.device(o["device"], "a device"), links: try r.positive(o["links"], "links"),
                name: try o["name"].map { try r.string($0, "a name") })
            if let name = d.name, name.utf8.count > SealedName.maximumLength {
                throw r.fail("the name of device \(d.device.hex.prefix(12)) is longer than 96 bytes")
            }
            guard try r.string(o["chain"], "a chain") == d.chain else {
                throw r.fail("the chain of device \(d.device.hex.prefix(12)) is not \(d.chain)")
            }
            return d
        }
        try r.ascending(devices.map(\.device), "devices")
        records = try r.array(top["records"], "records").map { item in
            let o = try r.object(
                item, "an item of records", required: ["id", "kind", "record", "custody", "changes"],
                optional: ["consent", "attachments"])
            let id = try r.record(o["id"], "a record id")
            let kind = try r.string(o["kind"], "a kind")
            let consent = try o["consent"].map { try r.string($0, "a consent") }
            if let consent, !Self.consentValues.contains(consent) {
                throw r.fail("record \(id.hex.prefix(12)) states an unknown consent \"\(consent)\"")
            }
            guard (kind == "testimony") == (consent != nil) else {
                throw r.fail("record \(id.hex.prefix(12)) states consent only if it is a testimony")
            }
            let changes = try r.array(o["changes"], "changes").map { c in
                let co = try r.object(c, "a stated change", required: ["device", "seq", "envelope"])
                return StatedChange(
                    device: try r.device(co["device"], "a device"), seq: try r.positive(co["seq"], "a seq"),
                    envelope: try r.hex(co["envelope"], "an envelope hash", bytes: 32))
            }
            try r.ascending(changes.map { DeviceSeq(device: $0.device, seq: $0.seq) }, "the changes of a record")
            var record = Record(id: id, kind: kind, consent: consent, changes: changes)
            if let list = o["attachments"] {
                record.attachments = try r.array(list, "attachments").map { item in
                    let a = try r.object(
                        item, "an attachment", required: ["attachment", "path", "sha256", "size"],
                        optional: ["stripped"])
                    var entry = Attachment(
                        attachment: try r.string(a["attachment"], "an attachment id"),
                        path: try r.string(a["path"], "an attachment path"),
                        sha256: try r.hex(a["sha256"], "an attachment sha256", bytes: 32),
                        size: try r.nonNegative(a["size"], "an attachment size"))
                    if let value = a["stripped"] {
                        let s = try r.object(
                            value, "a stripped statement", required: ["original_sha256", "original_size", "removed"])
                        let removed = try r.array(s["removed"], "removed").map { try r.string($0, "a removed name") }
                        guard !removed.isEmpty, removed.allSatisfy(Stripped.names.contains) else {
                            throw r.fail(
                                "attachment \(entry.attachment.prefix(12)) of record \(id.hex.prefix(12)) states an empty or unknown removed list"
                            )
                        }
                        try r.ascending(removed.map { ByteKey(bytes: $0.utf8.map(Int.init)) }, "removed")
                        entry.stripped = Stripped(
                            originalSHA256: try r.hex(s["original_sha256"], "an original_sha256", bytes: 32),
                            originalSize: try r.nonNegative(s["original_size"], "an original_size"), removed: removed)
                    }
                    guard entry.attachment.count == 32, Hex.decode(entry.attachment) != nil,
                        entry.attachment == entry.attachment.lowercased(),
                        entry.path.hasPrefix("attachments/\(id.hex)/\(entry.attachment.prefix(12))."),
                        TarArchive.isSafePath(entry.path)
                    else {
                        throw r.fail("an attachment of record \(id.hex.prefix(12)) has a malformed id or path")
                    }
                    return entry
                }
                guard !record.attachments.isEmpty else {
                    throw r.fail("record \(id.hex.prefix(12)) has an empty attachments list")
                }
                try r.ascending(record.attachments.map { ByteKey(bytes: $0.path.utf8.map(Int.init)) }, "attachments")
            }
            guard try r.string(o["record"], "a record path") == record.record,
                try r.string(o["custody"], "a custody path") == record.custody
            else {
                throw r.fail("the paths of record \(id.hex.prefix(12)) are not records/<id>.json and custody/<id>.json")
            }
            return record
        }
        try r.ascending(records.map(\.id), "records")
        guard devices.contains(where: { $0.device == exportedBy }) else {
            throw r.fail("the exporting device is not among devices")
        }
    }
}

/// Byte strings ordered lexicographically (for paths).
struct ByteKey: Comparable {
    var bytes: [Int]
    static func < (a: ByteKey, b: ByteKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// `records/<id>.json`: what the record shows and how it came to be (Protocol/bundle.md §5.1).
public struct RecordDocument: Sendable, Equatable {
    /// One change in the record's history.
    public struct Change: Sendable, Equatable {
        public var timeMillis: UInt64
        public var device: DeviceID
        public var seq: UInt64
        public var envelope: [UInt8]
        public var label: String?
        public var operations: [String]
    }

    public var id: RecordID
    public var kind: String
    public var fields: [(String, String)]
    public var tags: [String]
    public var conflicts: [(String, [String])]
    public var deleted: Bool
    public var sealedContentHash: [UInt8]?
    public var history: [Change]

    public static func == (a: RecordDocument, b: RecordDocument) -> Bool { a.encoded == b.encoded }

    /// Renders the document of `state` from its changes, as both the exporter and the verifier do, with the displayed
    /// values chosen at the export time (`Protocol/change.md` §5: a value stamped more than a day after the export
    /// never decides). Throws if a time cannot be written exactly (2^53 ms or more, a stamp no honest clock makes).
    public init(
        state: RecordState, changes: [(envelope: Envelope, change: AuthoredChange)], exportedAtMillis: UInt64
    ) throws {
        id = state.id
        kind = state.creationKind
        let view = state.view(nowMillis: exportedAtMillis)
        fields = (view?.fields ?? [:]).map { ($0.key, $0.value) }
        tags = view?.tags ?? state.tags
        conflicts = (view?.conflicts ?? [:]).map { ($0.key, $0.value) }
        deleted = view == nil
        sealedContentHash = state.seal?.contentHash
        let ordered = changes.sorted {
            ChangeRef(author: $0.change.author, seq: $0.change.seq, timestamp: $0.change.change.timestamp)
                < ChangeRef(author: $1.change.author, seq: $1.change.seq, timestamp: $1.change.change.timestamp)
        }
        history = try ordered.map { envelope, authored in
            let millis = authored.change.timestamp.wallMillis
            guard millis <= UInt64(JSONValue.maximumInteger), authored.seq <= UInt64(JSONValue.maximumInteger) else {
                throw BundleError(
                    .verificationFailed,
                    "Record \(state.id.hex.prefix(12)) has a change stamped too far in the future to be written exactly."
                )
            }
            return Change(
                timeMillis: millis, device: authored.author, seq: authored.seq, envelope: envelope.hash,
                label: state.label(forChangeBy: authored.author, seq: authored.seq, at: authored.change.timestamp),
                operations: authored.change.operations.map(\.summary))
        }
    }

    /// The canonical JSON value.
    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("id", .string(id.hex)), ("kind", .string(kind)),
            ("fields", .object(fields.map { ($0.0, .string($0.1)) })),
            ("tags", .array(tags.map(JSONValue.string))),
            ("conflicts", .object(conflicts.map { ($0.0, .array($0.1.map(JSONValue.string))) })),
            ("deleted", .bool(deleted)),
            (
                "history",
                .array(
                    history.map { c in
                        var h: [(String, JSONValue)] = [
                            ("time_ms", .integer(Int64(c.timeMillis))), ("device", .string(c.device.hex)),
                            ("seq", .integer(Int64(c.seq))), ("envelope", .string(Hex.encode(c.envelope))),
                            ("operations", .array(c.operations.map(JSONValue.string))),
                        ]
                        if let label = c.label { h.append(("label", .string(label))) }
                        return .object(h)
                    })
            ),
        ]
        if let sealedContentHash { m.append(("sealed_content_hash", .string(Hex.encode(sealedContentHash)))) }
        return .object(m)
    }

    /// The file's bytes.
    public var encoded: [UInt8] { json.canonical }
}

/// One signed envelope of a bundle with what identifies it: a custody item (with its key) or a membership entry.
public struct BundleEnvelopeItem: Sendable {
    public var device: DeviceID
    public var seq: UInt64
    public var hash: [UInt8]
    /// The key of this envelope only; nil for a membership entry (its key derives from the vault id).
    public var envelopeKey: [UInt8]?
    public var envelope: [UInt8]

    /// The canonical JSON value (Protocol/bundle.md).
    public var json: JSONValue {
        var m: [(String, JSONValue)] = [
            ("device", .string(device.hex)), ("seq", .integer(Int64(seq))), ("hash", .string(Hex.encode(hash))),
            ("envelope", .string(Data(envelope).base64EncodedString())),
        ]
        if let envelopeKey { m.append(("envelope_key", .string(Hex.encode(envelopeKey)))) }
        return .object(m)
    }

    init(device: DeviceID, seq: UInt64, hash: [UInt8], envelopeKey: [UInt8]?, envelope: [UInt8]) {
        self.device = device
        self.seq = seq
        self.hash = hash
        self.envelopeKey = envelopeKey
        self.envelope = envelope
    }

    init(json: JSONValue, withKey: Bool, reader r: DocumentReader) throws {
        let o = try r.object(
            json, "an envelope item",
            required: ["device", "seq", "hash", "envelope"] + (withKey ? ["envelope_key"] : []))
        device = try r.device(o["device"], "a device")
        seq = try r.positive(o["seq"], "a seq")
        hash = try r.hex(o["hash"], "a hash", bytes: 32)
        envelopeKey = withKey ? try r.hex(o["envelope_key"], "an envelope key", bytes: 32) : nil
        envelope = try r.base64(o["envelope"], "an envelope")
    }
}

/// `custody/<id>.json` (Protocol/bundle.md §5.2).
public struct CustodyDocument: Sendable {
    public var record: RecordID
    public var envelopes: [BundleEnvelopeItem]

    /// The canonical JSON value (Protocol/bundle.md).
    public var json: JSONValue {
        .object([("record", .string(record.hex)), ("envelopes", .array(envelopes.map(\.json)))])
    }

    init(record: RecordID, envelopes: [BundleEnvelopeItem]) {
        self.record = record
        self.envelopes = envelopes
    }

    init(json: JSONValue, path: String) throws {
        let r = DocumentReader(path: path)
        let o = try r.object(json, "the custody document", required: ["record", "envelopes"])
        record = try r.record(o["record"], "record")
        envelopes = try r.array(o["envelopes"], "envelopes").map {
            try BundleEnvelopeItem(json: $0, withKey: true, reader: r)
        }
        try r.ascending(envelopes.map { DeviceSeq(device: $0.device, seq: $0.seq) }, "envelopes")
    }
}

/// `membership.json` (Protocol/bundle.md §5.3).
public struct MembershipDocument: Sendable {
    public var vaultID: [UInt8]
    public var entries: [BundleEnvelopeItem]

    /// The canonical JSON value (Protocol/bundle.md).
    public var json: JSONValue {
        .object([("vault_id", .string(Hex.encode(vaultID))), ("entries", .array(entries.map(\.json)))])
    }

    init(vaultID: [UInt8], entries: [BundleEnvelopeItem]) {
        self.vaultID = vaultID
        self.entries = entries
    }

    init(json: JSONValue) throws {
        let r = DocumentReader(path: "membership.json")
        let o = try r.object(json, "the membership document", required: ["vault_id", "entries"])
        vaultID = try r.hex(o["vault_id"], "vault_id", bytes: 16)
        entries = try r.array(o["entries"], "entries").map {
            try BundleEnvelopeItem(json: $0, withKey: false, reader: r)
        }
        try r.ascending(entries.map { DeviceSeq(device: $0.device, seq: $0.seq) }, "entries")
    }
}

/// A chain file entry: an envelope with its ciphertext removed (Protocol/bundle.md §6).
public struct ChainLink: Sendable, Equatable {
    /// 221 bytes.
    public static let length = EnvelopeHeader.length + 32 + 64
    public var headerBytes: [UInt8]
    public var header: EnvelopeHeader
    public var ciphertextHash: [UInt8]
    public var signature: [UInt8]

    /// The link of `envelope`.
    public init(_ envelope: Envelope) {
        headerBytes = envelope.headerBytes
        header = envelope.header
        ciphertextHash = envelope.ciphertextHash
        signature = envelope.signature
    }

    init(decoding bytes: ArraySlice<UInt8>) throws {
        var r = ByteReader(Array(bytes))
        header = try EnvelopeHeader(from: &r)
        headerBytes = Array(bytes.prefix(EnvelopeHeader.length))
        ciphertextHash = try r.read(count: 32)
        signature = try r.read(count: 64)
    }

    public static func == (a: ChainLink, b: ChainLink) -> Bool { a.encoded == b.encoded }

    /// The 221 bytes.
    public var encoded: [UInt8] { headerBytes + ciphertextHash + signature }
    /// The envelope hash (equal to the full envelope's).
    public var hash: [UInt8] { BLAKE2b.hash(encoded) }
    /// Whether the link's own signature verifies under its author.
    public var hasValidSignature: Bool {
        SigningKeyPair.verify(signature, of: headerBytes + ciphertextHash, publicKey: header.author.bytes)
    }
}
