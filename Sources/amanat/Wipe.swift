import AmanatStore
import ArgumentParser

extension Amanat {
    /// `amanat wipe`: destroys the vault on this device.
    struct Wipe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy the vault on this device: the keyring first, so the rest is unreadable at once.",
            discussion: """
                Needs no passphrase, so it works under pressure. What other devices hold is not affected. It lists \
                what it destroyed and what it could not (a file it may not delete, for example), and exits with \
                status 74 when anything is left.

                Example:
                  amanat wipe --yes
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Confirm: really destroy this device's vault.") var yes = false
        @Flag(help: "Print the folder wiped as JSON (Docs/json.md).") var json = false

        func run() throws {
            guard yes else { throw CLIError(.usage, "Wiping destroys this vault for good; add --yes to confirm.") }
            let report = try Vault.wipe(at: options.directory)
            for line in report.destroyed { note("destroyed: \(line)") }
            for line in report.failed { note("NOT destroyed: \(line)") }
            guard report.complete else {
                throw CLIError(
                    .io,
                    report.keysDestroyed
                        ? "The keys of \(options.directory.path) are destroyed, so what is left cannot be decrypted on this laptop, but \(report.failed.count) file(s) could not be destroyed (listed above); remove them by hand or destroy the disk."
                        : "The keys of \(options.directory.path) could NOT be destroyed (listed above): the vault can still be opened with its passphrase; remove the file by hand or destroy the disk."
                )
            }
            note("Wiped the vault in \(options.directory.path).")
            if json { try JSONOutput.print(VaultFileJSON(directory: options.directory.path)) }
        }
    }
}
