import AmanatBundle
import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat passphrase`: changes the vault's passphrase.
    struct ChangePassphrase: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "passphrase",
            abstract: "Change the vault's passphrase.",
            discussion: """
                Asks for the current passphrase, then the new one twice (scripts: --passphrase-file for the current one and \
                --new-passphrase-file or AMANAT_NEW_PASSPHRASE for the new one). The keyring is rewritten in one step: \
                a crash leaves either the old or the new passphrase working, never neither. Backups made before keep \
                the passphrase they were made with.

                Example:
                  amanat passphrase
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "Read the new passphrase from the first line of this file.") var newPassphraseFile: String?
        @Flag(help: "Accept a new passphrase shorter than 12 characters (easy to guess once the vault is copied).")
        var allowWeakPassphrase = false
        @Flag(help: "Print the vault whose passphrase changed as JSON (Docs/json.md).") var json = false

        func run() throws {
            let (vault, current) = try options.openKeepingPassphrase()
            let new = try Passphrase.read(
                file: newPassphraseFile, prompt: "New passphrase: ", confirm: true,
                environmentVariable: "AMANAT_NEW_PASSPHRASE", fileOption: "--new-passphrase-file")
            guard !new.constantTimeEquals(current) else {
                throw CLIError(.usage, "The new passphrase is the one the vault already has; nothing was changed.")
            }
            try Passphrase.checkStrength(new, allowWeak: allowWeakPassphrase, command: "passphrase")
            let hadDuress = try vault.changePassphrase(to: new)
            // Inside `amanat shell`, a later `backup` must use the new passphrase.
            if let session = Session.current, session.vault === vault { session.passphrase = new }
            note("Changed the passphrase of the vault in \(options.directory.path).")
            if hadDuress {
                note("The duress passphrase was cleared with the old passphrase; set it again: amanat duress set")
            }
            if json {
                let ids = VaultIDs(vault.vaultID)
                try JSONOutput.print(
                    VaultFileJSON(
                        directory: options.directory.path, device: vault.deviceID.hex, vault: ids.vault,
                        vault_id: ids.vault_id))
            }
        }
    }
}

extension Amanat {
    /// `amanat backup`: the whole replica in one encrypted file.
    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the whole vault of this laptop into one file protected by its passphrase.",
            discussion: """
                The file is an age file encrypted to the vault's passphrase; everything in it is encrypted as in the \
                vault. Keep it apart from the laptop (a stick in another bag, a trusted person). It refuses to \
                overwrite an existing file without --force. Restore it with `amanat restore FILE --vault DIR`.

                Example:
                  amanat backup --out /media/usb/amanat-2026-11-29.backup
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "The backup file to write.") var out: String
        @Flag(help: "Replace the file given with --out if it exists (never done without this flag).") var force = false
        @Flag(help: "Print the backup file and its size as JSON (Docs/json.md).") var json = false

        func run() throws {
            try OutputFile.check(out, force: force)
            // The passphrase that opened the vault is the one the backup is encrypted to.
            let (vault, passphrase) = try options.openKeepingPassphrase()
            let url = URL(fileURLWithPath: out)
            if force { try? FileManager.default.removeItem(at: url) }
            try VaultBackup.write(vault, passphrase: passphrase, to: url)
            note("Wrote a backup of \(options.directory.path) to \(out), protected by the vault's passphrase.")
            if let media = try vault.attachmentSummary(), media.total > 0 {
                note(
                    "WARNING: the backup holds the records, not the \(media.total) attached file\(media.total == 1 ? "" : "s") (audio, video, photos): they come back from the team at the next sync after a restore (`amanat fetch`), so sync them to the team before you travel."
                )
            }
            if json {
                let ids = VaultIDs(vault.vaultID)
                try JSONOutput.print(
                    VaultFileJSON(
                        directory: options.directory.path, device: vault.deviceID.hex, vault: ids.vault,
                        vault_id: ids.vault_id, out: out, bytes: fileSize(out)))
            }
        }
    }
}

extension Amanat {
    /// `amanat restore`: brings a backup back as a new device identity of the same member.
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into a new vault directory, as a new identity of the same member.",
            discussion: """
                Asks for the passphrase the vault had when the backup was made. The restored laptop takes a new device \
                identity, handed over by the old one's signature (as `amanat recover` does), so that it never forks \
                the old identity's log, which the team may hold beyond the backup. Sync with the team afterwards to get \
                everything written since. If a coordinator revoked the old identity, the restore can be read but not \
                written to; ask for a new invitation.

                Example:
                  amanat restore /media/usb/amanat-2026-11-29.backup \\
                    --vault ~/.amanat
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The backup file.") var file: String
        @Flag(help: "Print the restored device and the one it replaces as JSON (Docs/json.md).") var json = false

        func run() throws {
            // An age file for a recipient (an evidence bundle) is no backup: say so before asking for a passphrase.
            if let stanzas = AgeStanzas.kinds(ofFile: file), !stanzas.isEmpty, !stanzas.contains("scrypt") {
                throw CLIError(
                    .damaged,
                    "\(file) is not an Amanat backup: it is encrypted to an age recipient, as an evidence bundle is (open one with `amanat bundle open`)."
                )
            }
            let passphrase = try options.passphrase()
            let restored = try VaultBackup.restore(
                from: URL(fileURLWithPath: file), passphrase: passphrase, at: options.directory)
            if json {
                try JSONOutput.print(
                    NewIdentityJSON(
                        device: restored.vault.deviceID.hex, previous_device: restored.previousDevice.hex,
                        new_identity: restored.newIdentity, directory: options.directory.path))
            }
            if restored.newIdentity {
                if !json { print(restored.vault.deviceID.hex) }
                note(
                    "Restored the backup into \(options.directory.path) as a new identity of the same member (the old one was \(restored.previousDevice.hex.prefix(12))). Sync with the team now."
                )
            } else {
                note(
                    "WARNING: restored the backup into \(options.directory.path), but its device identity \(restored.previousDevice.hex.prefix(12)) was revoked: you can read it, not write to it. Ask a coordinator for a new invitation."
                )
            }
        }
    }
}
