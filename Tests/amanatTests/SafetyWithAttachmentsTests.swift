import Foundation
import Testing

/// Field safety and attachments together, as an attack review found them wanting: a wipe, a duress passphrase and
/// the unlock limit destroy attachment chunks too; a backup says it leaves them out; an open shell locks when the
/// keyring changes behind its back; a chunk folder that is a symbolic link is never written through.
@Suite struct SafetyWithAttachmentsTests {
    /// A vault with one record and a 3 MiB attachment (three chunks); returns the runner and the record id.
    func vaultWithMedia(_ scratch: Scratch, _ name: String = "vault") throws -> (CLIRunner, String) {
        let cli = scratch.runner(name)
        try cli.initialize()
        let id = try cli.ok(["add", "statement", "--title", "With media", "--body", "x"])
        let media = scratch.path("\(name)-media.bin")
        // Three different 1 MiB chunks (equal chunks would be stored once).
        try Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 20) ^ ($0 >> 9)) }).write(
            to: media)
        _ = try cli.ok(["attach", id, media.path])
        #expect(FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent("chunks").path))
        return (cli, id)
    }

    @Test func wipeDestroysTheChunksAndSaysSo() throws {
        let scratch = try Scratch()
        let (cli, _) = try vaultWithMedia(scratch)
        let r = try cli.run(["wipe", "--yes"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("destroyed: chunks/: 3 attachment chunk files"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.vault.path), "the vault folder is gone")
    }

    @Test func theDuressPassphraseDestroysTheChunksToo() throws {
        let scratch = try Scratch()
        let (cli, _) = try vaultWithMedia(scratch)
        var withDuress = cli
        withDuress.environment["AMANAT_DURESS_PASSPHRASE"] = "a different duress passphrase"
        let set = try withDuress.run(["duress", "set"])
        #expect(set.status == 0, "\(set.stderr)")
        var forced = cli
        forced.passphrase = "a different duress passphrase"
        let r = try forced.run(["list"])
        #expect(r.status == 77, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.vault.appendingPathComponent("chunks").path))
    }

    @Test func aBackupSaysItLeavesTheMediaOut() throws {
        let scratch = try Scratch()
        let (cli, _) = try vaultWithMedia(scratch)
        let r = try cli.run(["backup", "--out", scratch.path("laptop.backup").path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("not the 1 attached file"), "\(r.stderr)")
    }

    @Test func anOpenShellLocksWhenTheKeyringChangesBehindIt() throws {
        let scratch = try Scratch()
        let (cli, _) = try vaultWithMedia(scratch)
        // The session runs `list`, then another process wipes the vault, then the session is asked for more.
        let fifo = scratch.path("commands").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let process = Process()
        process.executableURL = CLIRunner.binary
        process.arguments = ["--vault", cli.vault.path, "shell"]
        process.environment = cli.processEnvironment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        process.standardInput = FileHandle(forUpdatingAtPath: fifo)
        try process.run()
        let writer = try #require(FileHandle(forWritingAtPath: fifo))
        try writer.write(contentsOf: Data("list\n".utf8))
        Thread.sleep(forTimeInterval: 2)
        let wiped = try cli.run(["wipe", "--yes"])
        #expect(wiped.status == 0)
        try writer.write(contentsOf: Data("add statement --title After --body x\n".utf8))
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { process.terminate() }
        try? writer.close()
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 75, "\(stderr)")
        #expect(stderr.contains("keyring changed outside this session"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.vault.path), "nothing was written after the wipe")
    }

    @Test func aSymlinkedChunkFolderOnAStickIsNeverWrittenThrough() throws {
        let scratch = try Scratch()
        let (cli, _) = try vaultWithMedia(scratch)
        let stick = scratch.path("team.amanat-sync").path
        _ = try cli.ok(["sync", "--create", "--no-attachments", stick])
        let outside = scratch.path("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: stick + ".chunks", withDestinationPath: outside.path)
        let r = try cli.run(["sync", stick])
        #expect(r.status != 0, "\(r.stderr)")
        #expect(r.stderr.contains("symbolic link or not a folder"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty, "nothing written outside")
    }
}
