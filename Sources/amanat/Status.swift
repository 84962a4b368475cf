import AmanatBundle
import AmanatCore
import AmanatCrypto
import ArgumentParser

extension Amanat {
    /// `amanat status`: this device, counts, version vector and state digest.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show this device, the record and change counts, the version vector and the state digest.",
            discussion: """
                Two replicas that have seen the same changes show the same state_digest. --json prints an object with \
                vault, device, device_name, role, records, changes, vector, state_digest, forks and held_back \
                (Docs/json.md has its exact shape). Changes held back are kept as evidence but not applied: \
                written by a device that is not a member, by a revoked device after its revocation, or by a reader. \
                "vault" is the vault fingerprint (the vault id in groups of four hex digits): give it, through a channel \
                you trust, to whoever receives your evidence bundles, so `amanat bundle verify --expect-vault` can pin it.

                Example:
                  amanat status --json
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON.") var json = false

        struct Head: Encodable {
            var seq: UInt64
            var head: String
        }

        struct Fork: Encodable {
            var device: String
            var seq: UInt64
        }

        struct Held: Encodable {
            var device: String
            var reason: String
            var changes: Int
        }

        struct Output: Encodable {
            var vault: String
            var vault_id: String
            var device: String
            var device_name: String
            var role: String
            var records: Int
            var changes: Int
            var vector: [String: Head]
            var state_digest: String
            var forks: [Fork]
            var held_back: [Held]
            /// Only when the vault has attachments.
            var attachments: AttachmentCounts?
        }

        struct AttachmentCounts: Encodable {
            var total: Int
            var complete: Int
            var partial: Int
            var missing: Int
            var missing_bytes: UInt64
        }

        func run() throws {
            let vault = try options.open()
            let s = try vault.status()
            let me = vault.membership.members[vault.deviceID]
            let out = Output(
                vault: VaultFingerprint.of(vault.vaultID), vault_id: Hex.encode(vault.vaultID), device: s.device.hex,
                device_name: vault.memberName(vault.deviceID) ?? s.deviceName,
                role: me.map { $0.isRevoked ? "revoked" : $0.currentRole.description } ?? "not a member",
                records: s.records, changes: s.changes,
                vector: Dictionary(
                    uniqueKeysWithValues: s.vector.map {
                        ($0.key.hex, Head(seq: $0.value.seq, head: Hex.encode($0.value.hash)))
                    }),
                state_digest: Hex.encode(s.stateDigest),
                forks: s.forks.filter { !$0.dismissed }.map { Fork(device: $0.device.hex, seq: $0.seq) },
                held_back: try vault.heldBackSummary().map {
                    Held(device: $0.device.hex, reason: $0.reason.rawValue, changes: $0.changes)
                },
                attachments: try vault.attachmentSummary().map {
                    AttachmentCounts(
                        total: $0.total, complete: $0.complete, partial: $0.partial, missing: $0.missing,
                        missing_bytes: $0.missingBytes)
                })
            if json {
                print(try RecordJSON.render(out))
                return
            }
            print("vault:        \(out.vault)")
            print("device:       \(out.device) (\(TerminalText.escape(out.device_name)), \(out.role))")
            print("records:      \(out.records)")
            print("changes:      \(out.changes) from \(out.vector.count) device\(out.vector.count == 1 ? "" : "s")")
            for (device, head) in out.vector.sorted(by: { $0.key < $1.key }) {
                print("  \(device.prefix(12))  up to change \(head.seq)")
            }
            print("state digest: \(out.state_digest)")
            if let a = out.attachments {
                let left = a.missing_bytes > 0 ? "; \(Size.text(a.missing_bytes)) not here yet: `amanat fetch`" : ""
                print(
                    "attachments:  \(a.total) (\(a.complete) complete, \(a.partial) partial, \(a.missing) missing\(left))"
                )
            }
            for fork in s.forks where !fork.dismissed {
                print(
                    "FORK: device \(TerminalText.escape(vault.deviceLabel(fork.device))) signed two different changes at \(fork.seq)"
                )
            }
            for held in try vault.heldBackSummary() {
                print(
                    "HELD BACK: \(held.changes) change\(held.changes == 1 ? "" : "s") of \(TerminalText.escape(vault.deviceLabel(held.device))) (\(held.reason.rawValue))"
                )
            }
        }
    }
}
