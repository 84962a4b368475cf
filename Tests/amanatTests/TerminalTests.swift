import AmanatTestSupport
import Foundation
import Testing

/// What a person at a terminal sees (issue 13, items 1, 4 and 7), through a pseudo-terminal: progress drawn in
/// place on standard error and only there, relay retries and lock waits said, the confirmation prompt for a new
/// sync file, and `amanat shell`.
@Suite struct TerminalTests {
    func vaultWithRecords(_ scratch: Scratch, count: Int = 3) throws -> CLIRunner {
        let cli = scratch.runner()
        try cli.initialize()
        for n in 0..<count { _ = try cli.ok(["add", "statement", "--title", "Statement \(n)", "--body", "text \(n)"]) }
        return cli
    }

    @Test func syncDrawsProgressOnATerminalAndNeverIntoAPipe() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch)
        let file = scratch.path("team.amanat-sync").path
        let shown = try PseudoTerminal.run(cli, ["sync", "--create", file])
        #expect(shown.status == 0, "\(shown.output)")
        // The progress line counts changes and bytes, is redrawn in place (\r, erase line), and is cleared before
        // the summary.
        #expect(
            shown.output.contains("\r\u{1B}[KSyncing: pulled 0 of 0 changes (0 B), pushed 4 of 4 ("), "\(shown.output)")
        #expect(shown.output.contains(" kB)…") || shown.output.contains(" B)…"))
        #expect(shown.output.contains("\r\u{1B}[KSynced with"), "\(shown.output)")

        // The next sync with standard error to a pipe: the outcome, no progress, no terminal codes.
        _ = try cli.ok(["add", "statement", "--title", "Later", "--body", "x"])
        let piped = try PseudoTerminal.run(cli, ["sync", file], stderrToPipe: true)
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stderr.contains("Synced with") && piped.stderr.contains("1 pushed"), "\(piped.stderr)")
        #expect(!piped.stderr.contains("Syncing:") && !piped.stderr.contains("\u{1B}"), "\(piped.stderr)")
    }

    @Test func exportDrawsProgressOnATerminal() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch)
        let recipient = try cli.ok(["identity"]).split(separator: "\n").first { $0.contains("age1") }
            .flatMap { $0.split(separator: " ").first { $0.hasPrefix("age1") } }.map(String.init)
        let out = scratch.path("evidence.age").path
        let r = try PseudoTerminal.run(cli, ["export", "--out", out, "--recipient", try #require(recipient)])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("\u{1B}[KGathering 3 records and their custody…"), "\(r.output)")
        #expect(r.output.contains("\u{1B}[KEncrypting the bundle: "), "\(r.output)")
        #expect(r.output.contains("Exported 3 records"))
    }

    @Test func anUnreachableRelayIsRetriedAloud() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 1)
        // A port nothing listens on: bind one, note it, close it.
        let port = try freePort()
        let r = try PseudoTerminal.run(cli, ["sync", "http://127.0.0.1:\(port)"])
        #expect(r.status == 69, "\(r.output)")
        #expect(r.output.contains("Relay not answering ("), "\(r.output)")
        #expect(r.output.contains("retrying in 0.25 s…") && r.output.contains("retrying in 2 s…"), "\(r.output)")
        #expect(r.output.contains("amanat: The relay at http://127.0.0.1:\(port) cannot be reached"))
    }

    @Test func aCommandWaitingForTheVaultSaysWhoHoldsIt() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 1)
        let id = try #require(try cli.list().first?["id"] as? String)
        // Another process holds the vault's write lock for two seconds (Python's sqlite3, as any SQLite program).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(2.5); c.execute('COMMIT')",
            cli.vault.appendingPathComponent("vault.sqlite").path,
        ]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        let ready = out.fileHandleForReading.availableData
        #expect(String(decoding: ready, as: UTF8.self).contains("locked"))
        let r = try PseudoTerminal.run(cli, ["tag", id, "--add", "checked"])
        holder.waitUntilExit()
        #expect(r.status == 0, "\(r.output)")
        #expect(
            r.output.contains(
                "Waiting for another process (pid \(holder.processIdentifier), python3) to finish with the vault…"),
            "\(r.output)")
        #expect(try cli.list().first?["tags"] as? [String] == ["checked"])
    }

    @Test func aNewSyncFileIsCreatedAfterAYesAtTheTerminal() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 1)
        let file = scratch.path("new.amanat-sync").path
        let no = try PseudoTerminal.run(cli, ["sync", file], steps: [.init(after: "[y/N]", send: "n\r")])
        #expect(no.status == 66 && !FileManager.default.fileExists(atPath: file), "\(no.output)")
        let yes = try PseudoTerminal.run(cli, ["sync", file], steps: [.init(after: "[y/N]", send: "y\r")])
        #expect(yes.status == 0, "\(yes.output)")
        #expect(yes.output.contains("Created the sync file \(file)"))
        #expect(FileManager.default.fileExists(atPath: file))
    }

    @Test func theShellUnlocksOnceRecallsHistoryAndLocksOnCtrlD() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 2)
        // A fresh prompt: at the start of a line, drawn once the previous command is done (the terminal is then in
        // the line editor's raw mode, so what is typed next is not echoed by the terminal itself).
        let prompt = "\n\r\u{1B}[Kamanat> "
        let r = try PseudoTerminal.run(
            cli, ["shell", "--idle", "30s"],
            steps: [
                .init(after: prompt, send: "list --sort id\r"),
                .init(after: prompt, send: "sohw\r"),
                .init(after: prompt, send: "\u{1B}[A\u{1B}[A\r"),  // up twice: `list --sort id` again
                .init(after: prompt, send: "add statement --title 'Typed in the shell' --body x\r"),
                .init(after: prompt, send: "history\r"),
                .init(after: prompt, send: "\u{4}"),
            ])
        // The session's status is its last failed command's: `sohw` (64).
        #expect(r.status == 64, "\(r.output)")
        #expect(r.output.components(separatedBy: "Statement 1").count == 3, "list ran twice: \(r.output)")
        #expect(
            r.output.contains("1  list --sort id\r\n2  sohw\r\n3  list --sort id\r\n4  add statement"), "\(r.output)")
        #expect(r.output.contains("did you mean `amanat show`?"))
        #expect(r.output.contains("Locked: the keys are wiped from memory."))
        // The record typed in the shell is in the vault; the history was never written anywhere in it.
        #expect(try cli.list().contains { ($0["fields"] as? [String: String])?["title"] == "Typed in the shell" })
        let files = try FileManager.default.subpathsOfDirectory(atPath: cli.vault.path)
        for file in files {
            let data = FileManager.default.contents(atPath: cli.vault.appendingPathComponent(file).path) ?? Data()
            #expect(data.range(of: Data("list --sort id".utf8)) == nil, "\(file) holds the shell's history")
        }
    }

    @Test func theShellReadsAScriptFromAPipe() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 1)
        let backup = scratch.path("laptop.backup").path
        let script = """
            # a comment line is skipped
            add statement --title "From a script" --body x
            backup --out \(backup)
            list --sort id
            """
        let r = try cli.run(["shell"], stdin: script + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("amanat>"), "no prompt without a terminal: \(r.stderr)")
        #expect(r.stdout.contains("From a script") && r.stdout.contains("Statement 0"), "\(r.stdout)")
        // `backup` used the passphrase that unlocked the session (the environment's was removed once read).
        #expect(FileManager.default.fileExists(atPath: backup), "\(r.stderr)")
        let failing = try cli.run(["shell"], stdin: "lsit\nlist\n")
        #expect(failing.status == 64 && failing.stderr.contains("did you mean `amanat list`?"), "\(failing.stderr)")
    }

    @Test func theShellLocksItselfWhenIdle() throws {
        let scratch = try Scratch()
        let cli = try vaultWithRecords(scratch, count: 1)
        let start = ContinuousClock.now
        let r = try PseudoTerminal.run(cli, ["shell", "--idle", "1s"], deadline: .seconds(30))
        #expect(r.status == 0)
        #expect(r.output.contains("Locked after 1 second without a command"), "\(r.output)")
        #expect(ContinuousClock.now - start < .seconds(30))
    }
}

/// A loopback port nothing listens on (bound, then closed).
func freePort() throws -> Int {
    guard let (fd, port) = loopbackSocket(listening: false) else {
        throw PseudoTerminal.Failure(description: "cannot bind a loopback port")
    }
    close(fd)
    return port
}
