import Foundation
import Testing

/// One error style, "did you mean", help that wraps at any width, and the help topics (issue 13, items 2 and 3).
@Suite struct CommandLineStyleTests {
    /// Every command path, read from the help itself (SUBCOMMANDS sections), so a new command is covered too.
    func commandPaths(_ cli: CLIRunner) throws -> [[String]] {
        var paths: [[String]] = [[]]
        var queue: [[String]] = [[]]
        while let path = queue.popLast() {
            let help = try cli.run(path + ["--help"], withVault: false).stdout
            guard let section = help.components(separatedBy: "SUBCOMMANDS:\n").dropFirst().first else { continue }
            for line in section.split(separator: "\n") where line.hasPrefix("  ") && !line.hasPrefix("   ") {
                guard let name = line.split(separator: " ").first.map(String.init), name != "See", name != "help"
                else { continue }
                paths.append(path + [name])
                queue.append(path + [name])
            }
        }
        return paths
    }

    @Test func helpHasNoLineBrokenInsideASentenceAt60And80And120Columns() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        let paths = try commandPaths(cli)
        #expect(paths.count > 30, "\(paths)")
        for width in [60, 80, 120] {
            cli.environment["COLUMNS"] = String(width)
            for path in paths {
                let help = try cli.run(path + ["--help"], withVault: false)
                #expect(help.status == 0)
                #expect(help.stdout.contains("Example:"), "amanat \(path.joined(separator: " ")) has no example")
                // The prose: from OVERVIEW to USAGE. A line that stops short although the next word would have fit
                // was broken by hand, inside a paragraph (the parser breaks a line before the column it fills, hence >=); an
                // example line must not spill onto column 0.
                let prose = help.stdout.components(separatedBy: "\nUSAGE:")[0].split(
                    separator: "\n", omittingEmptySubsequences: false
                ).map(String.init)
                for (line, next) in zip(prose, prose.dropFirst()) where !line.isEmpty && !next.isEmpty {
                    let where_ = "amanat \(path.joined(separator: " ")) at \(width) columns:\n\(line)\n\(next)"
                    #expect(
                        line.count <= width || !line.trimmingCharacters(in: .whitespaces).contains(" "), "\(where_)")
                    if line.hasPrefix(" ") {
                        #expect(next.hasPrefix(" "), "an example runs onto column 0 in \(where_)")
                    } else if !next.hasPrefix(" ") {
                        let word = next.split(separator: " ").first.map(String.init) ?? next
                        #expect(line.count + 1 + word.count >= width, "a hard line break in \(where_)")
                    }
                }
            }
        }
    }

    @Test func parserErrorsAreOneAmanatSentenceWithDidYouMean() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        let cases: [([String], String)] = [
            (["lsit"], "did you mean `amanat list`?"),
            (["add", "testimoney", "--witness", "W-1"], "'testimoney' is not a kind of record"),
            (["add", "testimoney", "--witness", "W-1"], "did you mean `amanat add testimony`?"),
            (["list", "--tgs", "x"], "Unknown option '--tgs'; did you mean --tag?"),
            (["bundle", "verfy", "x.age"], "did you mean `amanat bundle verify`?"),
            (["show"], "Missing expected argument '<id>'. See `amanat show --help`."),
            (["--vault", "/nonexistent", "sycn", "x"], "did you mean `amanat sync`?"),
            (["help", "exit-stauts"], "did you mean `amanat help exit-status`?"),
        ]
        for (args, expected) in cases {
            let r = try cli.run(args, withVault: false)
            #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args): \(r.stdout)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("amanat: ") && !r.stderr.contains("Error:"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        // Far from every command: no suggestion, still one sentence and the next step.
        let far = try cli.run(["zzzzzzzz"], withVault: false)
        #expect(far.status == 64 && !far.stderr.contains("did you mean") && far.stderr.contains("`amanat --help`"))
    }

    @Test func helpTopicsListEveryExitStatusAndEnvironmentVariable() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        let topic = try cli.run(["help", "exit-status"], withVault: false)
        #expect(topic.status == 0)
        let statuses = topic.stdout.split(separator: "\n").compactMap { line -> Int? in
            let words = line.split(separator: " ")
            return line.hasPrefix("  ") && !line.hasPrefix("   ") ? words.first.flatMap { Int($0) } : nil
        }
        #expect(statuses == [0, 1, 2, 3, 64, 65, 66, 67, 69, 73, 74, 75, 77], "\(topic.stdout)")
        // README.md's table says the same statuses.
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let table = readme.split(separator: "\n").compactMap { line -> Int? in
            guard line.hasPrefix("| ") else { return nil }
            return Int(line.dropFirst(2).prefix { $0 != " " })
        }
        #expect(table == statuses, "README.md's table: \(table)")
        var narrow = cli
        narrow.environment["COLUMNS"] = "60"
        for topic in ["exit-status", "environment"] {
            let text = try narrow.run(["help", topic], withVault: false).stdout
            for line in text.split(separator: "\n") where line.count > 60 {
                #expect(!line.trimmingCharacters(in: .whitespaces).contains(" "), "help \(topic) at 60: \(line)")
            }
        }
        let env = try cli.run(["help", "environment"], withVault: false)
        // Every AMANAT_ variable the sources read is explained.
        let sources = repositoryRoot.appendingPathComponent("Sources")
        var read = Set<String>()
        for case let file as URL in FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for part in text.components(separatedBy: "\"AMANAT_").dropFirst() {
                read.insert("AMANAT_" + part.prefix { $0.isUppercase || $0 == "_" })
            }
        }
        #expect(read.count >= 8)
        for name in read { #expect(env.stdout.contains(name), "\(name) is not in `amanat help environment`") }
    }

    @Test func aMistypedInvitationCodeIsAUsageErrorThatSaysWhy() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator")
        // Codes are random; make invitations until one has an O or a B, which a person may copy as 0 or 8.
        var invitation = ""
        var code = ""
        for attempt in 0..<20 where !(code.contains("O") || code.contains("B")) {
            invitation = scratch.path("invite-\(attempt).amanat").path
            code = try a.ok(["invite", "--out", invitation]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(code.contains("O") || code.contains("B"))
        let b = scratch.runner("b")
        let one = try b.run(["join", invitation, "--code", code.replacingOccurrences(of: "-", with: "1")])
        #expect(one.status == 64, "\(one.stderr)")
        #expect(one.stderr.contains("'1' (a 1 is probably an I or an L)"), "\(one.stderr)")
        let short = try b.run(["join", invitation, "--code", String(code.dropLast())])
        #expect(short.status == 64 && short.stderr.contains("it has 23 letters and digits, and a code has 24"))
        #expect(!FileManager.default.fileExists(atPath: b.vault.path))
        // The lookalike digits are read for their letters, and the code opens the invitation.
        let copied = code.replacingOccurrences(of: "O", with: "0").replacingOccurrences(of: "B", with: "8")
        let joined = try b.run([
            "join", invitation, "--code", copied.lowercased(), "--kdf", "interactive", "--device-name", "field",
        ])
        #expect(joined.status == 0, "\(joined.stderr)")
    }
}

