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
    /// The folder of a bundle's attachment files (Protocol/bundle.md): the only files a reader may take by their
    /// hash alone, without holding their bytes.
    public static let attachmentFolder = "attachments"

    /// A testimony's consent as the manifest states it (Protocol/bundle.md §4.1): `conflict` when its consent field
    /// has several visible values, the value when it is `share`, `anonymised` or `restricted`, otherwise `unset`.
    public static func consent(of state: RecordState) -> String? {
        guard state.creationKind == "testimony" else { return nil }
        let values = state.values["consent"] ?? []
        if values.count > 1 { return "conflict" }
        if let v = values.first?.value, ["share", "anonymised", "restricted"].contains(v) { return v }
        return "unset"
    }

    /// Whether a record is exported without `--include-restricted`: every statement; a testimony only when its
    /// consent is `share` or `anonymised` (and not in conflict).
    public static func isShareable(_ state: RecordState) -> Bool {
        guard let consent = consent(of: state) else { return true }
        return consent == "share" || consent == "anonymised"
    }

    /// Records whose documents are written on the cores at once (``archive(from:records:now:attachments:)``).
    static let documentBatch = 8

    /// The archive of `records`: README, the signed manifest, the membership entries, record documents, custody of
    /// exactly their envelopes, and chain files (Protocol/bundle.md §2).
    public static func archive(
        from vault: Vault, records: [RecordState], now: Date, attachments: [RecordID: [BundleManifest.Attachment]] = [:]
    ) throws -> TarArchive {
        guard !records.isEmpty else {
            throw BundleError(.emptySelection, "No record matches the selection; nothing was exported.")
        }
        var lastSeq: [DeviceID: UInt64] = [vault.deviceID: 0]
        var manifestRecords: [BundleManifest.Record] = []
        var recordFiles: [(String, [UInt8])] = []
        var custodyFiles: [(String, [UInt8])] = []
        let limit = UInt64(JSONValue.maximumInteger)
        let millis = now.timeIntervalSince1970 < 0 ? 0 : UInt64(now.timeIntervalSince1970 * 1000)
        let exportedAt = min(millis, limit)
        // The chain links of the envelopes read for the records, so that the chain files do not read them again.
        var links: [DeviceSeq: [UInt8]] = [:]
        // A few records at a time: their histories are read and opened on both cores (the database reads take turns),
        // then their documents (JSON, base64 of the custody envelopes) are written on both cores. Memory holds one
        // batch's histories.
        let sorted = records.sorted(by: { $0.id < $1.id })
        for start in stride(from: 0, to: sorted.count, by: documentBatch) {
            let batch = Array(sorted[start..<min(start + documentBatch, sorted.count)])
            let histories = try ParallelResults.map(batch.count) { try vault.history(of: batch[$0]) }
            var custody: [[BundleEnvelopeItem]] = []
            for (state, changes) in zip(batch, histories) {
                var items: [BundleEnvelopeItem] = []
                for (envelope, authored) in changes {
                    guard let key = vault.key(epoch: envelope.header.keyEpoch) else {
                        throw StoreError(
                            .damaged,
                            "A change of record \(state.id.hex.prefix(12)) uses a key epoch this device lacks.")
                    }
                    guard authored.seq <= limit else {
                        throw BundleError(
                            .verificationFailed,
                            "Record \(state.id.hex.prefix(12)) has a change whose position cannot be written exactly.")
                    }
                    let envelopeKey = key.envelopeKey(author: authored.author, seq: authored.seq)
                    items.append(
                        BundleEnvelopeItem(
                            device: authored.author, seq: authored.seq, hash: envelope.hash,
                            envelopeKey: envelopeKey.copyBytes(), envelope: envelope.encoded()))
                    lastSeq[authored.author] = max(lastSeq[authored.author] ?? 0, authored.seq)
                    links[DeviceSeq(device: authored.author, seq: authored.seq)] = ChainLink(envelope).encoded
                }
                items.sort { DeviceSeq(device: $0.device, seq: $0.seq) < DeviceSeq(device: $1.device, seq: $1.seq) }
                custody.append(items)
                manifestRecords.append(
                    BundleManifest.Record(
                        id: state.id, kind: state.creationKind, consent: consent(of: state),
                        changes: items.map { .init(device: $0.device, seq: $0.seq, envelope: $0.hash) },
                        attachments: (attachments[state.id] ?? []).sorted {
                            $0.path.utf8.lexicographicallyPrecedes($1.path.utf8)
                        }))
            }
            let documents = try ParallelResults.map(batch.count) { i in
                (
                    try RecordDocument(state: batch[i], changes: histories[i], exportedAtMillis: exportedAt).encoded,
                    CustodyDocument(record: batch[i].id, envelopes: custody[i]).json.canonical
                )
            }
            for (state, (record, custody)) in zip(batch, documents) {
                recordFiles.append(("records/\(state.id.hex).json", record))
                custodyFiles.append(("custody/\(state.id.hex).json", custody))
            }
        }

        // Every membership entry this vault holds, so the recipient can check each signer back to the founder.
        var entries: [BundleEnvelopeItem] = []
        for envelope in try vault.authorityEnvelopes() where (try? envelope.openEntry()) != nil {
            guard envelope.header.vaultID == vault.vaultID, envelope.header.seq <= limit else { continue }
            entries.append(
                BundleEnvelopeItem(
                    device: envelope.header.author, seq: envelope.header.seq, hash: envelope.hash, envelopeKey: nil,
                    envelope: envelope.encoded()))
            lastSeq[envelope.header.author] = max(lastSeq[envelope.header.author] ?? 0, envelope.header.seq)
        }
        entries.sort { DeviceSeq(device: $0.device, seq: $0.seq) < DeviceSeq(device: $1.device, seq: $1.seq) }
        if lastSeq[vault.deviceID] == 0 {
            // A device of a first-release vault that never wrote has no signed log to place it in the vault.
            lastSeq[vault.deviceID] = try vault.envelopes(of: vault.deviceID, after: 0, limit: 1).isEmpty ? 0 : 1
        }
        guard lastSeq[vault.deviceID]! >= 1 else {
            throw BundleError(
                .nothingSigned,
                "This device has written nothing in the vault yet, so no signed entry places it in the vault; write or sync first."
            )
        }

        var devices: [BundleManifest.Device] = []
        var chainFiles: [(String, [UInt8])] = []
        for (device, seq) in lastSeq.sorted(by: { $0.key < $1.key }) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(seq) * ChainLink.length)
            let gap = StoreError(
                .damaged, "The vault is damaged: the log of device \(device.hex.prefix(12)) has a gap.")
            var after: UInt64 = 0
            while after < seq {
                if let link = links[DeviceSeq(device: device, seq: after + 1)] {
                    bytes += link
                    after += 1
                    continue
                }
                // The next run of links not read for the records (up to 1000), read from the log.
                var run: UInt64 = 1
                while run < 1000, after + run < seq, links[DeviceSeq(device: device, seq: after + run + 1)] == nil {
                    run += 1
                }
                let before = after
                for envelope in try vault.envelopes(of: device, after: after, limit: Int(run)) {
                    guard envelope.header.seq == after + 1 else { throw gap }
                    bytes += ChainLink(envelope).encoded
                    after += 1
                }
                guard after > before else { throw gap }
            }
            try checkChain(bytes, of: device, vaultID: vault.vaultID)
            let name = vault.memberName(device).flatMap { $0.utf8.count <= SealedName.maximumLength ? $0 : nil }
            let entry = BundleManifest.Device(device: device, links: seq, name: name)
            chainFiles.append((entry.chain, bytes))
            devices.append(entry)
        }
        let membership = MembershipDocument(vaultID: vault.vaultID, entries: entries).json.canonical
        let hasCopies = manifestRecords.contains { $0.attachments.contains { $0.stripped != nil } }
        let readmeBytes = Array((hasCopies ? readme + strippedReadme : readme).utf8)
        let files =
            [("README.txt", readmeBytes), ("membership.json", membership)] + recordFiles + custodyFiles
            + chainFiles
        // Attached files are streamed after the documents (``stream(_:attachments:vault:write:)``); their SHA-256 is
        // the one their signed `attach` operation states, checked again while they are written.
        let attachedFiles = manifestRecords.flatMap(\.attachments).map {
            BundleManifest.File(path: $0.path, sha256: $0.sha256)
        }
        let manifest = BundleManifest(
            vaultID: vault.vaultID, exportedAtMillis: exportedAt, exportedBy: vault.deviceID,
            files: (try ParallelResults.map(files.count) {
                BundleManifest.File(path: files[$0].0, sha256: SHA256.hash(files[$0].1))
            } + attachedFiles)
            .sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) },
            devices: devices, records: manifestRecords)
        let manifestBytes = manifest.json.canonical
        let signature = vault.keyring.device.sign(BundleManifest.signatureContext + manifestBytes)

        var archive = TarArchive()
        archive.add("README.txt", readmeBytes)
        archive.add("manifest.json", manifestBytes)
        archive.add("manifest.sig", signature)
        archive.add("membership.json", membership)
        for (path, bytes) in recordFiles + custodyFiles + chainFiles { archive.add(path, bytes) }
        return archive
    }

    /// Checks that the links of a device's chain file follow one another from its first change and that the last
    /// one's signature holds, as `bundle verify` will (one signature: each header names the hash of the link before
    /// it). A stored envelope that was altered or replaced (which `amanat verify` reports) is refused here, rather
    /// than exported into a bundle that no verifier accepts.
    static func checkChain(_ bytes: [UInt8], of device: DeviceID, vaultID: [UInt8]) throws {
        var previous = ChainHead.empty
        var last: ChainLink?
        for start in stride(from: 0, to: bytes.count, by: ChainLink.length) {
            let link = try? ChainLink(decoding: bytes[start..<min(start + ChainLink.length, bytes.count)])
            guard let link, link.header.author == device, link.header.vaultID == vaultID,
                link.header.seq == previous.seq + 1, link.header.previousHash == previous.hash
            else {
                throw StoreError(
                    .damaged,
                    "The vault is damaged: change \(previous.seq + 1) of device \(device.hex.prefix(12)) is not the one its device signed in its chain; run `amanat verify`."
                )
            }
            previous = ChainHead(seq: link.header.seq, hash: link.hash)
            last = link
        }
        guard last?.hasValidSignature ?? true else {
            throw StoreError(
                .damaged,
                "The vault is damaged: the signature on change \(previous.seq) of device \(device.hex.prefix(12)) does not hold; run `amanat verify`."
            )
        }
    }

    /// The file name of an attachment in a bundle: `attachments/<record id>/<first 12 of attachment id>.<ext>`, with an
    /// extension from its media type so that a recipient's tools open it.
    public static func attachmentPath(record: RecordID, attachment: AttachmentInfo) -> String {
        let ext =
            [
                "image/jpeg": "jpg", "image/png": "png", "image/heic": "heic", "video/mp4": "mp4",
                "video/quicktime": "mov", "audio/mp4": "m4a", "audio/mpeg": "mp3", "audio/ogg": "ogg",
                "audio/wav": "wav", "application/pdf": "pdf",
            ][attachment.mediaType] ?? "bin"
        return "\(attachmentFolder)/\(record.hex)/\(attachment.id.prefix(12)).\(ext)"
    }

    /// The manifest entries of the listed attachments of `states` (detached ones are not exported).
    public static func attachmentEntries(of states: [RecordState]) -> [RecordID: [BundleManifest.Attachment]] {
        var entries: [RecordID: [BundleManifest.Attachment]] = [:]
        for state in states where !state.attachments.isEmpty {
            entries[state.id] = state.attachments.map {
                BundleManifest.Attachment(
                    attachment: $0.id, path: attachmentPath(record: state.id, attachment: $0), sha256: $0.sha256,
                    size: $0.size)
            }
        }
        return entries
    }

    /// A location-stripped copy of an attached file (`export --strip-location`, Protocol/attachments.md §9).
    public struct StrippedCopy: Sendable, Equatable {
        /// The copy's SHA-256 and size.
        public var sha256: [UInt8]
        public var size: UInt64
        /// What was removed (names of ``LocationStripper/Removed``), sorted.
        public var removed: [String]
    }

    /// The first pass of `export --strip-location`: streams every JPEG, PNG, HEIC, MP4, QuickTime and M4A attachment
    /// of `attachments` from the vault's chunks through a ``LocationStripper`` and returns, by attachment id, the
    /// SHA-256 and size of each copy that differs from its original (the manifest states them before the files are
    /// written, so the copy is made twice; the second pass checks it came out the same). Throws
    /// ``BundleError/Code/cannotStrip`` for a file whose structure the stripper cannot follow, or whose copy still
    /// looks like it carries a location to the attach scanner; nothing is exported then.
    public static func strippedCopies(
        _ attachments: [(record: RecordID, info: AttachmentInfo, path: String)], vault: Vault,
        progress: (String) -> Void = { _ in }
    ) throws -> [String: StrippedCopy] {
        var copies: [String: StrippedCopy] = [:]
        for (index, item) in attachments.enumerated() {
            let info = item.info
            guard let stripper = LocationStripper(mediaType: info.mediaType, size: info.size) else { continue }
            progress("Removing location metadata: attachment \(index + 1) of \(attachments.count)…")
            let what = "Attachment \(info.id.prefix(12)) of record \(item.record.hex.prefix(12)) (\(info.mediaType))"
            let hasher = SHA256.Hasher()
            // The attach scanner's view of the copy: its first and last chunk.
            let chunk = UInt64(info.chunkSize)
            let lastStart = info.size == 0 ? 0 : (info.size - 1) / chunk * chunk
            var first: [UInt8] = []
            var last: [UInt8] = []
            var written: UInt64 = 0
            func take(_ bytes: [UInt8]) {
                guard !bytes.isEmpty else { return }
                hasher.update(bytes)
                let start = written
                written += UInt64(bytes.count)
                if start < chunk { first += bytes.prefix(Int(min(chunk - start, UInt64(bytes.count)))) }
                if written > lastStart {
                    last += bytes.suffix(Int(min(written - lastStart, UInt64(bytes.count))))
                }
            }
            do {
                try vault.extract(info, record: item.record) { take(try stripper.feed($0)) }
                take(try stripper.finish())
            } catch let failure as LocationStripper.Failure {
                throw BundleError(
                    .cannotStrip,
                    "\(what) cannot be stripped of its location: \(failure.reason). Nothing was exported; leave its record out of the selection, or export without --strip-location only if its location may be disclosed."
                )
            }
            guard written == info.size else {
                throw BundleError(.cannotStrip, "\(what): its stripped copy does not have the original's size.")
            }
            let scanner = MetadataScanner()
            scanner.feed(first, 0)
            if lastStart > 0 { scanner.feed(last, Int(lastStart / chunk)) }
            if scanner.flags(mediaType: info.mediaType) & AttachmentSpec.locationFlag != 0 {
                throw BundleError(
                    .cannotStrip,
                    "\(what) still carries something that looks like location metadata after stripping, in a place this version cannot edit. Nothing was exported; leave its record out of the selection."
                )
            }
            let digest = hasher.finalize()
            guard digest != info.sha256 else { continue }
            copies[info.id] = StrippedCopy(
                sha256: digest, size: written, removed: stripper.removed.sorted().map(\.rawValue))
        }
        return copies
    }

    /// The manifest entries of `entries` with each stripped copy's SHA-256 and size, and what it stands for.
    public static func applying(
        _ copies: [String: StrippedCopy], to entries: [RecordID: [BundleManifest.Attachment]]
    ) -> [RecordID: [BundleManifest.Attachment]] {
        entries.mapValues { list in
            list.map { entry in
                guard let copy = copies[entry.attachment] else { return entry }
                return BundleManifest.Attachment(
                    attachment: entry.attachment, path: entry.path, sha256: copy.sha256, size: copy.size,
                    stripped: BundleManifest.Stripped(
                        originalSHA256: entry.sha256, originalSize: entry.size, removed: copy.removed))
            }
        }
    }

    /// Writes the bundle's plaintext to `write` in pieces: the documents of `archive`, then each attachment streamed
    /// from the vault's chunks (each chunk authenticated, the SHA-256 of the whole compared with the signed one) —
    /// through a ``LocationStripper`` for those in `stripped`, checked against the copy's SHA-256 of the first pass —,
    /// the end of the archive and the Padmé padding. Memory holds one chunk at a time, however large the files.
    public static func stream(
        _ archive: TarArchive, attachments: [(record: RecordID, info: AttachmentInfo, path: String)], vault: Vault,
        stripped: [String: StrippedCopy] = [:], write: ([UInt8]) throws -> Void
    ) throws {
        // The documents as `TarArchive.encoded()` lays them out, written file by file rather than copied into one
        // array first; the end-of-archive marker comes after the attachments.
        var total = archive.entries.reduce(1024) { $0 + 512 + ($1.contents.count + 511) / 512 * 512 }
        func size(_ item: (record: RecordID, info: AttachmentInfo, path: String)) -> UInt64 {
            stripped[item.info.id]?.size ?? item.info.size
        }
        for item in attachments {
            let (sum, overflow) = UInt64(total).addingReportingOverflow(512 + (size(item) + 511) / 512 * 512)
            guard !overflow, sum < UInt64(Int.max / 2) else {
                throw BundleError(.verificationFailed, "The attachments are too large for one bundle.")
            }
            total = Int(sum)
        }
        for entry in archive.entries {
            try write(TarArchive.header(path: entry.path, size: entry.contents.count))
            try write(entry.contents)
            let remainder = entry.contents.count % 512
            if remainder != 0 { try write([UInt8](repeating: 0, count: 512 - remainder)) }
        }
        for item in attachments {
            try write(TarArchive.header(path: item.path, size: Int(size(item))))
            if let copy = stripped[item.info.id],
                let stripper = LocationStripper(mediaType: item.info.mediaType, size: item.info.size)
            {
                let hasher = SHA256.Hasher()
                var count: UInt64 = 0
                func put(_ bytes: [UInt8]) throws {
                    guard !bytes.isEmpty else { return }
                    hasher.update(bytes)
                    count += UInt64(bytes.count)
                    guard count <= copy.size else { return }
                    try write(bytes)
                }
                do {
                    try vault.extract(item.info, record: item.record) { try put(try stripper.feed($0)) }
                    try put(try stripper.finish())
                } catch let failure as LocationStripper.Failure {
                    throw BundleError(
                        .cannotStrip,
                        "Attachment \(item.info.id.prefix(12)) cannot be stripped of its location: \(failure.reason).")
                }
                guard count == copy.size, hasher.finalize() == copy.sha256 else {
                    throw BundleError(
                        .cannotStrip,
                        "The location-stripped copy of attachment \(item.info.id.prefix(12)) came out differently the second time; the bundle was not written."
                    )
                }
            } else {
                try vault.extract(item.info, record: item.record, into: write)
            }
            let remainder = Int(size(item) % 512)
            if remainder != 0 { try write([UInt8](repeating: 0, count: 512 - remainder)) }
        }
        try write([UInt8](repeating: 0, count: 1024))
        var padding = Padme.paddedLength(total) - total
        let zeros = [UInt8](repeating: 0, count: min(padding, 1 << 20))
        while padding > 0 {
            let n = min(padding, zeros.count)
            try write(n == zeros.count ? zeros : Array(zeros[0..<n]))
            padding -= n
        }
    }

    /// The archive bytes padded with zeros to the Padmé length, so the bundle's size says little.
    public static func padded(_ archiveBytes: [UInt8]) -> [UInt8] {
        archiveBytes + [UInt8](repeating: 0, count: Padme.paddedLength(archiveBytes.count) - archiveBytes.count)
    }

    /// What README.txt adds when the bundle holds location-stripped copies (`export --strip-location`).
    public static let strippedReadme = """


        Location-stripped copies
          Some files under attachments/ are copies with their location metadata (GPS coordinates,
          place names) removed at the exporter's request; everything else in them is as recorded.
          manifest.json marks each with "stripped": the SHA-256 of the copy, and the SHA-256 of the
          original, which is the one the record's signed history states. The originals stay sealed in
          the exporting team's vault: ask them for an original if you need to compare it.
        """

    /// The README.txt a recipient reads first.
    public static let readme = """
        AMANAT EVIDENCE BUNDLE (format amanat-bundle/2)
        ===============================================

        This archive was exported from an Amanat vault: an encrypted, offline-first record of
        testimonies and statements kept by human rights documenters. It was encrypted to you with
        age (https://age-encryption.org), and you have opened it.

        What is here
          manifest.json        which records and devices are included, when and by which device the
                               bundle was made, the SHA-256 of every other file, each testimony's
                               consent, and for each record the list of ALL its changes the
                               exporting vault held (see "Completeness" below).
          manifest.sig         the exporting device's Ed25519 signature of manifest.json: together
                               with the SHA-256 list it covers every byte of this bundle.
          membership.json      the vault's signed membership entries: who founded the vault, who was
                               invited and admitted with which role, who was revoked.
          records/<id>.json    each record as its disclosed changes make it: its fields, tags, any
                               unresolved conflicting values, and its history (who changed what, when).
          custody/<id>.json    the signed, encrypted original changes ("envelopes") of each record,
                               each with the one key that decrypts exactly that envelope.
          chains/<device>.bin  each device's signed hash chain, with the content of changes that are
                               NOT part of this bundle removed.

        How to verify (without trusting whoever sent it)
          Every change is signed with the Ed25519 key of the device that made it, and each device's
          changes form a hash chain. With the Amanat tool:
              amanat bundle verify THIS-FILE.age --identity your-age-key.txt --expect-vault FINGERPRINT
          checks the manifest signature and every file hash, every signature and hash chain, decrypts
          every envelope with its key, checks that records/*.json are exactly what the signed changes
          produce, and checks each signing device's membership back to the device that founded the
          vault (the vault id is a hash of the founder's key). FINGERPRINT is the vault fingerprint
          the team gives you through a channel you trust (they see it with `amanat status`). The
          formats are specified byte by byte in the Amanat source (Protocol/bundle.md), so the check
          can be reimplemented independently; Scripts/verify-bundle.py is one such implementation.

        Completeness
          For each record, the manifest lists every change the exporting vault held. If the custody
          file leaves some of them out, the verifier says "N changes not disclosed": those changes
          exist (their devices signed them, they are in the chains) but their content is not in this
          bundle — for example a later amendment or correction the exporter withheld. The record as
          shown is then what the disclosed changes alone produce, and may not be the record as the
          team sees it. Ask the sender about them.

        What the bundle cannot prove
          Device names are the exporter's statement ("named by the exporter"): the signed entries
          prove keys and roles, not who held a device. An exporter could leave out membership
          entries, such as a later revocation. Times are the signing devices' own clocks.

        What is not here
          Nothing about records that were not exported: the keys included open only the envelopes
          listed in custody/. The chain files show that other changes exist (their number and
          order), not what they say. Testimonies whose witnesses did not consent to sharing are
          left out unless the exporter chose otherwise; the manifest states each testimony's consent.

        Handle with care: testimonies may describe violence and name places that identify people.
        """
}
