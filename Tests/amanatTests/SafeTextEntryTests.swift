import Foundation
import Testing

/// Testimony text enters without leaking (issue 12, item 2): `-` is standard input for every text file option,
/// a terminal is asked when no text is given, an empty narrative is refused, and nothing typed is written outside
/// the encrypted vault.
@Suite struct SafeTextEntryTests {
    /// Every file under `root` (recursively) whose bytes contain `phrase`.
    func files(under root: URL, containing phrase: String) -> [String] {
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
        var hits: [String] = []
        for case let url as URL in walker {
            if let data = FileManager.default.contents(atPath: url.path), data.range(of: Data(phrase.utf8)) != nil {
                hits.append(url.path)
            }
        }
        return hits
    }

    func isolated(_ scratch: Scratch) throws -> CLIRunner {
        var cli = scratch.runner()
        for dir in ["tmp", "home"] {
            try FileManager.default.createDirectory(at: scratch.path(dir), withIntermediateDirectories: true)
        }
        cli.environment["TMPDIR"] = scratch.path("tmp").path
        cli.environment["HOME"] = scratch.path("home").path
        try cli.initialize()
        return cli
    }

    @Test func dashReadsStandardInputAndNothingTypedIsWrittenOutsideTheVault() throws {
        let scratch = try Scratch()
        let cli = try isolated(scratch)
        let phrase = "Soldiers-at-the-Pul-e-Charkhi-gate-\(UUID().uuidString)"
        let added = try cli.run(
            ["add", "testimony", "--witness", "W-1", "--narrative-file", "-", "--consent", "share"],
            stdin: "\(phrase)\nSecond line, in Dari: در دروازه\n")
        #expect(added.status == 0, "\(added.stderr)")
        let id = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let record = try #require(try cli.list().first)
        #expect(record["id"] as? String == id)
        #expect((record["fields"] as? [String: String])?["narrative"] == "\(phrase)\nSecond line, in Dari: در دروازه\n")
        #expect(files(under: scratch.url, containing: phrase).isEmpty, "the narrative is only in memory and the vault")
        let mine = try FileManager.default.contentsOfDirectory(atPath: scratch.path("tmp").path)
        #expect(mine.isEmpty, "no temporary file: \(mine)")

        // `--body-file -` too, and `--narrative -` no longer stores a dash.
        let body = try cli.run(["add", "statement", "--title", "T", "--body-file", "-"], stdin: "the body\n")
        #expect(body.status == 0, "\(body.stderr)")
        let dash = try cli.run(["add", "testimony", "--witness", "W-2", "--narrative", "-"], stdin: "typed\n")
        #expect(dash.status == 0, "\(dash.stderr)")
        let narratives = try cli.list().compactMap { ($0["fields"] as? [String: String])?["narrative"] }
        #expect(!narratives.contains("-"))
        #expect(narratives.contains("typed\n"))
        #expect(try cli.list().contains { ($0["fields"] as? [String: String])?["body"] == "the body\n" })

        // `--passphrase-file -` reads the first line only; the rest is the narrative.
        var noEnv = cli
        noEnv.passphrase = ""
        let both = try noEnv.run(
            ["add", "testimony", "--witness", "W-3", "--passphrase-file", "-", "--narrative-file", "-"],
            stdin: "correct horse battery staple\nline after the passphrase\n")
        #expect(both.status == 0, "\(both.stderr)")
        #expect(
            try cli.list().contains {
                ($0["fields"] as? [String: String])?["narrative"] == "line after the passphrase\n"
            })
    }

    @Test func anEmptyNarrativeIsRefusedUnlessAllowedAndTheVaultIsUnchanged() throws {
        let scratch = try Scratch()
        let cli = try isolated(scratch)
        let before = try cli.digest()
        let none = try cli.run(["add", "testimony", "--witness", "W-1"])
        #expect(none.status == 64)
        #expect(none.stderr.contains("--narrative-file") && none.stderr.contains("--allow-empty"), "\(none.stderr)")
        let blank = try cli.run(["add", "testimony", "--witness", "W-1", "--narrative-file", "-"], stdin: "  \n\n")
        #expect(blank.status == 64 && blank.stderr.contains("empty"), "\(blank.stderr)")
        #expect(try cli.digest() == before, "a refused add leaves the vault as it was")
        let allowed = try cli.run(["add", "testimony", "--witness", "W-1", "--allow-empty"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        // Text on the command line still works but is warned about.
        let warned = try cli.run(["add", "testimony", "--witness", "W-2", "--narrative", "short"])
        #expect(warned.status == 0 && warned.stderr.contains("shell's history"), "\(warned.stderr)")
    }

    @Test func atATerminalTheNarrativeIsTypedUntilEndOfInput() throws {
        let script = URL(fileURLWithPath: "/usr/bin/script")
        try #require(FileManager.default.isExecutableFile(atPath: script.path), "util-linux script gives a terminal")
        let scratch = try Scratch()
        let cli = try isolated(scratch)
        let phrase = "typed-at-the-terminal-\(UUID().uuidString)"
        let command = [CLIRunner.binary.path, "--vault", cli.vault.path, "add", "testimony", "--witness", "W-9"]
            .map { "'" + $0 + "'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = script
        process.arguments = ["-q", "-e", "-c", command, "/dev/null"]
        var env = ProcessInfo.processInfo.environment
        env["AMANAT_PASSPHRASE"] = cli.passphrase
        env["TMPDIR"] = scratch.path("tmp").path
        env["HOME"] = scratch.path("home").path
        process.environment = env
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Wait for the prompt (with a deadline) before typing, as a person would.
        let deadline = Date().addingTimeInterval(60)
        var seen = Data()
        while Date() < deadline, String(decoding: seen, as: UTF8.self).range(of: "Ctrl-D") == nil {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += chunk
        }
        try input.fileHandleForWriting.write(contentsOf: Data("\(phrase)\n\u{4}".utf8))
        seen += output.fileHandleForReading.readDataToEndOfFile()
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: seen, as: UTF8.self))")
        let narrative = try #require(try cli.list().first?["fields"] as? [String: String])["narrative"]
        #expect(narrative == "\(phrase)\n")
        #expect(files(under: scratch.url, containing: phrase).isEmpty)
    }
}
