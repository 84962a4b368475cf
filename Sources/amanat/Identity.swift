import AmanatBundle
import AmanatCore
import AmanatCrypto
import ArgumentParser

extension Amanat {
    /// `amanat identity`: this device's id and its age recipient.
    struct Identity: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print this device's id, name, role and age recipient (age1…).",
            discussion: """
                The age recipient is this device's own X25519 member key (kept in its keyring, published in the \
                membership log; never the signing key converted, so no key serves two purposes).

                Example:
                  amanat identity
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Print JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            guard let agreement = vault.keyring.agreement else {
                throw CLIError(.internalError, "This keyring has no member key; open the vault once to upgrade it.")
            }
            let recipient = try AgeX25519Recipient(publicKey: agreement.publicKey)
            let member = vault.membership.members[vault.deviceID]
            if json {
                let ids = VaultIDs(vault.vaultID)
                try JSONOutput.print(
                    IdentityJSON(
                        device: vault.deviceID.hex, name: vault.memberName(vault.deviceID) ?? vault.keyring.deviceName,
                        role: member.map { $0.isRevoked ? "revoked" : $0.currentRole.description } ?? "not a member",
                        age_recipient: recipient.stringValue, vault: ids.vault, vault_id: ids.vault_id))
                return
            }
            print("device: \(vault.deviceID.hex)")
            print("name:   \(TerminalText.escape(vault.memberName(vault.deviceID) ?? vault.keyring.deviceName))")
            print("role:   \(member.map { $0.isRevoked ? "revoked" : $0.currentRole.description } ?? "not a member")")
            print("age:    \(recipient.stringValue)")
        }
    }
}
