import AmanatCore
import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A custody envelope that verified: the signed original, where its device's chain places it, its key and change.
public struct VerifiedCustody: Sendable {
    /// The envelope as its device signed it.
    public var envelope: Envelope
    /// The chain link at its seq (equal hash).
    public var link: ChainLink
    /// The key of this envelope only.
    public var envelopeKey: [UInt8]
    /// The decrypted change.
    public var change: AuthoredChange
    /// Whether the membership entries prove its device active, with a role that writes, at its seq.
    public var signerProven: Bool
}

/// A membership entry that verified: the envelope, its chain link and what it says.
public struct VerifiedEntry: Sendable {
    public var envelope: Envelope
    public var link: ChainLink
    public var entry: AuthoredEntry
}

/// A record whose custody verified, with what it shows and how it came to be.
public struct VerifiedRecord: Sendable {
    /// The record id.
    public var id: RecordID
    /// The manifest's entry: kind, consent at export, the completeness statement.
    public var entry: BundleManifest.Record
    /// The state replayed from the disclosed changes.
    public var state: RecordState
    /// The record document, as re-rendered from the signed changes (equal to the file's bytes).
    public var document: RecordDocument
    /// The disclosed changes, verified, in history order.
    public var custody: [VerifiedCustody]
    /// Changes the manifest says the exporter held for the record but the bundle does not disclose.
    public var undisclosed: [BundleManifest.StatedChange]
}

/// What the membership entries of a bundle say about one device of its manifest.
public struct SignerStatus: Sendable {
    public var device: DeviceID
    /// The exporter's statement of its name.
    public var name: String?
    /// `coordinator`, `member`, `reader` or `revoked`, when proven.
    public var role: String?
    /// Whether the vault is founded and its entries admit the device.
    public var proven: Bool
}

/// What verifying a bundle found (Protocol/bundle.md §7).
public struct BundleReport: Sendable {
    /// How the verification ended.
    public enum Outcome: Sendable, Equatable {
        /// Intact and every signer proven (exit status 0).
        case verified
        /// Intact, but something is not proven (exit status 3).
        case unproven
        /// Not intact (exit status 65).
        case damaged
    }

    /// 2, or 1 for a bundle of the first format (§9).
    public var format = 2
    /// The manifest, if it parsed (format 2).
    public var manifest: BundleManifest?
    /// The report of a format-1 bundle.
    public var legacy: LegacyReport?
    /// The vault the bundle names.
    public var vaultID: [UInt8]?
    /// Records whose custody verified.
    public var records: [VerifiedRecord] = []
    /// The membership entries that verified.
    public var entries: [VerifiedEntry] = []
    /// Each device's verified chain.
    public var chains: [DeviceID: [ChainLink]] = [:]
    /// The membership the entries evaluate to.
    public var membership: MembershipState?
    /// Whether the entries hold the vault's founding entry.
    public var founded = false
    /// Each device of the manifest with its name and proof.
    public var signers: [SignerStatus] = []
    /// Signed changes checked across all chains.
    public var chainLinks = 0
    /// Integrity failures, one sentence each naming the file, record or device; empty when the bundle is intact.
    public var problems: [String] = []
    /// Why the bundle, intact, does not prove its signers (or is not of the expected vault); one sentence each.
    public var unproven: [String] = []

    /// The outcome.
    public var outcome: Outcome {
        if !problems.isEmpty { return .damaged }
        return unproven.isEmpty ? .verified : .unproven
    }

    /// The exporter's name for `device` (nil if it states none).
    public func name(of device: DeviceID) -> String? {
        manifest?.devices.first { $0.device == device }?.name
    }

    /// "device 1df089eb69f6 ("Laila", named by the exporter)".
    public func label(_ device: DeviceID) -> String {
        let short = String(device.hex.prefix(12))
        guard let name = name(of: device) else { return "device \(short)" }
        return "device \(short) (\"\(name)\", named by the exporter)"
    }
}

/// The vault fingerprint: the vault id as 8 groups of 4 hex digits (Protocol/bundle.md §7).
public enum VaultFingerprint {
    /// `3f9a-12bc-…`.
    public static func of(_ vaultID: [UInt8]) -> String {
        let hex = Array(Hex.encode(vaultID))
        return stride(from: 0, to: hex.count, by: 4).map { String(hex[$0..<min($0 + 4, hex.count)]) }
            .joined(separator: "-")
    }

