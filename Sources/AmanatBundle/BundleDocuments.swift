import AmanatCore
import AmanatCrypto
import Foundation

/// `manifest.json` (Protocol/bundle.md §3).
public struct BundleManifest: Codable, Sendable, Equatable {
    /// One exported record and its files.
    public struct Record: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var record: String
        public var custody: String
    }

    /// One device's chain file.
    public struct Device: Codable, Sendable, Equatable {
        public var device: String
        public var chain: String
        public var changes: UInt64
    }

    public static let formatName = "amanat-bundle/1"

    public var format: String
    public var vault_id: String
    public var exported_at: String
    public var exported_by: String
    public var records: [Record]
    public var devices: [Device]
}

/// `records/<id>.json`: what the record shows and how it came to be.
public struct RecordDocument: Codable, Sendable, Equatable {
    /// One change in the record's history.
    public struct Change: Codable, Sendable, Equatable {
        public var time: String
        public var device: String
        public var seq: UInt64
        public var envelope: String
        public var label: String?
        public var operations: [String]
    }

    public var id: String
    public var kind: String
    public var fields: [String: String]
    public var tags: [String]
    public var conflicts: [String: [String]]
    public var deleted: Bool
    public var sealed_content_hash: String?
    public var history: [Change]

    /// Renders the document of `state` from its changes, as both the exporter and the verifier do.
    public init(state: RecordState, changes: [(envelope: Envelope, change: AuthoredChange)]) {
        id = state.id.hex
        kind = state.creationKind
        let view = state.view
        fields = view?.fields ?? [:]
        tags = view?.tags ?? state.tags
        conflicts = view?.conflicts ?? [:]
        deleted = view == nil
        sealed_content_hash = state.seal.map { Hex.encode($0.contentHash) }
        history = changes.map { envelope, authored in
            Change(
                time: isoTime(authored.change.timestamp), device: authored.author.hex, seq: authored.seq,
                envelope: Hex.encode(envelope.hash),
                label: state.label(forChangeBy: authored.author, seq: authored.seq, at: authored.change.timestamp),
                operations: authored.change.operations.map(\.summary))
        }
    }
}

/// `custody/<id>.json`: the record's envelopes and the keys of exactly those envelopes.
public struct CustodyDocument: Codable, Sendable, Equatable {
    /// One envelope with its key.
    public struct Item: Codable, Sendable, Equatable {
        public var device: String
        public var seq: UInt64
        public var hash: String
        public var envelope_key: String
        public var envelope: String
    }

    public var record: String
    public var envelopes: [Item]
}

/// The millisecond UTC time of a stamp in ISO 8601.
func isoTime(_ stamp: HLCTimestamp) -> String {
    let date = Date(timeIntervalSince1970: Double(stamp.wallMillis) / 1000)
    return date.formatted(
        .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
}

enum BundleJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Encoding these plain value types cannot fail.
        return Array((try? encoder.encode(value)) ?? Data()) + [10]
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], path: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw BundleError(.malformedDocument, "\(path) in the bundle is not valid.")
        }
    }
}

/// A chain file entry: an envelope with its ciphertext removed (Protocol/bundle.md §4).
struct ChainLink {
    static let length = EnvelopeHeader.length + 32 + 64
    var headerBytes: [UInt8]
    var header: EnvelopeHeader
    var ciphertextHash: [UInt8]
    var signature: [UInt8]

    init(_ envelope: Envelope) {
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

    var encoded: [UInt8] { headerBytes + ciphertextHash + signature }
    var hash: [UInt8] { BLAKE2b.hash(encoded) }
    var hasValidSignature: Bool {
        SigningKeyPair.verify(signature, of: headerBytes + ciphertextHash, publicKey: header.author.bytes)
    }
}
