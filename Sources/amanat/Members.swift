import AmanatCore
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat members`: who belongs to the vault, as its signed membership log says.
    struct Members: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the devices of this vault: name, role, and whether they are active or revoked.",
            discussion: """
                Membership is a signed log every replica checks: coordinators invite, change roles and revoke; \
                members write records; readers only read. --json prints an array with, for each device, device, name, \
                role, status, admitted_by, admitted_at, revoked_at, age_recipient and this_device (times in ISO 8601; a \
                key or time that does not apply is left out; Docs/json.md has the exact shape). age_recipient is the member's own X25519 key as an age recipient.

                Example:
                  amanat members
                  amanat members --json
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable {
            var device: String
            var name: String?
            var role: String
            var status: String
            var admitted_by: String?
            var admitted_at: String?
            var admitted_at_millis: UInt64?
            var revoked_at: String?
            var revoked_at_millis: UInt64?
            var age_recipient: String?
            var this_device: Bool
        }

        func run() throws {
            let vault = try options.open()
            let members = vault.members()
            let out = members.map { m in
                Output(
                    device: m.device.hex, name: m.name, role: m.role.description,
                    status: m.revoked ? "revoked" : "active", admitted_by: m.admittedBy?.hex,
                    admitted_at: m.admittedAt.wallMillis == 0 ? nil : isoTime(m.admittedAt),
                    admitted_at_millis: m.admittedAt.wallMillis == 0 ? nil : m.admittedAt.wallMillis,
                    revoked_at: m.revokedAt.map(isoTime), revoked_at_millis: m.revokedAt?.wallMillis,
                    age_recipient: m.agreementKey.flatMap { try? AgeX25519Recipient(publicKey: $0).stringValue },
                    this_device: m.device == vault.deviceID)
            }
            if json {
                print(try RecordJSON.render(out))
                return
            }
            for m in members {
                let name = TerminalText.escape(m.name ?? "(name unknown)")
                let me = m.device == vault.deviceID ? "  ← this device" : ""
                let status = m.revoked ? "REVOKED \(m.revokedAt.map(isoTime) ?? "")" : "active"
                let admitted =
                    m.admittedBy.map { "admitted by \(TerminalText.escape(vault.deviceLabel($0)))" } ?? "founder"
                print("\(m.device.hex.prefix(12))  \(name)  \(m.role)  \(status)  \(admitted)\(me)")
            }
            for reuse in vault.membership.reusedInvitations {
                note(
                    "WARNING: device \(reuse.refused.hex.prefix(12)) tried to join with an invitation already used by \(TerminalText.escape(vault.deviceLabel(reuse.admitted))); it was not admitted."
                )
            }
        }
    }
}

/// An HLC stamp's wall time in ISO 8601.
func isoTime(_ stamp: HLCTimestamp) -> String {
    Date(timeIntervalSince1970: Double(stamp.wallMillis) / 1000).ISO8601Format()
}

extension Amanat {
    /// `amanat revoke`: removes a lost or seized device and rotates the vault key.
    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Revoke a device (coordinators): its later changes are held back everywhere and a new vault key starts.",
            discussion: """
                The device's changes up to the last one this vault has seen stay; any it wrote after are kept as \
                evidence but never applied, on every replica. A new vault key is sealed to each remaining member's own \
                key through the membership log, so members who are offline receive it by USB sync file or relay. \
                Nothing written after the revocation can be read with what the revoked device holds. Sync soon, so the \
                revocation reaches the others before the revoked device writes more. --all-changes holds back every \
                change the device ever made: for a device that never belonged to the team (for example one listed as \
                "from the first-release vault" that nobody recognises).

                Example:
                  amanat revoke 3f9a1c2b77e0
                  amanat revoke "stolen laptop"
                  amanat revoke 0a1b2c3d4e5f --all-changes
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The device: its name, or at least 6 hex digits of its id.") var device: String
        @Flag(
            help: "Hold back every change it ever made, not only later ones (a device that never belonged to the team)."
        )
        var allChanges = false
        @Flag(help: "Print the device revoked, and any revoked with it, as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let member = try vault.resolveMember(device)
            if member.device == vault.deviceID {
                throw CLIError(.usage, "A device cannot revoke itself; ask another coordinator.")
            }
            // Identities handed over from this one (a restored backup, `recover`) share its revocation.
            let heirs = vault.membership.members.values.filter { $0.recoveredFrom == member.device && !$0.isRevoked }
            try vault.revoke(member.device, allChanges: allChanges)
            if !heirs.isEmpty {
                note(
                    "WARNING: this also revokes \(heirs.map { vault.deviceLabel($0.device) }.sorted().joined(separator: ", ")), restored from its backup (a restored identity shares the revocation of the one it came from). Invite that laptop again if it is still yours."
                )
            }
            note(
                "Revoked \(TerminalText.escape(vault.deviceLabel(member.device))); a new vault key was sealed to the \(vault.membership.activeMembers.count) remaining devices. Sync to pass it on."
            )
            if json {
                try JSONOutput.print(
                    DeviceActionJSON(
                        device: member.device.hex, name: vault.memberName(member.device), role: "revoked",
                        also_revoked: heirs.map(\.device.hex).sorted(),
                        remaining_devices: vault.membership.activeMembers.count, all_changes: allChanges))
            }
        }
    }
}

extension Amanat {
    /// `amanat role`: changes a device's role.
    struct RoleCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "role",
            abstract: "Give a device a role (coordinators): coordinator, member or reader.",
            discussion: """
                The role applies to the device's changes after the last one this vault has seen of it. The last \
                coordinator cannot be demoted.

                Example:
                  amanat role 3f9a1c2b77e0 reader
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The device: its name, or at least 6 hex digits of its id.") var device: String
        @Argument(help: "coordinator, member or reader.") var role: String
        @Flag(help: "Print the device and its new role as JSON (Docs/json.md).") var json = false

        func run() throws {
            guard let role = Role(name: role) else {
                throw CLIError(
                    .usage, "Unknown role \"\(TerminalText.escape(role))\": use coordinator, member or reader.")
            }
            let vault = try options.open()
            let member = try vault.resolveMember(device)
            try vault.setRole(member.device, role)
            note("\(TerminalText.escape(vault.deviceLabel(member.device))) is now a \(role).")
            if json {
                try JSONOutput.print(
                    DeviceActionJSON(
                        device: member.device.hex, name: vault.memberName(member.device),
                        role: vault.membership.members[member.device]?.currentRole.description ?? role.description))
            }
        }
    }
}

extension Amanat {
    /// `amanat rename`: this device's own name, as other members see it.
    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename this device; other members see the new name after their next sync.",
            discussion: """
                Names are sealed with the vault key: relays and couriers never see them.

                Example:
                  amanat rename "Herat office laptop"
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The new name (at most 96 bytes).") var name: String
        @Flag(help: "Print this device and its new name as JSON (Docs/json.md).") var json = false

        func run() throws {
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw CLIError(.usage, "A device name cannot be empty.")
            }
            let vault = try options.open()
            try vault.rename(name)
            note("This device is now \"\(TerminalText.escape(name))\".")
            if json {
                try JSONOutput.print(
                    DeviceActionJSON(device: vault.deviceID.hex, name: vault.memberName(vault.deviceID) ?? name))
            }
        }
    }
}

extension Amanat {
    /// `amanat dismiss-fork`: a coordinator marks reviewed fork evidence of a device as dismissed.
    struct DismissFork: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dismiss-fork",
            abstract: "Mark a device's reviewed fork evidence as dismissed (coordinators); the evidence stays.",
            discussion: """
                After a coordinator has looked into a fork (for example a laptop restored from a backup that then ran \
                `amanat recover`), dismissing it lets `verify` pass again. The conflicting envelopes are kept.

                Example:
                  amanat dismiss-fork 3f9a1c2b77e0
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The forked device: its name, or at least 6 hex digits of its id.") var device: String
        @Flag(help: "Print the device and how many forks were dismissed as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let member = try vault.resolveMember(device)
            let open = try vault.forks().filter { $0.device == member.device && !$0.dismissed }.count
            try vault.dismissForks(of: member.device)
            note("Dismissed the fork evidence of \(TerminalText.escape(vault.deviceLabel(member.device))); it is kept.")
            if json {
                try JSONOutput.print(
                    DeviceActionJSON(
                        device: member.device.hex, name: vault.memberName(member.device), dismissed_forks: open))
            }
        }
    }
}

extension Amanat {
    /// `amanat recover`: a restored or cloned laptop continues as a new device identity.
    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue as a new device identity after this laptop was restored from a backup or cloned.",
            discussion: """
                When a sync reports that this device's own log has forked, another copy of this vault wrote different \
                changes under the same device key. `recover` gives this laptop a new identity, admitted by the old \
                one's signature; its changes that never reached the others are signed again under the new identity, \
                and the others' copy of the old identity's log is taken as it is. Nothing is lost. Then sync.

                Example:
                  amanat recover
                  amanat sync /media/usb/team.amanat-sync
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Print the new and the previous device id as JSON (Docs/json.md).") var json = false

        func run() throws {
            let passphrase = try options.passphrase()
            let vault = try Vault.open(at: options.directory, passphrase: passphrase)
            let old = vault.deviceID
            let result = try vault.recover(passphrase: passphrase)
            note(
                "This laptop is now device \(result.device.hex.prefix(12)) (was \(old.hex.prefix(12))); \(result.resigned) change\(result.resigned == 1 ? "" : "s") that had not left it were signed again. Sync now; a coordinator gives the new identity the coordinator role again if it had it."
            )
            if json {
                try JSONOutput.print(
                    NewIdentityJSON(device: result.device.hex, previous_device: old.hex, resigned: result.resigned))
                return
            }
            print(result.device.hex)
        }
    }
}