    /// The vault id a fingerprint names (dashes, spaces and case ignored), or nil.
    public static func parse(_ text: String) -> [UInt8]? {
        let digits = text.lowercased().filter { $0 != "-" && $0 != " " }
        guard digits.count == 32, digits.allSatisfy({ $0.isHexDigit }), let raw = Hex.decode(digits) else { return nil }
        return raw
    }
}

/// Verifies a decrypted bundle archive offline (Protocol/bundle.md §7): the manifest signature and file hashes,
/// every chain, the membership entries back to the vault's founder, every envelope and record document.
///
/// ```swift
/// let report = BundleVerifier.verify(archive, expectVault: VaultFingerprint.parse("3f9a-…"))
/// if report.outcome == .verified { for record in report.records { … record.custody … } }
/// ```
public enum BundleVerifier {
    /// Checks everything and returns a report; never throws for content problems, it lists them.
    /// The consent a testimony's record document shows (bundle.md §4.1): `conflict` if its `consent` field has
    /// other values, else the displayed value if it is one of the three words, else `unset`.
    static func consent(shownBy document: RecordDocument) -> String {
        if document.conflicts.contains(where: { $0.0 == "consent" }) { return "conflict" }
        let value = document.fields.first { $0.0 == "consent" }?.1
        if let value, ["share", "anonymised", "restricted"].contains(value) { return value }
        return "unset"
    }

    /// What is wrong with the attached files of a record, if anything (Protocol/bundle.md §7 step 6).
    static func attachmentProblem(
        _ entry: BundleManifest.Record, verified: [VerifiedCustody], manifest: BundleManifest, archive: TarArchive
    ) -> String? {
        var attached: [String: AttachmentSpec] = [:]
        for change in verified {
            for (index, op) in change.change.change.operations.enumerated() {
                if case .attach(let spec) = op { attached[AttachmentInfo.id(of: change.change.opID(index))] = spec }
            }
        }
        for a in entry.attachments {
            guard let spec = attached[a.attachment] else {
                return "its attachment \(a.attachment.prefix(12)) is not attached by any disclosed change."
            }
            if let stripped = a.stripped {
                // A location-stripped copy (export --strip-location): its original is the one sealed in custody; the
                // copy itself is covered by the manifest's SHA-256 and signature.
                guard spec.sha256 == stripped.originalSHA256, spec.size == stripped.originalSize else {
                    return
                        "attachment \(a.attachment.prefix(12)) claims to be a location-stripped copy of an original whose SHA-256 or size is not the one sealed in custody."
                }
            } else {
                guard spec.sha256 == a.sha256, spec.size == a.size else {
                    return
                        "the file of attachment \(a.attachment.prefix(12)) is not the one its signed change states (SHA-256 or size)."
                }
            }
            guard manifest.files.contains(where: { $0.path == a.path && $0.sha256 == a.sha256 }),
                let file = archive.entry(a.path), UInt64(file.size) == a.size
            else {
                return a.stripped == nil
                    ? "the file \(a.path) of attachment \(a.attachment.prefix(12)) is missing or is not the one its signed change states."
                    : "the location-stripped copy \(a.path) of attachment \(a.attachment.prefix(12)) is missing or is not the one the manifest states."
            }
        }
        return nil
    }

