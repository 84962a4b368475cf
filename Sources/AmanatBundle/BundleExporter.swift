import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// Builds the plaintext archive of an evidence bundle from a vault (Protocol/bundle.md).
///
/// ```swift
/// let archive = try BundleExporter.archive(from: vault, records: states, now: Date())
/// let plaintext = BundleExporter.padded(archive.encoded())
/// ```
public enum BundleExporter {
    /// The archive of `records`: manifest, record documents, custody of exactly their envelopes, chain files.
    public static func archive(from vault: Vault, records: [RecordState], now: Date) throws -> TarArchive {
        guard !records.isEmpty else {
            throw BundleError(.emptySelection, "No record matches the selection; nothing was exported.")
        }
        var archive = TarArchive()
        archive.add("README.txt", Array(readme.utf8))
        var manifestRecords: [BundleManifest.Record] = []
        var lastSeq: [DeviceID: UInt64] = [:]
        var documents: [(String, [UInt8])] = []
        for state in records.sorted(by: { $0.id < $1.id }) {
            let changes = try vault.history(of: state)
            var items: [CustodyDocument.Item] = []
            for (envelope, authored) in changes {
                guard let key = vault.key(epoch: envelope.header.keyEpoch) else {
                    throw StoreError(
                        .damaged, "A change of record \(state.id.hex.prefix(12)) uses a key epoch this device lacks.")
                }
                let envelopeKey = key.envelopeKey(author: authored.author, seq: authored.seq)
                items.append(
                    CustodyDocument.Item(
                        device: authored.author.hex, seq: authored.seq, hash: Hex.encode(envelope.hash),
                        envelope_key: Hex.encode(envelopeKey.copyBytes()),
                        envelope: Data(envelope.encoded()).base64EncodedString()))
                lastSeq[authored.author] = max(lastSeq[authored.author] ?? 0, authored.seq)
            }
            let id = state.id.hex
            documents.append(("records/\(id).json", BundleJSON.encode(RecordDocument(state: state, changes: changes))))
            documents.append(("custody/\(id).json", BundleJSON.encode(CustodyDocument(record: id, envelopes: items))))
            manifestRecords.append(
                .init(id: id, kind: state.creationKind, record: "records/\(id).json", custody: "custody/\(id).json"))
        }
        var devices: [BundleManifest.Device] = []
        var chains: [(String, [UInt8])] = []
        for (device, seq) in lastSeq.sorted(by: { $0.key < $1.key }) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(seq) * ChainLink.length)
            var after: UInt64 = 0
            while after < seq {
                let batch = try vault.envelopes(of: device, after: after, limit: min(1000, Int(seq - after)))
                guard let last = batch.last else { break }
                for envelope in batch { bytes += ChainLink(envelope).encoded }
                after = last.header.seq
            }
            chains.append(("chains/\(device.hex).bin", bytes))
            devices.append(.init(device: device.hex, chain: "chains/\(device.hex).bin", changes: seq))
        }
        let manifest = BundleManifest(
            format: BundleManifest.formatName, vault_id: Hex.encode(vault.vaultID),
            exported_at: now.formatted(.iso8601), exported_by: vault.deviceID.hex, records: manifestRecords,
            devices: devices)
        archive.add("manifest.json", BundleJSON.encode(manifest))
        for (path, bytes) in documents + chains { archive.add(path, bytes) }
        return archive
    }

    /// The archive bytes padded with zeros to the Padmé length, so the bundle's size says little.
    public static func padded(_ archiveBytes: [UInt8]) -> [UInt8] {
        archiveBytes + [UInt8](repeating: 0, count: Padme.paddedLength(archiveBytes.count) - archiveBytes.count)
    }

    /// The README.txt a recipient reads first.
    public static let readme = """
        AMANAT EVIDENCE BUNDLE
        ======================

        This archive was exported from an Amanat vault: an encrypted, offline-first record of
        testimonies and statements kept by human rights documenters. It was encrypted to you with
        age (https://age-encryption.org), and you have opened it.

        What is here
          manifest.json        which records are included, which devices recorded them, and when
                               the bundle was made.
          records/<id>.json    each record as it stands: its fields, tags, any unresolved conflicting
                               values, and its full history (who changed what, and when).
          custody/<id>.json    the signed, encrypted original changes ("envelopes") of each record,
                               each with the one key that decrypts exactly that envelope.
          chains/<device>.bin  each recording device's signed hash chain, with the content of
                               changes that are NOT part of this bundle removed.

        How to verify (without trusting whoever sent it)
          Every change is signed with the Ed25519 key of the device that made it, and each
          device's changes form a hash chain. With the Amanat tool:
              amanat bundle verify THIS-FILE.age --identity your-age-key.txt
          checks every signature and hash chain, decrypts every envelope with its key, and checks
          that records/*.json are exactly what the signed changes produce. The formats are
          specified byte by byte in the Amanat source (Protocol/bundle.md, Protocol/envelope.md),
          so the check can be reimplemented independently.

        What is not here
          Nothing about records that were not exported: the keys included open only the
          envelopes listed in custody/. The chain files show that other changes exist (their
          number and order), not what they say.

        Handle with care: testimonies may describe violence and name places that identify people.
        """
}
