import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat config`: this device's safety settings.
    struct Config: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read or change this device's settings (max-failed-unlocks).",
            discussion: """
                The one setting is max-failed-unlocks N: after N wrong passphrases in a row, the vault on this \
                laptop is wiped (1 to 1000; off by default). An attempt counts from the moment it starts, so an \
                interrupted one counts too; a right passphrase sets the count back to 0.

                Example:
                  amanat config set max-failed-unlocks 10
                  amanat config get max-failed-unlocks
                  amanat config unset max-failed-unlocks
                """,
            subcommands: [SetSetting.self, GetSetting.self, UnsetSetting.self])

        /// The settings there are.
        static let keys = ["max-failed-unlocks"]

        /// Refuses an unknown setting name.
        static func check(_ key: String) throws {
            guard keys.contains(key) else {
                throw CLIError(
                    .usage,
                    "There is no setting \"\(key)\"; the settings are: \(keys.joined(separator: ", ")).")
            }
        }
    }

    /// `amanat config set KEY VALUE`.
    struct SetSetting: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Change a setting; needs the vault's passphrase.",
            discussion: """
                Example:
                  amanat config set max-failed-unlocks 10
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The setting: max-failed-unlocks.") var key: String
        @Argument(help: "The value: a whole number from 1 to 1000.") var value: String

        func run() throws {
            try Config.check(key)
            // Checked as text before any conversion: at most 4 ASCII digits, then the range.
            let digits = value.unicodeScalars.allSatisfy { ("0"..."9").contains($0) }
            guard !value.isEmpty, value.utf8.count <= 4, digits, let n = UInt32(value),
                (1...Vault.maximumUnlockLimit).contains(n)
            else {
                throw CLIError(
                    .usage,
                    "max-failed-unlocks must be a whole number from 1 to \(Vault.maximumUnlockLimit), not \"\(value)\"."
                )
            }
            let vault = try options.open()
            try vault.setUnlockLimit(n)
            note(
                "After \(n) wrong passphrase\(n == 1 ? "" : "s") in a row, the vault in \(options.directory.path) will be wiped."
            )
        }
    }

    /// `amanat config get KEY`.
    struct GetSetting: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get", abstract: "Print a setting (\"off\" when unset); needs the vault's passphrase.",
            discussion: """
                Example:
                  amanat config get max-failed-unlocks
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The setting: max-failed-unlocks.") var key: String

        func run() throws {
            try Config.check(key)
            let vault = try options.open()
            print(vault.unlockLimit.map { String($0) } ?? "off")
        }
    }

    /// `amanat config unset KEY`.
    struct UnsetSetting: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unset", abstract: "Switch a setting off; needs the vault's passphrase.",
            discussion: """
                Example:
                  amanat config unset max-failed-unlocks
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The setting: max-failed-unlocks.") var key: String

        func run() throws {
            try Config.check(key)
            let vault = try options.open()
            try vault.setUnlockLimit(nil)
            note("No unlock limit: wrong passphrases no longer wipe the vault in \(options.directory.path).")
        }
    }
}
