import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// `amanat backup`, `restore` and `passphrase` through the command line: a laptop backed up, wiped and restored
/// rejoins its team with nothing lost and no fork, and bad input leaves everything as it was.
@Suite struct BackupCommandTests {
    static let phrase = "Farzana saw the convoy at dawn"

    func cli(_ url: URL) -> CLIRunner {
        var runner = CLIRunner(vault: url)
        runner.passphrase = "test passphrase"
        return runner
    }

    @Test func aRestoredBackupRejoinsTheTeamWithNothingLostAndNoFork() throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (coordinator, laptop) = (team[0], team[1])
        try exchange(coordinator, laptop)
        let before = try laptop.createRecord(
            kind: "testimony",
            fields: [("witness", "W-1-7f3a9c2e51"), ("narrative", Self.phrase), ("consent", "share")],
            tags: [], seal: true)
        try exchange(laptop, coordinator)

        let backup = dir.path("laptop.backup")
        let written = try cli(laptop.directory).run(["backup", "--out", backup.path])
        #expect(written.status == 0, "\(written.stderr)")
        let bytes = try Data(contentsOf: backup)
        #expect(bytes.starts(with: Data("age-encryption.org/v1".utf8)))
        // (A witness code long enough that ciphertext cannot hold it by chance, as a 3-byte "W-1" could.)
        #expect(
            bytes.range(of: Data(Self.phrase.utf8)) == nil && bytes.range(of: Data("W-1-7f3a9c2e51".utf8)) == nil)
        // No second backup over the first.
        let again = try cli(laptop.directory).run(["backup", "--out", backup.path])
        #expect(again.status == 73 && again.stderr.contains("already exists"), "\(again.status) \(again.stderr)")
        #expect(try Data(contentsOf: backup) == bytes)

        // The laptop goes on working and syncing after the backup, then is lost.
        let after = try laptop.createRecord(kind: "statement", fields: [("title", "after")], tags: [], seal: false)
        try exchange(laptop, coordinator)
        let old = laptop.deviceID
        #expect(try cli(laptop.directory).run(["wipe", "--yes"]).status == 0)

        let target = dir.path("restored")
        let restored = try cli(target).run(["restore", backup.path])
        #expect(restored.status == 0, "\(restored.stderr)")
        let staged = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter {
            $0.contains("restoring")
        }
        #expect(staged.isEmpty, "the hidden folder a restore works in is renamed into place: \(staged)")
        let newID = restored.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(newID.count == 64 && newID != old.hex)
        let vault = try Vault.open(at: target, passphrase: passphrase)
        #expect(try vault.resolveRecord(before.hex).view != nil, "what the backup held is there")
        try exchange(coordinator, vault)
        try exchange(vault, coordinator)
        #expect(try vault.resolveRecord(after.hex).view != nil, "what was written after the backup came back")
        let next = try vault.createRecord(kind: "statement", fields: [("title", "restored")], tags: [], seal: false)
        try exchange(vault, coordinator)
        #expect(try coordinator.resolveRecord(next.hex).view != nil)
        for replica in [coordinator, vault] {
            #expect(try replica.forks().isEmpty, "a restored backup never forks the old identity")
            #expect(try replica.verify().problems == [])
        }
        #expect(try coordinator.status().stateDigest == vault.status().stateDigest)
        #expect(coordinator.membership.members[vault.deviceID]?.recoveredFrom == old)

        // Revoking the lost laptop's old identity takes the restored one with it: the coordinator is told which.
        let revoked = try cli(coordinator.directory).run(["revoke", old.hex])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(revoked.stderr.contains("also revokes") && revoked.stderr.contains(vault.deviceID.hex.prefix(12)))
    }

    @Test func badBackupsAndRestoresLeaveEverythingAsItWas() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeTeam(1, in: dir)[0]
        _ = try vault.createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        let backup = dir.path("v.backup")
        _ = try cli(vault.directory).ok(["backup", "--out", backup.path])

        var wrong = cli(dir.path("wrong"))
        wrong.passphrase = "not the passphrase at all"
        let refused = try wrong.run(["restore", backup.path])
        #expect(refused.status == 77 && refused.stderr.contains("Wrong passphrase for this backup"))
        #expect(!FileManager.default.fileExists(atPath: dir.path("wrong/keyring.amk").path))

        let occupied = try cli(vault.directory).run(["restore", backup.path])
        #expect(occupied.status == 73, "\(occupied.stderr)")
        #expect(try vault.visibleRecords().count == 1)

        var damaged = Array(try Data(contentsOf: backup))
        damaged[damaged.count - 40] ^= 0x20
        let broken = dir.path("broken.backup")
        try Data(damaged).write(to: broken)
        let result = try cli(dir.path("fromBroken")).run(["restore", broken.path])
        #expect(result.status == 65 && result.stderr.contains("damaged"), "\(result.status) \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path("fromBroken/keyring.amk").path))
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains("restoring") }
        #expect(left.isEmpty, "a failed restore leaves no half-restored vault behind: \(left)")

        let missingFolder = try cli(vault.directory).run(["backup", "--out", dir.path("no/such/folder.backup").path])
        #expect(
            missingFolder.status == 66 && missingFolder.stderr.contains("does not exist"), "\(missingFolder.stderr)")
        let before = try Data(contentsOf: backup)
        let forced = try cli(vault.directory).run(["backup", "--out", backup.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Data(contentsOf: backup) != before, "--force replaces the earlier backup")
    }

    /// An age file is read for its recipients before any passphrase is asked: an evidence bundle (binary or
    /// armored) is not a backup, and a passphrase bundle imported without --passphrase says to add it.
    @Test func aBundleIsToldApartFromABackupByItsHeader() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        _ = try cli.ok(["add", "statement", "--title", "T", "--body", "b"])
        let recipient = try #require(
            try cli.ok(["identity"]).split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("age1") })
        for armor in [false, true] {
            let bundle = scratch.path("evidence-\(armor).age").path
            _ = try cli.ok(["export", "--out", bundle, "--recipient", String(recipient)] + (armor ? ["--armor"] : []))
            let restored = scratch.runner("restored-\(armor)")
            let r = try restored.run(["restore", bundle])
            #expect(r.status == 65, "\(r.stderr)")
            #expect(r.stderr.contains("is not an Amanat backup: it is encrypted to an age recipient"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: restored.vault.path))
        }
        var withPassphrase = cli
        withPassphrase.environment["AMANAT_BUNDLE_PASSPHRASE"] = "a bundle passphrase for the lawyer"
        let protected = scratch.path("protected.age").path
        _ = try withPassphrase.ok(["export", "--out", protected, "--passphrase"])
        let r = try cli.run(["import", protected])
        #expect(r.status == 77, "\(r.stderr)")
        #expect(r.stderr.contains("is protected by a passphrase: add --passphrase"), "\(r.stderr)")
    }

    @Test func thePassphraseChangesInOneStepAndAWeakOneIsRefused() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeTeam(1, in: dir)[0]
        let url = vault.directory
        let keyring = try Data(contentsOf: url.appendingPathComponent("keyring.amk"))
        var runner = cli(url)
        runner.environment["AMANAT_NEW_PASSPHRASE"] = "short"
        let weak = try runner.run(["passphrase"])
        #expect(weak.status == 64 && weak.stderr.contains("at least 12"))
        #expect(try Data(contentsOf: url.appendingPathComponent("keyring.amk")) == keyring)

        runner.environment["AMANAT_NEW_PASSPHRASE"] = "a much longer new passphrase"
        let changed = try runner.run(["passphrase"])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(try cli(url).run(["list"]).status == 77, "the old passphrase no longer opens the vault")
        var renewed = CLIRunner(vault: url)
        renewed.passphrase = "a much longer new passphrase"
        #expect(try renewed.run(["verify"]).status == 0)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "no temporary keyring left behind: \(leftovers)")
    }
}