    public static func verify(_ archive: TarArchive, expectVault: [UInt8]? = nil) -> BundleReport {
        var report = BundleReport()
        guard let manifestBytes = archive.file("manifest.json") else {
            report.problems.append("The bundle has no manifest.json.")
            return report
        }
        // The format decides how the rest is read; a first-format bundle is pretty-printed, not canonical.
        let format = (try? JSONValue.parse(manifestBytes))?["format"]?.stringValue
        if format == LegacyManifest.formatName {
            return verifyLegacy(archive, expectVault: expectVault)
        }
        let manifest: BundleManifest
        do {
            let value: JSONValue
            do {
                value = try JSONValue.parseCanonical(manifestBytes)
            } catch let error as JSONValue.JSONError {
                throw DocumentError("manifest.json", "\(error.description)")
            }
            manifest = try BundleManifest(json: value)
        } catch let error as DocumentError {
            if let format, format != BundleManifest.formatName {
                report.problems.append(
                    "The bundle's format \(TerminalSafe.quote(format)) is not one this version reads.")
            } else {
                report.problems.append(error.message)
            }
            return report
        } catch {
            report.problems.append("manifest.json is not valid.")
            return report
        }
        report.manifest = manifest
        report.vaultID = manifest.vaultID
        let vaultID = manifest.vaultID

        // 2. The exporter's signature over the manifest.
        if let signature = archive.file("manifest.sig") {
            if signature.count != 64
                || !SigningKeyPair.verify(
                    signature, of: BundleManifest.signatureContext + manifestBytes,
                    publicKey: manifest.exportedBy.bytes)
            {
                report.problems.append(
                    "manifest.sig does not verify under device \(manifest.exportedBy.hex.prefix(12)): the manifest was altered or that device did not sign it."
                )
            }
        } else {
            report.problems.append("The bundle has no manifest.sig: it is not signed.")
        }

        // 3. Every file is listed with its SHA-256, and nothing else is present.
        // Paths as UTF-8 bytes: a Set<String> would take `é` and `e` + U+0301 for one path (canonical equivalence).
        // Documents have fixed paths outside attachments/ (the manifest's parser refuses any other), so a file read
        // by its hash alone (``TarArchive/Summary``) is never one the steps below need the bytes of.
        var listed: Set<[UInt8]> = []
        for file in manifest.files {
            listed.insert(Array(file.path.utf8))
            guard let entry = archive.entry(file.path) else {
                report.problems.append("\(file.path) is missing from the bundle.")
                continue
            }
            if entry.sha256 != file.sha256 {
                report.problems.append("\(file.path) was altered: its SHA-256 is not the one the manifest states.")
            }
        }
        for entry in archive.entries where !listed.contains(Array(entry.path.utf8)) {
            if entry.path == "manifest.json" || entry.path == "manifest.sig" { continue }
            report.problems.append("The bundle holds a file its manifest does not list: \(entry.path).")
        }
        let named =
            ["README.txt", "membership.json"] + manifest.devices.map(\.chain)
            + manifest.records.flatMap {
                [$0.record, $0.custody] + $0.attachments.map(\.path)
            }
        for path in named where !listed.contains(Array(path.utf8)) {
            report.problems.append("manifest.json names \(path) but does not list its hash.")
        }

        // 4. Each device's chain: contiguous from seq 1, hash-linked, last signature valid.
        for device in manifest.devices {
            let short = device.device.hex.prefix(12)
            guard let bytes = archive.file(device.chain) else { continue }  // reported above
            guard bytes.count % ChainLink.length == 0, UInt64(bytes.count / ChainLink.length) == device.links else {
                report.problems.append("The chain of device \(short) is truncated or padded.")
                continue
            }
            var links: [ChainLink] = []
            var previous = ChainHead.empty.hash
            var broken = false
            for index in 0..<(bytes.count / ChainLink.length) {
                let start = index * ChainLink.length
                guard let link = try? ChainLink(decoding: bytes[start..<start + ChainLink.length]),
                    link.header.vaultID == vaultID, link.header.author == device.device,
                    link.header.seq == UInt64(index + 1), link.header.previousHash == previous
                else {
                    report.problems.append(
                        "The chain of device \(short) is broken at change \(index + 1): it was altered or reordered.")
                    broken = true
                    break
                }
                previous = link.hash
                links.append(link)
            }
            if broken { continue }
            guard let last = links.last, last.hasValidSignature else {
                report.problems.append("The chain of device \(short) carries a forged signature.")
                continue
            }
            report.chainLinks += links.count
            report.chains[device.device] = links
        }
        func link(_ device: DeviceID, _ seq: UInt64) -> ChainLink? {
            guard let chain = report.chains[device], seq >= 1, seq <= UInt64(chain.count) else { return nil }
            return chain[Int(seq) - 1]
        }

        // 5. Membership entries: in their chains, of this vault, opening to entries.
        if let bytes = archive.file("membership.json") {
            do {
                let document: MembershipDocument
                do {
                    document = try MembershipDocument(json: try JSONValue.parseCanonical(bytes))
                } catch let error as JSONValue.JSONError {
                    throw DocumentError("membership.json", error.description)
                }
                guard document.vaultID == vaultID else {
                    throw DocumentError("membership.json", "it names another vault than the manifest")
                }
                for item in document.entries {
                    let what = "membership.json: entry \(item.seq) of device \(item.device.hex.prefix(12))"
                    guard let envelope = try? Envelope(decoding: item.envelope), envelope.header.author == item.device,
                        envelope.header.seq == item.seq, envelope.header.vaultID == vaultID, envelope.isAuthority,
                        envelope.hash == item.hash
                    else {
                        report.problems.append("\(what) is malformed or is not the envelope it names.")
                        continue
                    }
                    guard let placed = link(item.device, item.seq), placed.hash == envelope.hash else {
                        report.problems.append("\(what) is not the one its device signed in its chain.")
                        continue
                    }
                    guard let entry = try? envelope.openEntry() else {
                        report.problems.append("\(what) does not open to a membership entry.")
                        continue
                    }
                    report.entries.append(VerifiedEntry(envelope: envelope, link: placed, entry: entry))
                }
            } catch let error as DocumentError {
                report.problems.append(error.message)
            } catch {
                report.problems.append("membership.json is not valid.")
            }
        }
        let membership = MembershipState.evaluate(vaultID: vaultID, entries: report.entries.map(\.entry))
        report.membership = membership
        report.founded = membership.founded
        for device in manifest.devices {
            let member = report.founded ? membership.members[device.device] : nil
            report.signers.append(
                SignerStatus(
                    device: device.device, name: device.name,
                    role: member.map { $0.isRevoked ? "revoked" : $0.currentRole.description }, proven: member != nil))
        }
        if !report.founded {
            report.unproven.append(
                "The bundle holds no founding entry of vault \(VaultFingerprint.of(vaultID)): no signer can be proven to be a member."
            )
        } else if let exporter = membership.members[manifest.exportedBy] {
            if exporter.isRevoked {
                report.unproven.append("The exporting \(report.label(manifest.exportedBy)) was revoked from the vault.")
            }
        } else {
            report.unproven.append(
                "The exporting \(report.label(manifest.exportedBy)) is not proven to be a member of the vault.")
        }

        // 6–7. Each record: its envelopes are in the chains, decrypt with their keys, and replay to its document.
        for entry in manifest.records {
            let name = "Record \(entry.id.hex.prefix(12))"
            let custody: CustodyDocument
            do {
                guard let bytes = archive.file(entry.custody) else { continue }  // reported above
                do {
                    custody = try CustodyDocument(json: try JSONValue.parseCanonical(bytes), path: entry.custody)
                } catch let error as JSONValue.JSONError {
                    throw DocumentError(entry.custody, error.description)
                }
                guard custody.record == entry.id else { throw DocumentError(entry.custody, "it names another record") }
            } catch let error as DocumentError {
                report.problems.append(error.message)
                continue
            } catch {
                report.problems.append("\(entry.custody) is not valid.")
                continue
            }
            var state = RecordState(id: entry.id)
            var verified: [VerifiedCustody] = []
            var failure: String?
            let stated = Set(entry.changes)
            for item in custody.envelopes {
                let what = "change \(item.seq) of device \(item.device.hex.prefix(12))"
                guard let envelope = try? Envelope(decoding: item.envelope), envelope.header.author == item.device,
                    envelope.header.seq == item.seq, envelope.hash == item.hash, !envelope.isAuthority
                else {
                    failure = "\(name): \(what) in its custody is malformed or is not the envelope it names."
                    break
                }
                guard let placed = link(item.device, item.seq), placed.hash == envelope.hash else {
                    failure = "\(name): \(what) is not the one its device signed."
                    break
                }
                guard stated.contains(.init(device: item.device, seq: item.seq, envelope: item.hash)) else {
                    failure =
                        "\(name): \(what) is disclosed but the manifest does not list it among the record's changes."
                    break
                }
                guard let key = item.envelopeKey,
                    let change = try? envelope.open(withEnvelopeKey: SecureBytes(key)), change.record == entry.id
                else {
                    failure = "\(name): \(what) does not decrypt with its key to this record."
                    break
                }
                let authored = AuthoredChange(author: item.device, seq: item.seq, change: change)
                state.apply(authored)
                let member = report.founded ? membership.members[item.device] : nil
                let proven =
                    member.map { $0.isActive(at: item.seq) && $0.role(at: item.seq).canWrite } ?? false
                verified.append(
                    VerifiedCustody(
                        envelope: envelope, link: placed, envelopeKey: key, change: authored, signerProven: proven))
            }
            if let failure {
                report.problems.append(failure)
                continue
            }
            if let missing = entry.changes.first(where: { link($0.device, $0.seq)?.hash != $0.envelope }) {
                report.problems.append(
                    "\(name): the manifest lists change \(missing.seq) of device \(missing.device.hex.prefix(12)), which is not in that device's chain."
                )
                continue
            }
            verified.sort {
                ChangeRef(author: $0.change.author, seq: $0.change.seq, timestamp: $0.change.change.timestamp)
                    < ChangeRef(author: $1.change.author, seq: $1.change.seq, timestamp: $1.change.change.timestamp)
            }
            if let seal = state.seal {
                let sealing = verified.first { $0.change.author == seal.op.device && $0.change.seq == seal.op.seq }
                let fields = sealing?.change.change.operations.compactMap { op -> (String, String)? in
                    if case .set(let f, let v, _) = op { return (f, v) }
                    return nil
                }
                guard let fields, RecordState.sealHash(kind: state.creationKind, fields: fields) == seal.contentHash
                else {
                    report.problems.append("\(name): the testimony's seal does not match its original content.")
                    continue
                }
            }
            guard state.creationKind == entry.kind else {
                report.problems.append(
                    "\(name): the manifest states kind \(TerminalSafe.quote(entry.kind)), its changes another.")
                continue
            }
            let document: RecordDocument
            do {
                document = try RecordDocument(
                    state: state, changes: verified.map { (envelope: $0.envelope, change: $0.change) },
                    exportedAtMillis: manifest.exportedAtMillis)
            } catch {
                report.problems.append("\(name): a change is stamped too far in the future to be written exactly.")
                continue
            }
            guard archive.file(entry.record) == document.encoded else {
                report.problems.append("\(name): \(entry.record) does not match its signed changes (it was altered).")
                continue
            }
            // Attached files (attachments.md): each is the file a disclosed, signed `attach` operation of this record
            // states — its SHA-256 and size — so the file is covered by the record's custody.
            if let problem = Self.attachmentProblem(entry, verified: verified, manifest: manifest, archive: archive) {
                report.problems.append("\(name): \(problem)")
                continue
            }
            let disclosed = Set(verified.map { DeviceSeq(device: $0.change.author, seq: $0.change.seq) })
            let undisclosed = entry.changes.filter { !disclosed.contains(DeviceSeq(device: $0.device, seq: $0.seq)) }
            // With every change disclosed, the consent the manifest states is what the document shows (§7 step 6):
            // an exporter cannot sign "share" over a testimony whose signed changes say "restricted".
            if undisclosed.isEmpty, !document.deleted, let stated = entry.consent,
                stated != Self.consent(shownBy: document)
            {
                report.problems.append(
                    "\(name): the manifest states consent \(TerminalSafe.quote(stated)), its signed changes \(TerminalSafe.quote(Self.consent(shownBy: document)))."
                )
                continue
            }
            // Without a founding entry nothing is proven, and that is said once above, not per change.
            for change in verified where report.founded && !change.signerProven {
                report.unproven.append(
                    "\(name): change \(change.change.seq) of \(report.label(change.change.author)) is signed by a device not proven to be a member (or not allowed to write) at that change."
                )
            }
            report.records.append(
                VerifiedRecord(
                    id: entry.id, entry: entry, state: state, document: document, custody: verified,
                    undisclosed: undisclosed))
        }

        // 9. The vault the recipient expects.
        if let expectVault, expectVault != vaultID {
            report.unproven.append(
                "The bundle comes from vault \(VaultFingerprint.of(vaultID)), not the expected \(VaultFingerprint.of(expectVault))."
            )
        }
        return report
    }

