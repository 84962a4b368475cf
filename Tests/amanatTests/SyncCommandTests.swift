import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SyncCommandTests {
    /// Two devices: `a` made with init, `b` joined from a's invitation.
    func makePair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner) {
        let a = scratch.runner("a")
        try a.initialize(name: "field laptop")
        let invitation = scratch.path("invite.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        #expect(code.count == 29 && code.split(separator: "-").count == 6, "code: \(code)")
        let b = scratch.runner("b")
        _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "coordinator"])
        return (a, b)
    }

    @Test func inviteJoinSyncConflictResolveConverge() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("stick.amanat-sync").path
        let id = try a.ok([
            "add", "testimony", "--witness", "W-SECRET-4711", "--narrative-file", samplePath, "--location", "Kabul",
        ])
        _ = try a.ok(["sync", "--create", stick])
        _ = try b.ok(["sync", "--create", stick])
        #expect(try b.list().map { $0["id"] as? String } == [id])
        _ = try a.ok(["edit", id, "--set", "location=Herat"])
        _ = try b.ok(["edit", id, "--set", "location=Kandahar"])
        for runner in [a, b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        for runner in [a, b] {
            let record = try #require(try runner.list().first)
            let conflicts = try #require(record["conflicts"] as? [String: [String]])
            #expect(conflicts["location"]?.count == 1, "both edits kept")
        }
        _ = try b.ok(["resolve", id, "location", "--keep", "Herat"])
        for runner in [b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        #expect(try a.digest() == b.digest())
        #expect(try a.ok(["list", "--json"]) == b.ok(["list", "--json"]))
        let statusB = try b.status()
        #expect((statusB["vector"] as? [String: Any])?.count == 2)
        // The stick holds only ciphertext.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: stick))
        for phrase in [
            "shaking the bloody hands", "compulsory burqas", "Kremlin spokesman", "W-SECRET-4711", "Kandahar",
        ] {
            #expect(bytes.range(of: Data(phrase.utf8)) == nil, "\(phrase) in the sync file")
        }
        #expect(try a.ok(["verify"]).hasPrefix("ok:"))
    }

    @Test func importPullsOneWayAndLeavesTheFileUntouched() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("stick.sync").path
        _ = try a.ok(["add", "statement", "--title", "from a"])
        _ = try a.ok(["sync", "--create", stick])
        _ = try b.ok(["add", "statement", "--title", "from b"])
        let before = try Data(contentsOf: URL(fileURLWithPath: stick))
        _ = try b.ok(["import", stick])
        #expect(try b.list().count == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: stick)) == before)
        let missing = try b.run(["import", scratch.path("nope.sync").path])
        #expect(missing.status == 66)
    }

    @Test func badInvitationsAndForeignSyncFiles() throws {
        let scratch = try Scratch()
        let (a, _) = try makePair(scratch)
        let invitation = scratch.path("invite2.amanat").path
        _ = try a.ok(["invite", "--out", invitation])
        let c = scratch.runner("c")
        let wrong = try c.run(["join", invitation, "--code", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", "--kdf", "interactive"])
        #expect(wrong.status == 77, "\(wrong.stderr)")
        #expect(!Vault.exists(at: c.vault))
        var data = try Data(contentsOf: URL(fileURLWithPath: invitation))
        data[60] ^= 1
        try data.write(to: scratch.path("bad.amanat"))
        let code = try a.ok(["invite", "--out", scratch.path("invite3.amanat").path])
        let tampered = try c.run(["join", scratch.path("bad.amanat").path, "--code", code, "--kdf", "interactive"])
        #expect(tampered.status == 77 || tampered.status == 65)
        // A sync file of another vault is refused and nothing changes.
        let other = scratch.runner("other")
        try other.initialize()
        _ = try other.ok(["add", "statement", "--title", "other vault"])
        let foreign = scratch.path("foreign.sync").path
        _ = try other.ok(["sync", "--create", foreign])
        let digest = try a.digest()
        let r = try a.run(["sync", "--create", foreign])
        #expect(r.status == 65)
        #expect(r.stderr.contains("another vault"))
        #expect(try a.digest() == digest)
    }

    /// On a terminal the progress line counts up batch by batch; into a pipe nothing but the outcome is written.
    @Test func largeSyncsShowProgressOnATerminal() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        do {
            let vault = try Vault.open(at: a.vault, passphrase: SecureBytes(Array(a.passphrase.utf8)))
            try vault.commitBatch(
                (0..<2500).map { i in
                    (
                        RecordID?.none,
                        [RecordOperation.create(kind: "statement"), .set(field: "title", value: "s\(i)", pred: [])]
                    )
                })
        }
        let stick = scratch.path("stick.sync").path
        let push = try PseudoTerminal.run(a, ["sync", "--create", stick])
        #expect(push.status == 0)
        // 2500 records and a's two membership entries (founding the vault, inviting b), 1000 to a batch: the
        // first batch is always drawn.
        #expect(push.output.contains("pushed 1000 of 2502 ("), "\(push.output)")
        let pull = try b.run(["sync", "--create", stick])
        #expect(pull.status == 0 && pull.stderr.contains("2502 changes pulled"), "\(pull.stderr)")
        #expect(!pull.stderr.contains("Syncing:") && !pull.stderr.contains("\u{1B}"), "\(pull.stderr)")
        #expect(try a.digest() == b.digest())
    }

    /// SIGKILL `amanat sync` at random moments, many times over: everything still opens, verifies and completes.
    @Test func killingSyncAtRandomMomentsLosesNothing() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["AMANAT_KILL_ITERATIONS"] ?? "") ?? 12
        let perIteration = 1500
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        /// Adds `count` records to the vault of `runner`, so each sync has work to be interrupted in.
        func addRecords(_ runner: CLIRunner, _ count: Int, tag: String) throws {
            let vault = try Vault.open(at: runner.vault, passphrase: SecureBytes(Array(runner.passphrase.utf8)))
            try vault.commitBatch(
                (0..<count).map { i in
                    (
                        RecordID?.none,
                        [
                            RecordOperation.create(kind: "statement"),
                            .set(field: "title", value: "\(tag)-\(i)", pred: []),
                        ]
                    )
                })
        }
        let stick = scratch.path("stick.sync")
        var rng = SystemRandomNumberGenerator()
        var killed = 0
        for iteration in 0..<iterations {
            let runner = iteration % 2 == 0 ? a : b
            try addRecords(runner, perIteration, tag: "i\(iteration)")
            let process = Process()
            process.executableURL = CLIRunner.binary
            process.arguments = ["--vault", runner.vault.path, "sync", "--create", stick.path]
            process.environment = ["AMANAT_PASSPHRASE": runner.passphrase, "PATH": "/usr/bin:/bin"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // The passphrase KDF takes the first ~100 ms; most kills land in the sync's reads and writes after it.
            usleep(UInt32.random(in: 60_000...450_000, using: &rng))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed += 1
            }
            process.waitUntilExit()
            // After every kill: both vaults open and verify, the sync file passes SQLite's integrity check.
            for r in [a, b] {
                let verify = try r.run(["verify"])
                #expect(verify.status == 0, "iteration \(iteration): \(verify.stderr)")
            }
            if FileManager.default.fileExists(atPath: stick.path) {
                let vaultID = try Vault.open(at: a.vault, passphrase: SecureBytes(Array(a.passphrase.utf8))).vaultID
                #expect(try SyncFile.open(at: stick, vaultID: vaultID, create: false).passesIntegrityCheck())
            }
        }
        // The next runs complete, and nothing acknowledged is lost: every change of both devices is everywhere.
        for r in [a, b, a] { _ = try r.ok(["sync", "--create", stick.path]) }
        // Every record change, a's two membership entries (founding, inviting b) and b's join.
        let total = iterations * perIteration + 3
        #expect(try a.status()["changes"] as? Int == total)
        #expect(try b.status()["changes"] as? Int == total)
        #expect(try a.digest() == b.digest())
        #expect(killed > 0 || iterations == 0, "no sync was ever interrupted: the test proved nothing")
    }
}
