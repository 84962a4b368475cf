import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// `--json` (Docs/json.md): exactly one JSON document on standard output, nothing else; notes and errors stay on
/// standard error and exit statuses do not change. Keys are snake_case, ids full lowercase hex, times integer
/// milliseconds since the epoch in UTC (`…_millis`) with an ISO 8601 string beside them where useful. The shapes
/// below are documented as JSON Schemas in Docs/json.md and tested against them (JSONOutputTests).
enum JSONOutput {
    /// Prints one document (sorted keys, as every `--json` of Amanat).
    static func print<T: Encodable>(_ value: T) throws {
        Swift.print(try RecordJSON.render(value))
    }

    /// The ISO 8601 UTC time of `millis`, or nil beyond the year 9999 (a hostile stamp); the milliseconds beside it
    /// are exact either way.
    static func iso(_ millis: UInt64) -> String? {
        millis <= 253_402_300_799_999 ? millisTime(millis) : nil
    }
}

/// One signed change a command wrote: `"change"` in `add`, `edit`, `tag`, `delete`, `undelete` and `resolve`.
struct SignedChangeJSON: Encodable {
    var device: String
    var seq: UInt64
    var time_millis: UInt64
    var time: String?

    init(author: DeviceID, seq: UInt64, timestamp: HLCTimestamp) {
        device = author.hex
        self.seq = seq
        time_millis = timestamp.wallMillis
        time = JSONOutput.iso(timestamp.wallMillis)
    }

    init(_ authored: AuthoredChange) {
        self.init(author: authored.author, seq: authored.seq, timestamp: authored.change.timestamp)
    }
}

/// `add statement --json`, `add testimony --json`.
struct AddedJSON: Encodable {
    var id: String
    var kind: String
    var sealed: Bool
    var fields_set: [String]
    var tags: [String]
    var change: SignedChangeJSON?
}

/// `edit --json`.
struct EditedJSON: Encodable {
    var record: String
    var kind: String
    var fields_set: [String]
    var conflicts: [String]
    var change: SignedChangeJSON
}

/// `tag --json`.
struct TaggedJSON: Encodable {
    var record: String
    var added: [String]
    var removed: [String]
    var tags: [String]
    var change: SignedChangeJSON
}

/// `delete --json` and `undelete --json`.
struct DeletedJSON: Encodable {
    var record: String
    var kind: String
    var deleted: Bool
    var change: SignedChangeJSON
}

/// `resolve --json`.
struct ResolvedJSON: Encodable {
    var record: String
    var field: String
    var kept: String
    var concurrent_values: Int
    var change: SignedChangeJSON
}

/// `identity --json`.
struct IdentityJSON: Encodable {
    var device: String
    var name: String
    var role: String
    var age_recipient: String
    var vault: String
    var vault_id: String
}

/// `verify --json`: printed whether or not the vault verifies (then exit status 65).
struct VerifyJSON: Encodable {
    struct Held: Encodable {
        var device: String
        var reason: String
        var changes: Int
    }

    var ok: Bool
    var changes: Int
    var devices: Int
    var records: Int
    var seals: Int
    var problems: [String]
    var held_back: [Held]
    var unreadable: Int
    var set_aside_chunks: Int

    init(_ report: VerifyReport) {
        ok = report.problems.isEmpty
        changes = report.envelopes
        devices = report.devices
        records = report.records
        seals = report.seals
        problems = report.problems
        held_back = report.heldBack.map { Held(device: $0.device.hex, reason: $0.reason.rawValue, changes: $0.changes) }
        unreadable = report.unreadable
        set_aside_chunks = report.setAsideChunks
    }
}

/// The vault's id, as the fingerprint `status` prints and as plain hex: keys `vault` and `vault_id`.
struct VaultIDs {
    var vault: String
    var vault_id: String

    init(_ id: [UInt8]) {
        vault = VaultFingerprint.of(id)
        vault_id = Hex.encode(id)
    }
}

/// `init --json`, and `init --generate-passphrase --json` (the passphrase is printed as without --json).
struct InitJSON: Encodable {
    var device: String
    var device_name: String
    var role: String
    var vault: String
    var vault_id: String
    var directory: String
}

struct GeneratedPassphraseJSON: Encodable {
    var passphrase: String
    var words: Int
    var entropy_bits: Int
}

/// `join --json`.
struct JoinedJSON: Encodable {
    var device: String
    var device_name: String
    var role: String
    var vault: String
    var vault_id: String
    var invited_by: String
    var inviter_name: String
    var directory: String
}

/// `invite --json`: the code is printed as without --json (it opens the invitation file).
struct InvitedJSON: Encodable {
    var out: String
    var role: String
    var valid_days: UInt64
    var expires_at_millis: UInt64
    var expires_at: String?
    var code: String
}

/// `role --json`, `rename --json`, `dismiss-fork --json` and `revoke --json`: the device the command acted on.
struct DeviceActionJSON: Encodable {
    var device: String
    var name: String?
    var role: String?
    var dismissed_forks: Int?
    var also_revoked: [String]?
    var remaining_devices: Int?
    var all_changes: Bool?
}

/// `recover --json` and `restore --json`.
struct NewIdentityJSON: Encodable {
    var device: String
    var previous_device: String
    var new_identity: Bool?
    var resigned: Int?
    var directory: String?
}

/// `backup --json`, `passphrase --json` and `wipe --json`.
struct VaultFileJSON: Encodable {
    var directory: String
    var device: String?
    var vault: String?
    var vault_id: String?
    var out: String?
    var bytes: UInt64?
}