/// Shell completions and the man page come from the same definitions as the help (`make install` installs them).
@Suite struct CompletionAndManualTests {
    @Test func completionScriptsKnowEveryCommand() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        let paths = try CommandLineStyleTests().commandPaths(cli).filter { $0.count == 1 }.map { $0[0] }
        #expect(paths.contains("sync") && paths.contains("backup"))
        for shell in ["bash", "zsh", "fish"] {
            let script = try cli.run(["--generate-completion-script", shell], withVault: false)
            #expect(script.status == 0, "\(shell): \(script.stderr)")
            for command in paths { #expect(script.stdout.contains(command), "\(shell) completion lacks \(command)") }
            #expect(script.stdout.contains("passphrase-file"), "\(shell) completion lacks --passphrase-file")
        }
    }

    /// `make test` generates the man page first (`make man`); it documents every command and the help topics.
    @Test func theManPageDocumentsEveryCommand() throws {
        let page = repositoryRoot.appendingPathComponent(".build/plugins/GenerateManual/outputs/amanat/amanat.1")
        let text = try #require(
            try? String(contentsOf: page, encoding: .utf8),
            "no man page at \(page.path): run `make man` (make test does)")
        let scratch = try Scratch()
        let paths = try CommandLineStyleTests().commandPaths(scratch.runner()).filter { $0.count == 1 }
        #expect(text.hasPrefix(".\\\""), "not a troff page")
        for path in paths { #expect(text.contains(".It Em \(path[0])"), "the man page lacks \(path[0])") }
        #expect(text.contains("help exit-status"))
        // The EXIT STATUS and ENVIRONMENT sections are amanat's own tables (Scripts/man-sections.py), not the
        // generic "exits 0 on success".
        #expect(!text.contains(".Ex -std"))
        for status in [0, 1, 2, 3, 64, 65, 66, 67, 69, 73, 74, 75, 77] { #expect(text.contains("\n.It \(status)\n")) }
        #expect(text.contains(".It Ev AMANAT_PASSPHRASE") && text.contains(".It Ev AMANAT_VAULT"))
    }
}
