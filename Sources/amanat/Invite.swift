import AmanatBundle
import AmanatCore
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat invite`: writes a one-time invitation for a new member device.
    struct Invite: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an invitation for a new device to join this vault; prints the code that opens it.",
            discussion: """
                The file holds the vault key encrypted under a random 120-bit code, printed on stdout. Give the file and \
                the code to the new member by different channels (for example the file on a USB stick, the code spoken \
                in person): whoever has the file alone learns nothing. The invitation expires after --valid-days.

                Example:
                  amanat invite --out /media/usb/invite.amanat
                  # on the new laptop:
                  amanat --vault ~/vault join /media/usb/invite.amanat \\
                    --code ABCD-EFGH-…
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "Where to write the invitation.") var out: String
        @Option(help: "Days the invitation stays valid.") var validDays: UInt64 = 7
        @Option(help: "The new device's role: coordinator, member (default) or reader.") var role: String = "member"
        @Flag(help: "Replace the file given with --out if it exists (never done without this flag).") var force = false
        @Flag(help: "Print the invitation's file, role, expiry and code as JSON (Docs/json.md).") var json = false

        func run() throws {
            // Before the invitation is issued: a refused file leaves no unused invitation behind.
            try OutputFile.check(out, force: force)
            guard (1...365).contains(validDays) else { throw CLIError(.usage, "--valid-days must be from 1 to 365.") }
            guard let role = Role(name: role) else {
                throw CLIError(.usage, "Unknown role \"\(role)\": use coordinator, member or reader.")
            }
            let vault = try options.open()
            let grant = try vault.invite(role: role, validFor: validDays * 86_400)
            let code = try Invitation.write(grant, to: URL(fileURLWithPath: out))
            note(
                "Wrote a one-time invitation for a \(role) to \(out), valid for \(validDays) days. Pass the code below separately:"
            )
            if json {
                try JSONOutput.print(
                    InvitedJSON(
                        out: out, role: role.description, valid_days: validDays, expires_at_millis: grant.expiresAt,
                        expires_at: JSONOutput.iso(grant.expiresAt), code: code))
                return
            }
            print(code)
        }
    }
}

extension Amanat {
    /// `amanat join`: becomes a new member device of a vault from an invitation.
    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Join a vault from an invitation: creates this device's own identity in an empty vault directory.",
            discussion: """
                The code is read from --code, else $AMANAT_INVITE_CODE, else asked at the terminal. Then sync with a \
                member's sync file to receive the records. Prints the new device id.

                Example:
                  amanat --vault ~/vault join invite.amanat \\
                    --code ABCD-EFGH-IJKL-MNOP-QRST-UVWX \\
                    --device-name coordinator
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The invitation file.") var file: String
        @Option(help: "The invitation code.") var code: String?
        @Option(help: "A name for this device.") var deviceName: String = ProcessInfo.processInfo.hostName
        @Option(help: "Passphrase hashing cost: interactive, moderate (default) or sensitive.")
        var kdf: PasswordHashStrengthOption = .moderate
        @Flag(help: "Accept a passphrase shorter than 12 characters (easy to guess once the vault is copied).")
        var allowWeakPassphrase = false
        @Flag(help: "Print the new device and the vault joined as JSON (Docs/json.md).") var json = false

        func run() throws {
            let dir = options.directory
            if Vault.exists(at: dir) {
                throw StoreError(.vaultExists, "A vault already exists in \(dir.path); join into an empty directory.")
            }
            let text =
                try code ?? ProcessInfo.processInfo.environment["AMANAT_INVITE_CODE"] ?? promptLine("Invitation code: ")
            let grant = try Invitation.read(
                from: URL(fileURLWithPath: file), code: text, now: UInt64(Date().timeIntervalSince1970 * 1000))
            let passphrase = try options.passphrase(confirm: true)
            try Passphrase.checkStrength(passphrase, allowWeak: allowWeakPassphrase)
            let vault = try Vault.join(
                grant, at: dir, passphrase: passphrase, deviceName: deviceName,
                strength: kdf.strength)
            note(
                "Joined the vault of \"\(grant.inviterName)\" as \(grant.role) \"\(deviceName)\". Sync to receive its records."
            )
            if json {
                let ids = VaultIDs(vault.vaultID)
                try JSONOutput.print(
                    JoinedJSON(
                        device: vault.deviceID.hex, device_name: deviceName, role: grant.role.description,
                        vault: ids.vault, vault_id: ids.vault_id, invited_by: grant.inviter.hex,
                        inviter_name: grant.inviterName, directory: dir.path))
                return
            }
            print(vault.deviceID.hex)
        }

        private func promptLine(_ prompt: String) throws -> String {
            guard isatty(STDIN_FILENO) == 1 else {
                throw CLIError(.usage, "No invitation code: pass --code or set AMANAT_INVITE_CODE.")
            }
            try? FileHandle.standardError.write(contentsOf: Data(prompt.utf8))
            return readLine() ?? ""
        }
    }
}
