import AmanatCore
import AmanatCrypto
import Foundation

// Format 1 (Protocol/bundle.md §9): unsigned, pretty-printed JSON, no membership. Bundles of that format exist in
// the field, so they are still verified exactly as that version wrote them (including its ISO 8601 times, which
// passed through a floating-point date) and reported as unproven; nothing writes them any more.

/// `manifest.json` of format 1 (Protocol/bundle.md §9): still read, never written.
public struct LegacyManifest: Codable, Sendable, Equatable {
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
public struct LegacyRecordDocument: Codable, Sendable, Equatable {
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
                time: legacyISOTime(authored.change.timestamp), device: authored.author.hex, seq: authored.seq,
                envelope: Hex.encode(envelope.hash),
                label: state.label(forChangeBy: authored.author, seq: authored.seq, at: authored.change.timestamp),
                operations: authored.change.operations.map(\.summary))
        }
    }
}

/// `custody/<id>.json`: the record's envelopes and the keys of exactly those envelopes.
public struct LegacyCustodyDocument: Codable, Sendable, Equatable {
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
func legacyISOTime(_ stamp: HLCTimestamp) -> String {
    let date = Date(timeIntervalSince1970: Double(stamp.wallMillis) / 1000)
    return date.formatted(
        .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
}

enum LegacyJSON {
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

/// A record whose custody verified, with what it shows and how it came to be.
public struct LegacyVerifiedRecord: Sendable {
    /// The replayed state.
    public var state: RecordState
    /// The record document, as re-rendered from the signed changes.
    public var document: LegacyRecordDocument
}

/// What `bundle verify` found.
public struct LegacyReport: Sendable {
    /// The manifest, if it parsed.
    public var manifest: LegacyManifest?
    /// Records whose custody verified.
    public var records: [LegacyVerifiedRecord] = []
    /// Signed changes checked across all chains.
    public var chainLinks = 0
    /// Problems, one sentence each, naming the record or device; empty when the bundle verifies.
    public var problems: [String] = []
}

/// Verifies a decrypted bundle archive offline: every chain, signature, envelope key and record document
/// (Protocol/bundle.md §5).
public enum LegacyVerifier {
    /// Checks everything and returns a report; never throws for content problems, it lists them.
    public static func verify(_ archive: TarArchive) -> LegacyReport {
        var report = LegacyReport()
        guard let manifestBytes = archive.file("manifest.json") else {
            report.problems.append("The bundle has no manifest.json.")
            return report
        }
        let manifest: LegacyManifest
        do {
            manifest = try LegacyJSON.decode(LegacyManifest.self, manifestBytes, path: "manifest.json")
        } catch {
            report.problems.append("manifest.json in the bundle is not valid.")
            return report
        }
        report.manifest = manifest
        guard manifest.format == LegacyManifest.formatName else {
            report.problems.append("The bundle's format \(manifest.format) is not one this version reads.")
            return report
        }
        guard let vaultID = Hex.decode(manifest.vault_id), vaultID.count == 16 else {
            report.problems.append("manifest.json names an invalid vault id.")
            return report
        }
        var expected: Set<String> = ["README.txt", "manifest.json"]

        // 1. Each device's chain: contiguous from seq 1, hash-linked, last signature valid.
        var linkHashes: [DeviceID: [[UInt8]]] = [:]
        for device in manifest.devices {
            expected.insert(device.chain)
            guard let id = Hex.decode(device.device).flatMap({ try? DeviceID($0) }),
                device.chain == "chains/\(device.device).bin", let bytes = archive.file(device.chain)
            else {
                report.problems.append("The chain file of device \(device.device.prefix(12)) is missing or misnamed.")
                continue
            }
            // `changes` comes from the manifest: compared as a UInt64, so a count above Int.max is a mismatch.
            let links = bytes.count / ChainLink.length
            guard bytes.count % ChainLink.length == 0, UInt64(links) == device.changes else {
                report.problems.append("The chain of device \(device.device.prefix(12)) is truncated or padded.")
                continue
            }
            var hashes: [[UInt8]] = []
            var previous = ChainHead.empty.hash
            var last: ChainLink?
            var broken = false
            for index in 0..<links {
                let start = index * ChainLink.length
                guard let link = try? ChainLink(decoding: bytes[start..<start + ChainLink.length]),
                    link.header.vaultID == vaultID, link.header.author == id, link.header.seq == UInt64(index + 1),
                    link.header.previousHash == previous
                else {
                    report.problems.append(
                        "The chain of device \(device.device.prefix(12)) is broken at change \(index + 1): it was altered or reordered."
                    )
                    broken = true
                    break
                }
                previous = link.hash
                hashes.append(previous)
                last = link
            }
            if broken { continue }
            guard let last, last.hasValidSignature else {
                report.problems.append("The chain of device \(device.device.prefix(12)) carries a forged signature.")
                continue
            }
            report.chainLinks += hashes.count
            linkHashes[id] = hashes
        }

        // 2. Each record: its envelopes are in the chains, decrypt with their keys, and replay to its document.
        for entry in manifest.records {
            expected.formUnion([entry.record, entry.custody])
            let name = "Record \(entry.id.prefix(12))"
            guard let recordID = RecordID(hex: entry.id), entry.record == "records/\(entry.id).json",
                entry.custody == "custody/\(entry.id).json"
            else {
                report.problems.append("\(name): the manifest entry is malformed.")
                continue
            }
            guard let custodyBytes = archive.file(entry.custody),
                let custody = try? LegacyJSON.decode(LegacyCustodyDocument.self, custodyBytes, path: entry.custody),
                custody.record == entry.id
            else {
                report.problems.append("\(name): its custody file is missing or invalid.")
                continue
            }
            var state = RecordState(id: recordID)
            var changes: [(envelope: Envelope, change: AuthoredChange)] = []
            var failure: String?
            for item in custody.envelopes {
                guard let raw = Data(base64Encoded: item.envelope), let envelope = try? Envelope(decoding: Array(raw)),
                    envelope.header.author.hex == item.device, envelope.header.seq == item.seq
                else {
                    failure = "\(name): envelope \(item.seq) of device \(item.device.prefix(12)) is malformed."
                    break
                }
                guard let chain = linkHashes[envelope.header.author], item.seq >= 1, item.seq <= UInt64(chain.count),
                    chain[Int(item.seq) - 1] == envelope.hash
                else {
                    failure =
                        "\(name): change \(item.seq) of device \(item.device.prefix(12)) is not the one its device signed."
                    break
                }
                guard let keyBytes = Hex.decode(item.envelope_key), keyBytes.count == 32,
                    let change = try? envelope.open(withEnvelopeKey: SecureBytes(keyBytes)), change.record == recordID
                else {
                    failure =
                        "\(name): change \(item.seq) of device \(item.device.prefix(12)) does not decrypt with its key to this record."
                    break
                }
                let authored = AuthoredChange(author: envelope.header.author, seq: envelope.header.seq, change: change)
                state.apply(authored)
                changes.append((envelope, authored))
            }
            if let failure {
                report.problems.append(failure)
                continue
            }
            changes.sort {
                ChangeRef(author: $0.change.author, seq: $0.change.seq, timestamp: $0.change.change.timestamp)
                    < ChangeRef(author: $1.change.author, seq: $1.change.seq, timestamp: $1.change.change.timestamp)
            }
            if let seal = state.seal {
                let sealing = changes.first { $0.change.author == seal.op.device && $0.change.seq == seal.op.seq }
                let fields = sealing?.change.change.operations.compactMap { op -> (String, String)? in
                    if case .set(let f, let v, _) = op { return (f, v) }
                    return nil
                }
                if fields == nil || RecordState.sealHash(kind: state.creationKind, fields: fields!) != seal.contentHash
                {
                    report.problems.append("\(name): the testimony's seal does not match its original content.")
                    continue
                }
            }
            let document = LegacyRecordDocument(state: state, changes: changes)
            guard archive.file(entry.record) == LegacyJSON.encode(document) else {
                report.problems.append("\(name): \(entry.record) does not match its signed changes (it was altered).")
                continue
            }
            report.records.append(LegacyVerifiedRecord(state: state, document: document))
        }
        for entry in archive.entries where !expected.contains(entry.path) {
            report.problems.append("The bundle holds a file its manifest does not list: \(entry.path).")
        }
        return report
    }

}
