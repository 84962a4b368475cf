import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// What an import did.
public struct ImportSummary: Sendable, Equatable {
    /// Records created in this vault.
    public var added = 0
    /// Records imported before whose kept custody gained original changes a later bundle discloses.
    public var extended = 0
    /// Records imported before, with nothing new.
    public var unchanged = 0
    /// Records left out: deleted at export, or of a kind this vault does not know.
    public var skipped = 0
}

/// Imports the records of a verified bundle into a vault (Protocol/bundle.md §10), keeping their custody.
///
/// Each record becomes a new record of this vault whose creating change holds the verified fields and tags, an
/// `origin` operation naming the source vault and record, and a `custody` operation per original envelope (each
/// change with its envelope key, and every membership entry that proves the signers). `history` shows the original
/// devices, times and seal from them, verified, followed by the import. Whether a record was imported before is
/// decided by its origin (vault id, record id), never by text: importing the same bundle twice changes nothing, and a
/// later bundle of the same record adds only the original changes that were not kept yet.
///
/// ```swift
/// let report = BundleVerifier.verify(archive)
/// let summary = try BundleImporter.importRecords(of: report, into: vault, kinds: ["testimony", "statement"])
/// ```
public enum BundleImporter {
    /// Custody operations are spread over changes of at most this many envelope bytes, so no change grows without
    /// bound (a long testimony history can hold hundreds of envelopes).
    public static let custodyBytesPerChange = 256 * 1024

    /// Imports every record of `report` that is not deleted and whose kind is in `kinds`, in one transaction.
    /// `report` must be `.verified`: an unproven or damaged bundle is refused before anything is written.
    public static func importRecords(
        of report: BundleReport, into vault: Vault, kinds: Set<String>
    ) throws -> ImportSummary {
        guard report.outcome == .verified, let manifest = report.manifest else {
            throw BundleError(.verificationFailed, "The bundle is not verified and proven; nothing was imported.")
        }
        let sourceVault = manifest.vaultID
        let entries = report.entries.map { CustodyItem(envelope: $0.envelope.encoded(), key: []) }
        // Every copy of each origin: two laptops of the team that imported the same bundle before they synced hold
        // two records of one origin, and a later bundle must reach both (a withdrawn consent above all).
        var imported: [[UInt8]: [RecordState]] = [:]
        for state in try vault.allStates() {
            guard let origin = state.origin, origin.vault == sourceVault else { continue }
            // A record stands for the import only if what its importing change sets comes from its kept originals:
            // a member's record that copies the custody under invented values must not make the real import
            // "already done".
            let importing = try vault.history(of: state).first {
                $0.change.author == origin.op.device && $0.change.seq == origin.op.seq
            }
            let custody = CustodyReport(origin: origin, items: state.custody)
            guard let importing, custody.problems.isEmpty, custody.problems(ofImport: importing.change.change).isEmpty
            else { continue }
            imported[origin.record.bytes, default: []].append(state)
        }
        var summary = ImportSummary()
        var groups: [(record: RecordID?, changes: [[RecordOperation]])] = []
        // A record of this very vault that a coordinator purged never comes back from a bundle exported before the
        // purge (a withdrawn consent): it is left out like a deleted one.
        let purged = sourceVault == vault.vaultID ? Set(vault.purges().map(\.record)) : []
        // A purge's note may be sealed with a key that has not reached this device yet, but the envelopes it names
        // are in the clear: a record whose kept originals a purge names is purged too.
        func namedByAPurge(_ record: VerifiedRecord) -> Bool {
            guard sourceVault == vault.vaultID, !vault.membership.purges.isEmpty else { return false }
            return record.custody.contains {
                vault.membership.purge(
                    naming: $0.envelope.header.author, seq: $0.envelope.header.seq,
                    ciphertextHash: $0.envelope.ciphertextHash) != nil
            }
        }
        for record in report.records {
            if purged.contains(record.id) || namedByAPurge(record) {
                summary.skipped += 1
                continue
            }
            let document = record.document
            let items =
                record.custody.map { CustodyItem(envelope: $0.envelope.encoded(), key: $0.envelopeKey) }
                + entries
            if let copies = imported[record.id.bytes] {
                var extended = false
                for existing in copies.sorted(by: { $0.id < $1.id }) {
                    let missing = items.filter { !existing.custody.contains($0) }
                    guard !missing.isEmpty else { continue }
                    var changes = chunks(missing.map { .custody(envelope: $0.envelope, key: $0.key) })
                    changes[0] += narrowedConsent(record, existing: existing)
                    groups.append((existing.id, changes))
                    extended = true
                }
                if extended { summary.extended += 1 } else { summary.unchanged += 1 }
                continue
            }
            guard !document.deleted, kinds.contains(document.kind) else {
                summary.skipped += 1
                continue
            }
            var first: [RecordOperation] = [.create(kind: document.kind)]
            var fields = document.fields.filter { $0.0 != "provenance" }
            fields.append(("provenance", provenance(record, report: report)))
            first += fields.map { RecordOperation.set(field: $0.0, value: $0.1, pred: []) }
            first += document.tags.map { RecordOperation.addTag($0) }
            first.append(.origin(vault: sourceVault, record: record.id))
            if document.kind == "testimony" {
                first.append(.seal(contentHash: RecordState.sealHash(kind: document.kind, fields: fields)))
            }
            var changes = chunks(items.map { .custody(envelope: $0.envelope, key: $0.key) })
            if changes.isEmpty { changes = [first] } else { changes[0] = first + changes[0] }
            groups.append((nil, changes))
            summary.added += 1
        }
        if !groups.isEmpty { _ = try vault.commitGroups(groups) }
        return summary
    }

