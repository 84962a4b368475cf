import Foundation
import Testing

/// `amanat sync TARGET` refuses a mistyped target with a sentence about the target, creates a sync file only when
/// asked, and leaves the vault exactly as it was.
@Suite struct SyncTargetTests {
    struct Setting {
        let scratch: Scratch
        let cli: CLIRunner
        let usb: URL

        init() throws {
            scratch = try Scratch()
            cli = scratch.runner()
            try cli.initialize()
            _ = try cli.ok(["add", "statement", "--title", "kept"])
            usb = scratch.path("usb")
            try FileManager.default.createDirectory(at: usb, withIntermediateDirectories: true)
        }

        /// Runs `sync ARGS…`, expects `status` and every phrase on stderr, and checks the vault did not change.
        func refused(_ args: [String], status: Int32, _ phrases: [String]) throws {
            let digest = try cli.digest()
            let r = try cli.run(["sync"] + args)
            #expect(r.status == status, "\(args): \(r.status) \(r.stderr)")
            for phrase in phrases { #expect(r.stderr.contains(phrase), "\(args): \(r.stderr)") }
            #expect(!r.stderr.contains("vault database"), "the vault is never blamed: \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one sentence: \(r.stderr)")
            #expect(try cli.digest() == digest)
        }
    }

    @Test func aRelayAddressWithoutItsSchemeIsRefusedWithAHint() throws {
        let s = try Setting()
        let cwd = FileManager.default.currentDirectoryPath
        // Without a port, the port `amanat serve` listens on by default is suggested.
        for (target, meant) in [
            ("127.0.0.1:18080", "http://127.0.0.1:18080"), ("relay.example.org", "http://relay.example.org:8080"),
            ("192.168.1.20", "http://192.168.1.20:8080"), ("hub:8080", "http://hub:8080"),
            ("localhost:8080/x", "http://localhost:8080/x"), ("[::1]:8080", "http://[::1]:8080"),
        ] {
            try s.refused([target], status: 64, ["looks like a relay address", "did you mean \(meant) ?"])
            #expect(!FileManager.default.fileExists(atPath: "\(cwd)/\(target)"), "no file named \(target)")
        }
        try s.refused([""], status: 64, ["Give a sync file"])
        try s.refused(["/dev/null"], status: 64, ["/dev/null is not a sync file: it is a device"])
        try s.refused(["ftp://relay.example.org"], status: 64, ["starts with http:// or https://"])
        try s.refused(["http//192.168.1.20:8080"], status: 64, ["did you mean http://192.168.1.20:8080 ?"])
    }

    @Test func aSyncFileIsCreatedOnlyWhenAsked() throws {
        let s = try Setting()
        let team = s.usb.appendingPathComponent("team.amanat-sync")
        try s.refused([team.path], status: 66, ["There is no sync file at \(team.path)", "add --create"])
        #expect(!FileManager.default.fileExists(atPath: team.path))
        let created = try s.cli.run(["sync", "--create", team.path])
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stderr.contains("Created the sync file \(team.path)."))
        // Later syncs need no flag; a typo next to it is refused and the existing file is named.
        #expect(try s.cli.run(["sync", "--create", team.path]).status == 0)
        let typo = s.usb.appendingPathComponent("taem.amanat-sync")
        try s.refused([typo.path], status: 66, ["There is no sync file at \(typo.path)", "`team.amanat-sync`"])
        #expect(!FileManager.default.fileExists(atPath: typo.path))
        // Even with --create, a second file beside the team's is named as a likely mistake.
        let split = try s.cli.run(["sync", "--create", typo.path])
        #expect(split.status == 0 && split.stderr.contains("already holds `team.amanat-sync`"), "\(split.stderr)")
    }

