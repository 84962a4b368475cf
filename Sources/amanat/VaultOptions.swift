import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

/// The options every vault command shares: where the vault is and how to get its passphrase.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: "The vault directory (default: $AMANAT_VAULT, else $HOME/.amanat).")
    var vault: String?

    @Option(
        name: .long,
        help: "Read the passphrase from the first line of this file (- for standard input) instead of asking.")
    var passphraseFile: String?

    /// The vault directory chosen by flag, environment or default.
    var directory: URL {
        if let vault { return URL(fileURLWithPath: vault) }
        // Inside `amanat shell`, the vault it unlocked.
        if let session = Session.current { return session.directory }
        if let env = ProcessInfo.processInfo.environment["AMANAT_VAULT"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        // $HOME first, as every Unix program does (a test, a container or `sudo -H` sets it elsewhere); the account's
        // home from the password database only when it is unset.
        if let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home).appendingPathComponent(".amanat")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".amanat")
    }

    /// The passphrase from the file, the environment, or a no-echo prompt.
    func passphrase(confirm: Bool = false) throws -> SecureBytes {
        try Passphrase.read(file: passphraseFile, prompt: "Passphrase for \(directory.path): ", confirm: confirm)
    }

    /// Opens the vault and keeps the passphrase that opened it (for commands that encrypt with it again).
    func openKeepingPassphrase() throws -> (Vault, SecureBytes) {
        if let session = Session.current, session.directory.standardizedFileURL == directory.standardizedFileURL,
            let secret = session.passphrase
        {
            return (session.vault, secret)
        }
        try requireVault()
        let secret = try passphrase()
        return (try Vault.open(at: directory, passphrase: secret), secret)
    }

    /// Opens the vault if there is one (asking for its passphrase), or nil.
    func openIfPresent() throws -> Vault? {
        Vault.existsOnceSettled(at: directory) ? try open() : nil
    }

    /// Opens the vault, failing with a clear sentence when it is missing or locked; inside `amanat shell`, the
    /// vault the session unlocked.
    func open() throws -> Vault {
        if let session = Session.current, session.directory.standardizedFileURL == directory.standardizedFileURL {
            return session.vault
        }
        try requireVault()
        return try Vault.open(at: directory, passphrase: try passphrase())
    }

    /// Fails with the sentence that fits when the folder holds no vault that can be opened: none at all, a
    /// folder that cannot be read, or a vault database whose keyring is gone.
    func requireVault() throws {
        guard !Vault.existsOnceSettled(at: directory) else { return }
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.path), access(directory.path, R_OK | X_OK) != 0 {
            throw StoreError(
                .io, "The folder \(directory.path) cannot be read (\(String(cString: strerror(errno)))).")
        }
        if fm.fileExists(atPath: directory.appendingPathComponent(Vault.databaseFileName).path) {
            throw StoreError(
                .damaged,
                "The vault in \(directory.path) has lost its keyring (\(Vault.keyringFileName)), without which nothing in it can be read; restore the vault from a backup (`amanat restore`)."
            )
        }
        throw StoreError(.noVault, "There is no vault in \(directory.path); run `amanat init` or pass --vault DIR.")
    }
}