    /// Decrypts an age bundle file with `identities`, parses its archive and verifies it: what `bundle verify` and
    /// `import` do. Throws `AgeError` when the file does not decrypt (not encrypted to these identities, damaged)
    /// and `BundleError` when the archive is malformed; content problems are listed in the report.
    public static func open(
        _ file: [UInt8], identities: [any AgeIdentity], expectVault: [UInt8]? = nil
    ) throws -> (archive: TarArchive, report: BundleReport) {
        let archive = try decryptArchive(input: AgeMemorySource(file), identities: identities)
        return (archive, verify(archive, expectVault: expectVault))
    }

    /// Whether a bundle's file at `path` is an attachment file, read by its hash and size alone.
    public static func isAttachmentPath(_ path: String) -> Bool {
        path.hasPrefix(BundleExporter.attachmentFolder + "/")
    }

    /// Decrypts an age bundle read from `input` and parses its archive as it streams, so that a bundle of any size
    /// is read in bounded memory: the attachment files (``isAttachmentPath(_:)``) are kept as their SHA-256 and
    /// size, their bytes handed to `sink` (if any) and dropped; every other file (the documents, small) is kept.
    /// Throws `AgeError` when the file does not decrypt, `BundleError` when the archive is malformed. When it
    /// throws, `sink` may have been given bytes that authenticated before the failure: the caller discards them.
    public static func decryptArchive(
        input: some AgeByteSource, identities: [any AgeIdentity], sink: ((TarArchive.Event) throws -> Void)? = nil
    ) throws -> TarArchive {
        var decoder = TarArchive.Decoder(summarising: isAttachmentPath, sink: sink)
        try AgeDecryption.decrypt(input: input, identities: identities) { try decoder.feed($0[...]) }
        return try decoder.finish()
    }

