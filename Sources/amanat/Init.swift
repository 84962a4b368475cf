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

/// `amanat init`: creates a new vault with a new vault key and this device's identity.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new vault in an empty directory.",
        discussion: """
            Generates the vault key and this device's Ed25519 identity, and wraps both with a key derived from your
            passphrase (Argon2id). Prints the new device id on stdout.

            Example:
              amanat --vault ~/vault init --device-name "field laptop"
              AMANAT_PASSPHRASE=… amanat --vault /tmp/v init --kdf interactive
            """)

    @OptionGroup var options: VaultOptions

    @Option(help: "A name for this device, shown to other members.")
    var deviceName: String = ProcessInfo.processInfo.hostName

    @Option(help: "Passphrase hashing cost: interactive (weak devices, tests), moderate (default) or sensitive.")
    var kdf: PasswordHashStrengthOption = .moderate

    func run() throws {
        try runReportingErrors {
            let dir = options.directory
            if Vault.exists(at: dir) {
                throw StoreError(.vaultExists, "A vault already exists in \(dir.path); choose another directory.")
            }
            let vault = try Vault.create(
                at: dir, passphrase: try options.passphrase(confirm: true), deviceName: deviceName,
                strength: kdf.strength)
            note("Created a vault in \(dir.path) for device \"\(deviceName)\".")
            print(vault.deviceID.hex)
        }
    }
}
