import AmanatBundle
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

/// The `--kdf` values.
enum PasswordHashStrengthOption: String, ExpressibleByArgument, CaseIterable {
    case interactive, moderate, sensitive

    var strength: PasswordHash.Strength {
        switch self {
        case .interactive: .interactive
        case .moderate: .moderate
        case .sensitive: .sensitive
        }
    }
}

extension Amanat {
    /// `amanat init`: creates a new vault with a new vault key and this device's identity.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new vault in an empty directory.",
            discussion: """
                Generates the vault key and this device's Ed25519 identity, and wraps both with a key derived from your \
                passphrase (Argon2id). Prints the new device id on stdout.

                The passphrase must have at least 12 characters unless --allow-weak-passphrase is given: anyone who copies \
                the vault can try passphrases offline. --generate-passphrase prints a new random passphrase and creates \
                nothing: 6 words drawn uniformly from the EFF large wordlist of 7,776 words, which is 77 bits of entropy \
                (6 x log2 7776); learn it or write it down where the laptop is not, then run `amanat init` and type it.

                Example:
                  amanat init --generate-passphrase
                  amanat --vault ~/vault init --device-name "field laptop"
                  AMANAT_PASSPHRASE=… amanat --vault /tmp/v init \\
                    --kdf interactive
                """)

        @OptionGroup var options: VaultOptions

        @Option(help: "A name for this device, shown to other members.")
        var deviceName: String = ProcessInfo.processInfo.hostName

        @Option(help: "Passphrase hashing cost: interactive (weak devices, tests), moderate (default) or sensitive.")
        var kdf: PasswordHashStrengthOption = .moderate

        @Flag(help: "Accept a passphrase shorter than 12 characters (easy to guess once the vault is copied).")
        var allowWeakPassphrase = false

        @Flag(help: "Print a new random passphrase of 6 words (77 bits) and exit without creating a vault.")
        var generatePassphrase = false

        @Flag(help: "Print the new device and vault as JSON (Docs/json.md).") var json = false

        /// The number of words `--generate-passphrase` prints.
        static let generatedWords = 6

        func run() throws {
            if generatePassphrase {
                var rng = SystemRandomNumberGenerator()
                let words = PassphraseWords.all
                let generated = (0..<Self.generatedWords).map { _ in
                    words[Int.random(in: 0..<words.count, using: &rng)]
                }.joined(separator: " ")
                if json {
                    try JSONOutput.print(
                        GeneratedPassphraseJSON(
                            passphrase: generated, words: Self.generatedWords,
                            entropy_bits: Int(Double(Self.generatedWords) * log2(Double(words.count)))))
                    return
                }
                print(generated)
                return
            }
            let dir = options.directory
            if Vault.exists(at: dir) {
                throw StoreError(.vaultExists, "A vault already exists in \(dir.path); choose another directory.")
            }
            let passphrase = try options.passphrase(confirm: true)
            try Passphrase.checkStrength(passphrase, allowWeak: allowWeakPassphrase)
            let vault = try Vault.create(
                at: dir, passphrase: passphrase, deviceName: deviceName,
                strength: kdf.strength)
            note("Created a vault in \(dir.path) for device \"\(deviceName)\".")
            if json {
                let ids = VaultIDs(vault.vaultID)
                try JSONOutput.print(
                    InitJSON(
                        device: vault.deviceID.hex, device_name: deviceName,
                        role: vault.membership.members[vault.deviceID]?.currentRole.description ?? "coordinator",
                        vault: ids.vault, vault_id: ids.vault_id, directory: dir.path))
                return
            }
            print(vault.deviceID.hex)
        }
    }
}