/// `export --json`.
struct ExportedJSON: Encodable {
    var out: String
    var bytes: UInt64
    var records: [String]
    var selected: Int
    var left_out: Int
    var left_out_by_consent: [String: Int]
    var encrypted_to: String
    var recipients: Int
    var armor: Bool
    /// With --strip-location: the attachments exported as location-stripped copies (absent without the flag).
    var stripped: [Stripped]?

    struct Stripped: Encodable {
        var attachment: String
        var record: String
        var path: String
        var original_sha256: String
        var sha256: String
        var size: UInt64
        var removed: [String]
    }
}

/// The size of a file, or 0 when it cannot be read.
func fileSize(_ path: String) -> UInt64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// What `sync --json` and `import --json` add to ``Arrivals``: the target, forks and changes kept apart.
struct ForkJSON: Encodable {
    var device: String
    var seq: UInt64
    var this_device: Bool
}

/// What `import --json` of an evidence bundle adds to ``Arrivals``.
struct ImportedBundleJSON: Encodable {
    var added: Int
    var extended: Int
    var unchanged: Int
    var skipped: Int
}

extension Arrivals {
    /// The arrivals with what the sync report says (the JSON of `sync` and `import` of a sync file).
    func with(_ report: SyncReport, target: String, vault: Vault) -> Arrivals {
        var copy = self
        copy.target = target
        copy.read_only = report.pullOnly
        copy.kept_apart = report.keptApart
        copy.forks = report.forks.map {
            ForkJSON(device: $0.device.hex, seq: $0.seq, this_device: $0.device == vault.deviceID)
        }
        return copy
    }
}

/// `bundle verify --json` and `bundle open --json`: the verification report, printed whatever its outcome (then the
/// documented exit status: 3 unproven, 65 damaged).
struct BundleJSON: Encodable {
    struct Signer: Encodable {
        var device: String
        var name: String?
        var role: String?
        var proven: Bool
        var exported_this_bundle: Bool
    }

    struct Change: Encodable {
        var device: String
        var seq: UInt64
        var time_millis: UInt64?
        var time: String?
        var envelope: String
        var label: String?
        var operations: [String]
    }

    struct Record: Encodable {
        var id: String
        var kind: String
        var deleted: Bool
        var consent: String?
        var sealed_content_hash: String?
        var changes: [Change]
        var undisclosed_changes: Int
        var attachments: [Attachment] = []
    }

    /// An attached file of a record: the original sealed in custody, or a location-stripped copy of it.
    struct Attachment: Encodable {
        struct Stripped: Encodable {
            var original_sha256: String
            var original_size: UInt64
            var removed: [String]
        }

        var attachment: String
        var path: String
        var sha256: String
        var size: UInt64
        var stripped: Stripped?
    }

    var outcome: String
    var format: Int
    var vault: String?
    var vault_id: String?
    var exported_by: String?
    var exported_at_millis: UInt64?
    var exported_at: String?
    var signers: [Signer]
    var records: [Record]
    var signed_changes: Int
    var problems: [String]
    var unproven: [String]
    var out: String?
    var files: Int?

    init(_ report: BundleReport) {
        switch report.outcome {
        case .verified: outcome = "verified"
        case .unproven: outcome = "unproven"
        case .damaged: outcome = "damaged"
        }
        format = report.format
        vault = report.vaultID.map(VaultFingerprint.of)
        vault_id = report.vaultID.map(Hex.encode)
        signed_changes = report.chainLinks
        problems = report.problems
        unproven = report.unproven
        signers = []
        records = []
        if let legacy = report.legacy {
            exported_by = legacy.manifest?.exported_by
            records = legacy.records.map { record in
                let d = record.document
                return Record(
                    id: d.id, kind: d.kind, deleted: d.deleted, consent: nil,
                    sealed_content_hash: d.sealed_content_hash,
                    changes: d.history.map {
                        Change(
                            device: $0.device, seq: $0.seq, time_millis: nil, time: $0.time, envelope: $0.envelope,
                            label: $0.label, operations: $0.operations)
                    }, undisclosed_changes: 0)
            }
            return
        }
        guard let m = report.manifest else { return }
        exported_by = m.exportedBy.hex
        exported_at_millis = m.exportedAtMillis
        exported_at = JSONOutput.iso(m.exportedAtMillis)
        signers = report.signers.map {
            Signer(
                device: $0.device.hex, name: $0.name, role: $0.proven ? $0.role : nil, proven: $0.proven,
                exported_this_bundle: $0.device == m.exportedBy)
        }
        records = report.records.map { record in
            let d = record.document
            return Record(
                id: d.id.hex, kind: d.kind, deleted: d.deleted, consent: record.entry.consent,
                sealed_content_hash: d.sealedContentHash.map(Hex.encode),
                changes: d.history.map {
                    Change(
                        device: $0.device.hex, seq: $0.seq, time_millis: $0.timeMillis,
                        time: JSONOutput.iso($0.timeMillis),
                        envelope: Hex.encode($0.envelope), label: $0.label, operations: $0.operations)
                }, undisclosed_changes: record.undisclosed.count,
                attachments: record.entry.attachments.map { a in
                    Attachment(
                        attachment: a.attachment, path: a.path, sha256: Hex.encode(a.sha256), size: a.size,
                        stripped: a.stripped.map {
                            Attachment.Stripped(
                                original_sha256: Hex.encode($0.originalSHA256), original_size: $0.originalSize,
                                removed: $0.removed)
                        })
                })
        }
    }
}
