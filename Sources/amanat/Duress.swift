import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat duress`: a second passphrase that destroys this device's keys when it is entered.
    struct Duress: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set or clear a duress passphrase: entered at any unlock, it destroys this device's keys.",
            discussion: """
                With the duress passphrase, any command first destroys this laptop's keys (as `wipe` does), then \
                either fails exactly as a wrong passphrase does (mode wrong-passphrase, the default), or opens a \
                decoy vault you made in advance with the duress passphrase as its passphrase (mode decoy). Nothing \
                on the disk tells whether a duress passphrase is set.

                Example:
                  amanat init --vault ~/.amanat-notes
                  (the decoy: give it the duress passphrase)
                  amanat duress set --mode decoy --decoy ~/.amanat-notes
                  amanat duress clear
                """,
            subcommands: [SetDuress.self, ClearDuress.self])
    }

    /// `amanat duress set`.
    struct SetDuress: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set (or replace) the duress passphrase; needs the vault's passphrase.",
            discussion: """
                Asks for the vault's passphrase, then the duress passphrase twice (scripts: --duress-file FILE or \
                AMANAT_DURESS_PASSPHRASE). A duress passphrase equal to the vault's is refused. In decoy mode the \
                duress passphrase must open the decoy vault. Changing the vault's passphrase clears it.

                Example:
                  amanat duress set
                  amanat duress set --mode decoy --decoy ~/.amanat-notes
                """)

        /// What the duress passphrase does after destroying the keys.
        enum Mode: String, ExpressibleByArgument, CaseIterable {
            case wrongPassphrase = "wrong-passphrase"
            case decoy
        }

        @OptionGroup var options: VaultOptions
        @Option(help: "wrong-passphrase (fail as a wrong passphrase does) or decoy (open the --decoy vault).")
        var mode: Mode = .wrongPassphrase
        @Option(help: "The decoy vault's folder (mode decoy): an ordinary vault whose passphrase is the duress one.")
        var decoy: String?
        @Option(help: "Read the duress passphrase from the first line of this file instead of asking.")
        var duressFile: String?

        func run() throws {
            switch (mode, decoy) {
            case (.decoy, nil):
                throw CLIError(.usage, "Mode decoy needs --decoy DIR, the folder of the decoy vault.")
            case (.wrongPassphrase, .some):
                throw CLIError(.usage, "--decoy is for --mode decoy; add --mode decoy or leave --decoy out.")
            default: break
            }
            if duressFile == "-" && options.passphraseFile == "-" {
                throw CLIError(
                    .usage, "Only one of --passphrase-file and --duress-file can be standard input (-).")
            }
            var decoyURL: URL?
            if let decoy {
                let url = URL(fileURLWithPath: decoy).standardizedFileURL
                guard Vault.exists(at: url) else {
                    throw CLIError(
                        .noInput,
                        "There is no vault in \(url.path) to use as the decoy; make one first with `amanat init --vault \(url.path)`."
                    )
                }
                let mine = options.directory.standardizedFileURL.resolvingSymlinksInPath().path
                guard url.resolvingSymlinksInPath().path != mine else {
                    throw CLIError(.usage, "The decoy must be another vault than this one.")
                }
                decoyURL = url
            }
            let vault = try options.open()
            let secret = try Passphrase.read(
                file: duressFile, prompt: "Duress passphrase: ", confirm: true,
                environmentVariable: "AMANAT_DURESS_PASSPHRASE", fileOption: "--duress-file")
            if let decoyURL {
                // The decoy opens with the duress passphrase, or it would not open at the checkpoint either.
                do {
                    _ = try Vault.open(at: decoyURL, passphrase: secret)
                } catch let error as StoreError where error.code == .wrongPassphrase {
                    throw CLIError(
                        .usage,
                        "The duress passphrase does not open the decoy vault in \(decoyURL.path); give the decoy the duress passphrase (`amanat passphrase --vault \(decoyURL.path)`)."
                    )
                }
            }
            try vault.setDuress(
                passphrase: secret,
                setting: DuressSetting(mode: mode == .decoy ? .decoy : .wrongPassphrase, decoy: decoyURL?.path))
            note(
                mode == .decoy
                    ? "Set the duress passphrase: it destroys this vault's keys, then opens the decoy in \(decoyURL?.path ?? "")."
                    : "Set the duress passphrase: it destroys this vault's keys, then fails as a wrong passphrase.")
        }
    }

    /// `amanat duress clear`.
    struct ClearDuress: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear",
            abstract: "Clear the duress passphrase (if one is set); needs the vault's passphrase.",
            discussion: """
                Example:
                  amanat duress clear
                """)

        @OptionGroup var options: VaultOptions

        func run() throws {
            let vault = try options.open()
            let had = vault.duressSetting != nil
            try vault.clearDuress()
            note(had ? "Cleared the duress passphrase." : "No duress passphrase was set; nothing changed.")
        }
    }
}