    /// Fields are not overwritten by a later bundle, except consent narrowed at the origin: when the later bundle
    /// shows a testimony's consent as neither `share` nor `anonymised` (restricted, in conflict, unset) and this
    /// vault's copy is still shareable, the copy takes the origin's consent values (each over this vault's visible
    /// ones, so a conflict stays a conflict). Otherwise a withdrawn consent stayed only in the kept custody, `show`
    /// said `share`, and `amanat export` passed the testimony on by default.
    static func narrowedConsent(_ record: VerifiedRecord, existing: RecordState) -> [RecordOperation] {
        let document = record.document
        guard document.kind == "testimony", !document.deleted, BundleExporter.isShareable(existing),
            !["share", "anonymised"].contains(BundleVerifier.consent(shownBy: document))
        else { return [] }
        let values =
            (document.fields.first { $0.0 == "consent" }.map { [$0.1] } ?? [])
            + (document.conflicts.first { $0.0 == "consent" }?.1 ?? [])
        let pred = (existing.values["consent"] ?? []).map(\.op).sorted()
        return values.map { .set(field: "consent", value: $0, pred: pred) }
    }

    /// Splits custody operations into changes of at most ``custodyBytesPerChange`` envelope bytes each.
    static func chunks(_ ops: [RecordOperation]) -> [[RecordOperation]] {
        var result: [[RecordOperation]] = []
        var current: [RecordOperation] = []
        var bytes = 0
        for op in ops {
            guard case .custody(let envelope, _) = op else { continue }
            if !current.isEmpty && bytes + envelope.count > custodyBytesPerChange {
                result.append(current)
                current = []
                bytes = 0
            }
            current.append(op)
            bytes += envelope.count
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// The human summary kept in the `provenance` field; what it says is proven by the kept custody, not by this text.
    static func provenance(_ record: VerifiedRecord, report: BundleReport) -> String {
        let document = record.document
        guard let manifest = report.manifest else { return "" }
        var text = "Imported from an evidence bundle: record \(record.id.hex) of vault "
        text += "\(VaultFingerprint.of(manifest.vaultID)), exported by \(report.label(manifest.exportedBy)). "
        let devices = Set(document.history.map(\.device)).sorted().map { report.label($0) }
        text += "Recorded by \(devices.joined(separator: ", ")); \(document.history.count) signed changes verified."
        if !record.undisclosed.isEmpty {
            text += " \(record.undisclosed.count) changes of the record were not disclosed in the bundle."
        }
        if !document.conflicts.isEmpty {
            text += " Unresolved conflicting values at export: "
            text += document.conflicts.sorted { $0.0 < $1.0 }.map { "\($0.0) = \($0.1.joined(separator: " | "))" }
                .joined(separator: "; ")
        }
        return text
    }
}
