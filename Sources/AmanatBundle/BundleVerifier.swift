import AmanatCore
import AmanatCrypto
import Foundation

/// A record whose custody verified, with what it shows and how it came to be.
public struct VerifiedRecord: Sendable {
    /// The replayed state.
    public var state: RecordState
    /// The record document, as re-rendered from the signed changes.
    public var document: RecordDocument
}

/// What `bundle verify` found.
public struct BundleReport: Sendable {
    /// The manifest, if it parsed.
    public var manifest: BundleManifest?
    /// Records whose custody verified.
    public var records: [VerifiedRecord] = []
    /// Signed changes checked across all chains.
    public var chainLinks = 0
    /// Problems, one sentence each, naming the record or device; empty when the bundle verifies.
    public var problems: [String] = []
}

/// Verifies a decrypted bundle archive offline: every chain, signature, envelope key and record document
/// (Protocol/bundle.md §5).
public enum BundleVerifier {
    /// Checks everything and returns a report; never throws for content problems, it lists them.
    public static func verify(_ archive: TarArchive) -> BundleReport {
        var report = BundleReport()
        guard let manifestBytes = archive.file("manifest.json") else {
            report.problems.append("The bundle has no manifest.json.")
            return report
        }
        let manifest: BundleManifest
        do {
            manifest = try BundleJSON.decode(BundleManifest.self, manifestBytes, path: "manifest.json")
        } catch {
            report.problems.append("manifest.json in the bundle is not valid.")
            return report
        }
        report.manifest = manifest
        guard manifest.format == BundleManifest.formatName else {
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
                let custody = try? BundleJSON.decode(CustodyDocument.self, custodyBytes, path: entry.custody),
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
            let document = RecordDocument(state: state, changes: changes)
            guard archive.file(entry.record) == BundleJSON.encode(document) else {
                report.problems.append("\(name): \(entry.record) does not match its signed changes (it was altered).")
                continue
            }
            report.records.append(VerifiedRecord(state: state, document: document))
        }
        for entry in archive.entries where !expected.contains(entry.path) {
            report.problems.append("The bundle holds a file its manifest does not list: \(entry.path).")
        }
        return report
    }

    /// Reads an extracted bundle folder back into an archive (for verifying a bundle that was opened).
    public static func archive(fromDirectory url: URL) throws -> TarArchive {
        var archive = TarArchive()
        let fm = FileManager.default
        guard let paths = try? fm.subpathsOfDirectory(atPath: url.path) else {
            throw BundleError(.malformedArchive, "\(url.path) cannot be read.")
        }
        for path in paths.sorted() {
            var isDirectory: ObjCBool = false
            let full = url.appendingPathComponent(path)
            guard fm.fileExists(atPath: full.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            guard TarArchive.isSafePath(path), let data = fm.contents(atPath: full.path) else {
                throw BundleError(.malformedArchive, "\(path) in \(url.path) cannot be read.")
            }
            archive.add(path, Array(data))
        }
        return archive
    }
}