    @Test func aMissingFolderOrAFolderAsTargetGetsItsOwnSentence() throws {
        let s = try Setting()
        let missing = s.scratch.path("usb-missing/team.amanat-sync")
        try s.refused(
            [missing.path], status: 66,
            ["The folder \(missing.deletingLastPathComponent().path) does not exist", "mounted"])
        try s.refused(["--create", missing.path], status: 66, ["does not exist"])
        try s.refused([s.usb.path], status: 64, ["\(s.usb.path) is a folder", "team.amanat-sync"])
    }

    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func aReadOnlyOrFullStickIsNamed() throws {
        let s = try Setting()
        let disk = try #require(TinyDisk())
        // Full: a file fills the stick to within 64 KiB.
        let filler = disk.url.appendingPathComponent("filler")
        _ = try shell("dd if=/dev/zero of='\(filler.path)' bs=1k count=2048 2>/dev/null")
        try s.refused(
            ["--create", disk.url.appendingPathComponent("team.amanat-sync").path], status: 74,
            ["The disk holding \(disk.url.path) is full"])
        try FileManager.default.removeItem(at: filler)
        #expect(try disk.remountReadOnly())
        try s.refused(
            ["--create", disk.url.appendingPathComponent("team.amanat-sync").path], status: 74,
            ["The folder \(disk.url.path) is read-only", "write-protected"])
    }
}

/// `export` and `invite` never replace an existing file without `--force`, and name a missing folder.
@Suite struct OutputFileTests {
    @Test func anExistingBundleOrInvitationIsKeptUnlessForced() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        _ = try cli.ok(["add", "statement", "--title", "one"])
        let key = scratch.path("key.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("evidence.age").path
        _ = try cli.ok(["export", "--out", bundle, "--recipient", recipient])
        let first = try Data(contentsOf: URL(fileURLWithPath: bundle))
        _ = try cli.ok(["add", "statement", "--title", "two"])
        let again = try cli.run(["export", "--out", bundle, "--recipient", recipient])
        #expect(again.status == 73 && again.stderr.contains("already exists") && again.stderr.contains("--force"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: bundle)) == first, "the earlier bundle is untouched")
        _ = try cli.ok(["export", "--out", bundle, "--recipient", recipient, "--force"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: bundle)) != first)

        let invitation = scratch.path("invite.amanat").path
        _ = try cli.ok(["invite", "--out", invitation])
        let members = try cli.ok(["members", "--json"])
        let refused = try cli.run(["invite", "--out", invitation])
        #expect(refused.status == 73 && refused.stderr.contains("already exists"))
        #expect(try cli.ok(["members", "--json"]) == members)

        let missing = scratch.path("nostick/invite.amanat").path
        let nowhere = try cli.run(["invite", "--out", missing])
        #expect(nowhere.status == 66 && nowhere.stderr.contains("\(scratch.path("nostick").path) does not exist"))
        #expect(!nowhere.stderr.contains(".tmp-"), "no temporary file name: \(nowhere.stderr)")
    }
}

/// An envelope is at most 8 MiB: a sync file that holds a bigger one is refused before its bytes are read, and a
/// change that would be bigger is refused when it is made; the vault stays as it was.
@Suite struct EnvelopeSizeLimitTests {
    @Test func aSyncFileWithAHugeEnvelopeIsRefusedAndATooLargeNarrativeIsNotSealed() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize()
        _ = try a.ok(["add", "statement", "--title", "kept"])
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", "--create", stick])
        // The attacker appends a 9 MiB blob as the next change of the device the file already holds.
        let huge = 9 * 1024 * 1024
        let (status, output) = try shell(
            "python3 -c \"import sqlite3; db = sqlite3.connect('\(stick)'); d = db.execute('SELECT id FROM device').fetchone()[0]; m = db.execute('SELECT MAX(id) FROM envelope').fetchone()[0]; db.execute('INSERT INTO envelope(id, body) VALUES (?, zeroblob(\(huge)))', (m + 1,)); db.commit()\""
        )
        #expect(status == 0, "\(output)")
        let digest = try a.digest()
        let refused = try a.run(["sync", "--create", stick])
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(refused.stderr.contains("over the 8 MiB an envelope may have"), "\(refused.stderr)")
        #expect(try a.digest() == digest)

        let big = scratch.path("big.txt")
        try Data(String(repeating: "They came at night. ", count: 460_000).utf8).write(to: big)
        let before = try a.digest()
        let r = try a.run(["add", "statement", "--title", "long", "--body-file", big.path])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("too large to sync"), "\(r.stderr)")
        #expect(try a.digest() == before)
    }
}
