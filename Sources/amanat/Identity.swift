import AmanatCrypto
import ArgumentParser

/// `amanat identity`: this device's id and its age recipient.
struct Identity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print this device's id, name and age recipient (age1…).",
        discussion: """
            The age recipient is the X25519 form of the device's Ed25519 key: others can encrypt evidence bundles
            to it with `amanat export --recipient` or the standard `age -r` tool.

            Example:
              amanat identity
            """)

    @OptionGroup var options: VaultOptions

    func run() throws {
        try runReportingErrors {
            let vault = try options.open()
            let recipient = try AgeX25519Recipient(
                publicKey: SigningKeyPair.x25519PublicKey(fromEd25519: vault.keyring.device.publicKey))
            print("device: \(vault.deviceID.hex)")
            print("name:   \(TerminalText.escape(vault.keyring.deviceName))")
            print("age:    \(recipient.stringValue)")
        }
    }
}
