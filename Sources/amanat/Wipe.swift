import AmanatStore
import ArgumentParser

extension Amanat {
    /// `amanat wipe`: destroys the vault on this device.
    struct Wipe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy the vault on this device: the keyring first, so the rest is unreadable at once.",
            discussion: """
                Needs no passphrase, so it works under pressure. What other devices hold is not affected.

                Example:
                  amanat wipe --yes
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Confirm: really destroy this device's vault.") var yes = false
        @Flag(help: "Print the folder wiped as JSON (Docs/json.md).") var json = false

        func run() throws {
            guard yes else { throw CLIError(.usage, "Wiping destroys this vault for good; add --yes to confirm.") }
            try Vault.wipe(at: options.directory)
            note("Wiped the vault in \(options.directory.path).")
            if json { try JSONOutput.print(VaultFileJSON(directory: options.directory.path)) }
        }
    }
}
