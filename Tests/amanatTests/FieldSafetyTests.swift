import AmanatCrypto
import AmanatStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 17 through the `amanat` binary: the duress passphrase in both modes, the unlock limit (also across killed
/// processes), and a `wipe` that says what it destroyed and what it could not.
@Suite struct FieldSafetyTests {
    static let narrative = "They held us at the Pul-e-Charkhi gate for nine hours; Marzia was taken away."
    static let location = "Qala-e-Naw checkpoint 7"
    static let duress = "blue kettle on the stove"

    /// A vault with one testimony, made with the fast KDF (or `kdf`).
    func vaultWithTestimony(_ scratch: Scratch, _ name: String = "vault", kdf: String = "interactive") throws
        -> CLIRunner
    {
        let cli = scratch.runner(name)
        _ = try cli.ok(["init", "--kdf", kdf, "--device-name", "field laptop"])
        let added = try cli.run(
            ["add", "testimony", "--witness", "W-0917", "--location", Self.location, "--narrative-file", "-"],
            stdin: Self.narrative)
        #expect(added.status == 0, "\(added.stderr)")
        return cli
    }

    /// Every secret the keyring holds: device seed, vault keys, agreement secret.
    func keyMaterial(_ cli: CLIRunner) throws -> [[UInt8]] {
        let keyring = try Keyring.read(
            from: cli.vault.appendingPathComponent(Vault.keyringFileName),
            passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        var secrets = [keyring.device.seed.copyBytes()] + keyring.keys.map { $0.root.copyBytes() }
        if let agreement = keyring.agreement { secrets.append(agreement.secretKey.copyBytes()) }
        return secrets
    }

    /// The paths of every file under `dir` (hidden ones too) whose bytes contain one of `needles`.
    func filesHolding(_ needles: [[UInt8]], under dir: URL) -> [String] {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: dir.path) else { return [] }
        var found: [String] = []
        for case let name as String in walker {
            let path = dir.appendingPathComponent(name).path
            guard let data = fm.contents(atPath: path) else { continue }
            for needle in needles where data.range(of: Data(needle)) != nil { found.append(name) }
        }
        return found
    }

    func file(_ scratch: Scratch, _ name: String, _ text: String) throws -> String {
        let url = scratch.path(name)
        try Data((text + "\n").utf8).write(to: url)
        return url.path
    }

    func with(_ cli: CLIRunner, passphrase: String) -> CLIRunner {
        var other = cli
        other.passphrase = passphrase
        return other
    }

    // MARK: duress passphrase

    @Test func theDuressPassphraseDestroysTheKeysAndThenReadsExactlyAsAWrongPassphrase() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let keys = try keyMaterial(cli)
        let wrong = try with(cli, passphrase: "not the passphrase at all").run(["list"])
        #expect(wrong.status == 77)
        #expect(wrong.stderr.hasPrefix("amanat: Wrong passphrase"), "\(wrong.stderr)")

        let set = try cli.run(["duress", "set", "--duress-file", try file(scratch, "duress.txt", Self.duress)])
        #expect(set.status == 0, "\(set.stderr)")
        // Still an ordinary vault for its passphrase, and a wrong passphrase still only fails.
        #expect(try cli.list().count == 1)
        #expect(try with(cli, passphrase: "not the passphrase at all").run(["list"]).status == 77)
        #expect(try cli.list().count == 1)

        let forced = try with(cli, passphrase: Self.duress).run(["list"])
        #expect(forced.status == wrong.status)
        #expect(forced.stderr == wrong.stderr)
        #expect(forced.stdout == wrong.stdout)

        // Afterwards every passphrase fails, the same way.
        for phrase in [cli.passphrase, Self.duress, "not the passphrase at all"] {
            let again = try with(cli, passphrase: phrase).run(["list"])
            #expect(again.status == 77 && again.stderr == wrong.stderr, "\(phrase): \(again.status) \(again.stderr)")
        }
        // Nothing left on this laptop holds a key or the testimony.
        let needles = keys + [Array(Self.narrative.utf8), Array(Self.location.utf8), Array("W-0917".utf8)]
        #expect(filesHolding(needles, under: cli.vault) == [])
        #expect(!FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent(Vault.databaseFileName).path))
    }

    @Test func theDuressPassphraseInDecoyModeOpensTheDecoyAndLeavesNothingOfTheRealVault() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let keys = try keyMaterial(cli)
        let decoy = with(scratch.runner("notes"), passphrase: Self.duress)
        _ = try decoy.ok(["init", "--kdf", "interactive", "--device-name", "home laptop"])
        _ = try decoy.ok(["add", "statement", "--title", "Recipes for Nowruz", "--body", "sabzi polo"])

        let set = try cli.run([
            "duress", "set", "--mode", "decoy", "--decoy", decoy.vault.path,
            "--duress-file", try file(scratch, "duress.txt", Self.duress),
        ])
        #expect(set.status == 0, "\(set.stderr)")
        #expect(try cli.list().count == 1, "the real passphrase still opens the real vault")

        let forced = with(cli, passphrase: Self.duress)
        let shown = try forced.list()
        #expect(shown.count == 1)
        #expect((shown.first?["fields"] as? [String: String])?["title"] == "Recipes for Nowruz")
        // From now on the vault folder holds the decoy: the duress passphrase keeps opening it, the real one fails.
        #expect(try forced.list().count == 1)
        #expect(try forced.run(["verify"]).status == 0)
        let real = try cli.run(["list"])
        #expect(real.status == 77 && real.stderr.hasPrefix("amanat: Wrong passphrase"), "\(real.stderr)")
        #expect(!FileManager.default.fileExists(atPath: decoy.vault.path), "the decoy folder was moved into place")
        let needles = keys + [Array(Self.narrative.utf8), Array(Self.location.utf8), Array("W-0917".utf8)]
        #expect(filesHolding(needles, under: cli.vault) == [])
    }

    @Test func duressSetRefusesWhatWouldNotWorkAndChangesNothing() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let keyring = cli.vault.appendingPathComponent(Vault.keyringFileName)
        let before = try Data(contentsOf: keyring)
        let duressFile = try file(scratch, "duress.txt", Self.duress)

        let same = try cli.run(["duress", "set", "--duress-file", try file(scratch, "same.txt", cli.passphrase)])
        #expect(same.status == 64 && same.stderr.contains("must differ"), "\(same.stderr)")
        let noDecoy = try cli.run(["duress", "set", "--mode", "decoy", "--duress-file", duressFile])
        #expect(noDecoy.status == 64 && noDecoy.stderr.contains("--decoy"), "\(noDecoy.stderr)")
        let decoyOnly = try cli.run(["duress", "set", "--decoy", scratch.path("x").path, "--duress-file", duressFile])
        #expect(decoyOnly.status == 64, "\(decoyOnly.stderr)")
        let missing = try cli.run([
            "duress", "set", "--mode", "decoy", "--decoy", scratch.path("nothing").path, "--duress-file", duressFile,
        ])
        #expect(missing.status == 66 && missing.stderr.contains("no vault"), "\(missing.stderr)")
        let itself = try cli.run([
            "duress", "set", "--mode", "decoy", "--decoy", cli.vault.path, "--duress-file", duressFile,
        ])
        #expect(itself.status == 64 && itself.stderr.contains("another vault"), "\(itself.stderr)")
        let other = scratch.runner("other")
        _ = try other.ok(["init", "--kdf", "interactive"])
        let foreign = try cli.run([
            "duress", "set", "--mode", "decoy", "--decoy", other.vault.path, "--duress-file", duressFile,
        ])
        #expect(foreign.status == 64 && foreign.stderr.contains("does not open the decoy"), "\(foreign.stderr)")
        let locked = try with(cli, passphrase: "wrong wrong wrong").run(["duress", "set", "--duress-file", duressFile])
        #expect(locked.status == 77)
        #expect(try Data(contentsOf: keyring) == before, "no refusal rewrote the keyring")
        #expect(try with(cli, passphrase: Self.duress).run(["list"]).status == 77)
        #expect(try cli.list().count == 1, "no duress passphrase was set by any refused attempt")
    }

    @Test func theKeyringLooksTheSameWithAndWithoutADuressPassphrase() throws {
        let scratch = try Scratch()
        let plain = try vaultWithTestimony(scratch, "plain")
        let armed = try vaultWithTestimony(scratch, "armed")
        let duressFile = try file(scratch, "duress.txt", Self.duress)
        let keyringA = plain.vault.appendingPathComponent(Vault.keyringFileName)
        let keyringB = armed.vault.appendingPathComponent(Vault.keyringFileName)
        let before = try Data(contentsOf: keyringB)
        _ = try armed.ok(["duress", "set", "--duress-file", duressFile])
        let after = try Data(contentsOf: keyringB)
        let a = try Data(contentsOf: keyringA)
        #expect(a.count == after.count && before.count == after.count, "\(a.count) \(before.count) \(after.count)")
        #expect(a[4] == 3 && after[4] == 3, "both are keyring version 3")
        // The duress slot (before the checksum) changed, and changes at every rewrite with or without a duress
        // passphrase, so comparing two copies tells nothing either.
        let slot = (after.count - 32 - 1064)..<(after.count - 32)
        #expect(before[slot] != after[slot])
        _ = try plain.ok(["duress", "clear"])
        #expect(try Data(contentsOf: keyringA)[slot] != a[slot])
        let counterA = try Data(contentsOf: plain.vault.appendingPathComponent("unlock.amk"))
        let counterB = try Data(contentsOf: armed.vault.appendingPathComponent("unlock.amk"))
        #expect(counterA.count == counterB.count)
    }

    @Test func changingThePassphraseClearsTheDuressPassphraseAndSaysSo() throws {
        let scratch = try Scratch()
        var cli = try vaultWithTestimony(scratch)
        _ = try cli.ok(["duress", "set", "--duress-file", try file(scratch, "duress.txt", Self.duress)])
        var changer = cli
        changer.environment["AMANAT_NEW_PASSPHRASE"] = "a new passphrase for the road"
        let changed = try changer.run(["passphrase"])
        #expect(changed.status == 0 && changed.stderr.contains("duress passphrase was cleared"), "\(changed.stderr)")
        cli.passphrase = "a new passphrase for the road"
        #expect(try with(cli, passphrase: Self.duress).run(["list"]).status == 77)
        #expect(try cli.list().count == 1, "the old duress passphrase wiped nothing")
    }

    // MARK: unlock limit

    @Test func theUnlockLimitWipesAfterNWrongPassphrasesInARow() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let keys = try keyMaterial(cli)
        #expect(try cli.ok(["config", "get", "max-failed-unlocks"]) == "off")
        _ = try cli.ok(["config", "set", "max-failed-unlocks", "3"])
        #expect(try cli.ok(["config", "get", "max-failed-unlocks"]) == "3")
        let wrong = with(cli, passphrase: "guess number one")
        // Two failures, then a success: the count starts again.
        #expect(try wrong.run(["list"]).status == 77)
        #expect(try wrong.run(["list"]).status == 77)
        #expect(try cli.list().count == 1)
        let first = try wrong.run(["list"])
        #expect(try wrong.run(["list"]).status == 77)
        #expect(try cli.list().count == 1)
        // Three in a row.
        for _ in 0..<3 { #expect(try wrong.run(["list"]).status == 77) }
        let after = try cli.run(["list"])
        #expect(after.status == 77 && after.stderr == first.stderr, "\(after.stderr)")
        let needles = keys + [Array(Self.narrative.utf8), Array(Self.location.utf8)]
        #expect(filesHolding(needles, under: cli.vault) == [])
        #expect(!FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent(Vault.databaseFileName).path))
    }

    @Test func wrongPassphrasesTriedInParallelAreEachCounted() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch, kdf: "moderate")
        _ = try cli.ok(["config", "set", "max-failed-unlocks", "3"])
        // Eight guesses started at once, as a guesser with many processes would: each is counted, so the vault is
        // wiped (without the lock, several read the same count and the limit is never reached).
        var processes: [Process] = []
        for guess in 0..<8 {
            let process = Process()
            process.executableURL = CLIRunner.binary
            process.arguments = ["--vault", cli.vault.path, "list"]
            var env = ProcessInfo.processInfo.environment
            env["AMANAT_PASSPHRASE"] = "parallel guess \(guess)"
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            processes.append(process)
        }
        for process in processes { try process.run() }
        for process in processes { process.waitUntilExit() }
        // Every guess fails as a wrong passphrase, even one that looks at the folder while another wipes it (the
        // command's own look for a vault waits for the unlock lock when the keyring is missing).
        #expect(processes.map(\.terminationStatus) == Array(repeating: 77, count: 8))
        let after = try cli.run(["list"])
        #expect(after.status == 77 && after.stderr.hasPrefix("amanat: Wrong passphrase"), "\(after.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent(Vault.databaseFileName).path))
    }

    @Test func anUnlockAttemptKilledDuringTheDerivationStillCounts() throws {
        let scratch = try Scratch()
        // The default (moderate) derivation takes long enough to be killed in the middle of it.
        let cli = try vaultWithTestimony(scratch, kdf: "moderate")
        _ = try cli.ok(["config", "set", "max-failed-unlocks", "3"])
        let counter = cli.vault.appendingPathComponent("unlock.amk")
        for attempt in 1...3 {
            let before = try Data(contentsOf: counter)
            let process = Process()
            process.executableURL = CLIRunner.binary
            // Even the right passphrase: an attempt that never finishes is a failed one.
            process.arguments = ["--vault", cli.vault.path, "list"]
            var env = ProcessInfo.processInfo.environment
            env["AMANAT_PASSPHRASE"] = cli.passphrase
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // The counter is rewritten before the derivation starts: kill as soon as it changes.
            let deadline = Date().addingTimeInterval(30)
            while (try? Data(contentsOf: counter)) == before, process.isRunning, Date() < deadline {
                usleep(1000)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(
                process.terminationReason == .uncaughtSignal,
                "attempt \(attempt) was killed before it finished (it exited \(process.terminationStatus))")
        }
        let after = try cli.run(["list"])
        #expect(after.status == 77 && after.stderr.hasPrefix("amanat: Wrong passphrase"), "\(after.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent(Vault.databaseFileName).path))
    }

    @Test func configRefusesUnknownSettingsAndBadNumbers() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let counter = cli.vault.appendingPathComponent("unlock.amk")
        _ = try cli.ok(["config", "set", "max-failed-unlocks", "5"])
        for value in ["0", "1001", "-1", "3x", "", "٣", "99999999999999999999999", "+5", " 5"] {
            let before = try Data(contentsOf: counter)
            // `--` so that "-1" reaches the command instead of being read as an option.
            let r = try cli.run(["config", "set", "max-failed-unlocks", "--", value])
            #expect(r.status == 64 && r.stderr.hasPrefix("amanat: max-failed-unlocks must be"), "\(value): \(r.stderr)")
            #expect(try Data(contentsOf: counter) == before, "\(value) changed nothing")
        }
        let unknown = try cli.run(["config", "set", "max-failed-logins", "3"])
        #expect(unknown.status == 64 && unknown.stderr.contains("no setting"), "\(unknown.stderr)")
        #expect(try cli.run(["config", "get", "colour"]).status == 64)
        #expect(
            try with(cli, passphrase: "wrong wrong wrong").run(["config", "get", "max-failed-unlocks"]).status == 77)
        #expect(try cli.ok(["config", "get", "max-failed-unlocks"]) == "5")
        _ = try cli.ok(["config", "unset", "max-failed-unlocks"])
        #expect(try cli.ok(["config", "get", "max-failed-unlocks"]) == "off")
        for _ in 0..<6 { #expect(try with(cli, passphrase: "wrong wrong wrong").run(["list"]).status == 77) }
        #expect(try cli.list().count == 1, "no limit: wrong passphrases wipe nothing")
    }

    // MARK: wipe

    @Test func wipeSaysWhatItDestroyed() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let r = try cli.run(["wipe", "--yes"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("destroyed: keyring.amk: the keys, overwritten with random bytes and deleted"))
        #expect(r.stderr.contains("destroyed: vault.sqlite: deleted"))
        #expect(r.stderr.contains("destroyed: unlock.amk: deleted"))
        #expect(!r.stderr.contains("NOT destroyed"))
        #expect(!FileManager.default.fileExists(atPath: cli.vault.path))
    }

    @Test func wipeSaysWhatItCouldNotDestroyAndFails() throws {
        let scratch = try Scratch()
        let cli = try vaultWithTestimony(scratch)
        let database = cli.vault.appendingPathComponent(Vault.databaseFileName)
        // A file this user may not delete: immutable for root (who ignores permissions), a read-only folder else.
        let asRoot = getuid() == 0
        if asRoot {
            #expect(try run("/usr/bin/chattr", ["+i", database.path]) == 0, "chattr +i is needed for this test")
        } else {
            chmod(cli.vault.path, 0o500)
        }
        defer {
            if asRoot { _ = try? run("/usr/bin/chattr", ["-i", database.path]) } else { chmod(cli.vault.path, 0o700) }
        }
        let r = try cli.run(["wipe", "--yes"])
        #expect(r.status == 74, "\(r.stderr)")
        #expect(r.stderr.contains("NOT destroyed: vault.sqlite could not be deleted"), "\(r.stderr)")
        #expect(r.stderr.contains("amanat: The keys of"), "\(r.stderr)")
        #expect(r.stderr.contains("are destroyed"), "\(r.stderr)")
        #expect(!r.stderr.contains("Wiped the vault"))
        let keyring = cli.vault.appendingPathComponent(Vault.keyringFileName)
        let left = FileManager.default.contents(atPath: keyring.path)
        #expect(left == nil || left?.starts(with: Data("AMNK".utf8)) == false, "the keyring was destroyed anyway")
    }

    func run(_ tool: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