    static func verifyLegacy(_ archive: TarArchive, expectVault: [UInt8]?) -> BundleReport {
        var report = BundleReport()
        report.format = 1
        let legacy = LegacyVerifier.verify(archive)
        report.legacy = legacy
        report.problems = legacy.problems
        report.chainLinks = legacy.chainLinks
        report.vaultID = legacy.manifest.flatMap { Hex.decode($0.vault_id) }
        report.unproven.append("format 1: unsigned, signers and names not proven.")
        if let expectVault, report.vaultID != expectVault {
            report.unproven.append(
                "The bundle names vault \(report.vaultID.map(VaultFingerprint.of) ?? "?"), not the expected \(VaultFingerprint.of(expectVault))."
            )
        }
        return report
    }

    /// Reads an extracted bundle folder back into an archive (for verifying a bundle that was opened).
    public static func archive(fromDirectory url: URL) throws -> TarArchive {
        var archive = TarArchive()
        var documentBytes = 0
        let fm = FileManager.default
        guard let paths = try? fm.subpathsOfDirectory(atPath: url.path) else {
            throw BundleError(.malformedArchive, "\(url.path) cannot be read.")
        }
        func unreadable(_ path: String) -> BundleError {
            BundleError(.malformedArchive, "\(path) in \(url.path) cannot be read.")
        }
        for path in paths.sorted() {
            let full = url.appendingPathComponent(path)
            // Without following links: a link (to /dev/zero, to a file elsewhere), a pipe or a device is not a file
            // a bundle holds, and reading one could block or never end.
            var info = stat()
            guard lstat(full.path, &info) == 0 else {
                throw unreadable(path)
            }
            if info.st_mode & S_IFMT == S_IFDIR { continue }
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw BundleError(
                    .malformedArchive,
                    "\(path) in \(url.path) is not a regular file (a link, a pipe or a device); a bundle holds only files."
                )
            }
            guard TarArchive.isSafePath(path) else {
                throw unreadable(path)
            }
            if isAttachmentPath(path) {
                // Hashed as it is read, never held whole (a recording may be larger than the memory).
                guard let handle = FileHandle(forReadingAtPath: full.path) else {
                    throw unreadable(path)
                }
                defer { try? handle.close() }
                let hasher = SHA256.Hasher()
                var size = 0
                do {
                    while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
                        piece.withUnsafeBytes { hasher.update($0) }
                        size += piece.count
                    }
                } catch {
                    throw unreadable(path)
                }
                archive.append(.init(path: path, summary: .init(sha256: hasher.finalize(), size: size)))
                continue
            }
            // Documents are read whole to be checked: within the budget a bundle's archive is read with.
            guard Int(info.st_size) <= TarArchive.documentBudget - documentBytes else {
                throw TarArchive.tooLarge(TarArchive.documentBudget)
            }
            documentBytes += Int(info.st_size)
            guard let data = fm.contents(atPath: full.path) else {
                throw unreadable(path)
            }
            archive.add(path, Array(data))
        }
        return archive
    }
}

/// Quoting of text taken from a bundle in a message (the command line escapes control characters on output).
enum TerminalSafe {
    static func quote(_ text: String) -> String { "\"\(text.prefix(64))\"" }
}
