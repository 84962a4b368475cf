import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 10, as an attacker or a careless user would meet it with the real binary: data that tries to drive the
/// terminal, secrets left in core files and the environment, weak passphrases.
@Suite struct HostileTerminalAndSecretsTests {
    /// A value that, printed raw, sets the window title, clears the screen, returns to the start of the line and
    /// draws a green "verify: ok", then reverses the rest of the line (U+202E) and hides a zero width space.
    static let hostile =
        "Kabul\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}[H\r\u{1B}[32mverify: ok\u{1B}[0m\u{9B}31m\u{202E}kcatta\u{2066}x\u{2069}\u{200B}\u{7F}"
    /// Dari with a zero width non-joiner (U+200C) and Pashto: must print exactly as written.
    static let dari = "گزارش‌های شاهدان از بازداشت در هرات"
    static let pashto = "د شاهد کیسه په کندهار کې"

    /// Bytes no human output may contain when it shows hostile data.
    static func controls(in text: String) -> [String] {
        text.unicodeScalars.filter { s in
            (s.value < 0x20 && s != "\n") || (0x7F...0x9F).contains(s.value) || (0x202A...0x202E).contains(s.value)
                || (0x2066...0x2069).contains(s.value) || s.value == 0x200B
        }.map { String(format: "U+%04X", $0.value) }
    }

    @Test func dataCannotDriveTheTerminalButRightToLeftTextPrintsIntact() throws {
        let scratch = try Scratch()
        // The attacker is a member: writes hostile values, and the victim receives them through a sync file.
        let attacker = scratch.runner("attacker")
        try attacker.initialize(name: "evil\u{1B}[2J\u{202E}laptop")
        let invitation = scratch.path("invite.amanat").path
        let code = try attacker.ok(["invite", "--out", invitation])
        let victim = scratch.runner("victim")
        _ = try victim.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "victim"])
        let multiLine = "first line\r\n\u{1B}[32mverify: ok\u{1B}[0m\nthird\u{2028}fourth"
        let id = try attacker.ok([
            "add", "testimony", "--witness", "W-\u{1B}[31m017", "--narrative", multiLine, "--location", Self.hostile,
        ])
        _ = try attacker.ok(["edit", id, "--set", "location=\(Self.dari)"])
        let statement = try attacker.ok([
            "add", "statement", "--title", Self.pashto + " \u{1B}[2J", "--body", Self.dari, "--tag", "evidence",
        ])
        let stick = scratch.path("stick.amanat-sync").path
        _ = try attacker.ok(["sync", "--create", stick])
        _ = try victim.ok(["sync", "--create", stick])
        // A concurrent edit, so that `show` prints the conflicting values too.
        _ = try victim.ok(["edit", id, "--set", "location=\(Self.hostile)"])
        _ = try attacker.ok(["edit", id, "--set", "location=\(Self.hostile)!"])
        _ = try attacker.ok(["sync", "--create", stick])
        _ = try victim.ok(["sync", "--create", stick])

        var outputs: [(String, CLIRunner.Result)] = []
        for args in [["show", id], ["show", statement], ["list"], ["history", id], ["search", "verify"]] {
            outputs.append((args.joined(separator: " "), try victim.run(args)))
        }
        for (name, result) in outputs {
            #expect(result.status == 0, "\(name): \(result.stderr)")
            #expect(Self.controls(in: result.stdout).isEmpty, "\(name) printed \(Self.controls(in: result.stdout))")
            #expect(Self.controls(in: result.stderr).isEmpty, "\(name) wrote \(Self.controls(in: result.stderr))")
        }
        let show = outputs[0].1.stdout
        #expect(show.contains(#"\u{1B}[32mverify: ok"#), "the escape is shown, not obeyed: \(show)")
        #expect(show.contains(#"\u{202E}kcatta"#))
        // A multi-line value prints one indented line per line: data never starts a line of its own.
        #expect(
            show.contains("\n    first line\n    \\u{1B}[32mverify: ok\\u{1B}[0m\n    third\\u{2028}fourth"), "\(show)")
        #expect(!show.split(separator: "\n").contains { $0.hasPrefix("verify") || $0.hasPrefix("\\u{1B}") })
        #expect(outputs[1].1.stdout.contains(Self.dari), "Dari (with its ZWNJ) prints byte-exact")
        #expect(outputs[2].1.stdout.contains(Self.pashto), "Pashto prints byte-exact")
        #expect(outputs[3].1.stdout.contains(Self.dari))

        // The device name of another member, as `status` of that device shows it.
        let status = try attacker.run(["status"])
        #expect(Self.controls(in: status.stdout).isEmpty && status.stdout.contains(#"evil\u{1B}[2J\u{202E}laptop"#))
        let identity = try attacker.run(["identity"])
        #expect(Self.controls(in: identity.stdout).isEmpty)

        // JSON keeps every value exact.
        let record = try #require(
            try victim.list().first { $0["id"] as? String == id })
        let fields = try #require(record["fields"] as? [String: String])
        #expect(fields["narrative"] == multiLine)
        #expect(fields["witness"] == "W-\u{1B}[31m017")
        let conflicts = try #require(record["conflicts"] as? [String: [String]])
        #expect(Set([fields["location"] ?? ""] + (conflicts["location"] ?? [])) == [Self.hostile, Self.hostile + "!"])
        let shown = try JSONSerialization.jsonObject(with: Data(try victim.ok(["show", statement, "--json"]).utf8))
        #expect(
            (shown as? [String: Any])?["fields"] as? [String: String] == [
                "title": Self.pashto + " \u{1B}[2J", "body": Self.dari,
            ])

        // An evidence bundle of the hostile record: `bundle verify` shows the custody chain escaped.
        var exporter = attacker
        exporter.environment["AMANAT_BUNDLE_PASSPHRASE"] = "bundle secret phrase"
        let bundle = scratch.path("evidence.age").path
        _ = try exporter.ok(["export", "--out", bundle, "--passphrase", "--id", id, "--include-restricted"])
        let verified = try exporter.run(["bundle", "verify", bundle, "--passphrase"], withVault: false)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains(#"\u{1B}[32mverify: ok"#), "\(verified.stdout)")
        #expect(
            Self.controls(in: verified.stdout).isEmpty, "bundle verify printed \(Self.controls(in: verified.stdout))")
    }

    // MARK: Secrets in core files and the environment

    /// A TCP port on loopback that accepts connections into its backlog but never answers: a sync to it waits.
    final class SilentListener {
        let descriptor: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, listen(fd, 16) == 0 else {
                close(fd)
                throw CLIFailure(description: "cannot listen")
            }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            descriptor = fd
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        /// Waits up to `seconds` for a client to connect (the backlog becomes readable).
        func waitForClient(seconds: Int32) -> Bool {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, seconds * 1000) == 1
        }

        deinit { close(descriptor) }
    }

    /// Starts `amanat --vault VAULT args…` with `environment`, as the unprivileged user nobody (65534) when this test
    /// runs as root (so that /proc shows whether the process is dumpable), else as the current user.
    func start(_ args: [String], environment: [String: String], asNobody: Bool) throws -> Process {
        let process = Process()
        if asNobody {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups"] + args
        } else {
            process.executableURL = URL(fileURLWithPath: args[0])
            process.arguments = Array(args.dropFirst())
        }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// The owner of a file under /proc/PID: the process's user if it is dumpable, root if it is not (proc(5)).
    func procOwner(_ pid: Int32, _ name: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: "/proc/\(pid)/\(name)")[.ownerAccountID] as? Int
    }

    @Test func theRunningProgramKeepsNoPassphraseInItsEnvironmentAndIsNotDumpable() throws {
        let scratch = try Scratch()
        let asNobody = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
        // A vault that user nobody can use, in a folder it may write.
        let home = scratch.path("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        chmod(home.path, 0o777)
        let vault = home.appendingPathComponent("vault").path
        let passphrase = "correct horse battery staple"
        let environment = [
            "AMANAT_PASSPHRASE": passphrase, "AMANAT_SAFETY_MARKER": "still-here", "PATH": "/usr/bin:/bin",
            "HOME": home.path,
        ]
        let initialize = try start(
            [CLIRunner.binary.path, "--vault", vault, "init", "--kdf", "interactive"], environment: environment,
            asNobody: asNobody)
        initialize.waitUntilExit()
        try #require(initialize.terminationStatus == 0)

        // A sync to a relay that never answers: the process has read the passphrase and waits.
        let listener = try SilentListener()
        let process = try start(
            [CLIRunner.binary.path, "--vault", vault, "sync", "http://127.0.0.1:\(listener.port)"],
            environment: environment, asNobody: asNobody)
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try #require(listener.waitForClient(seconds: 30), "amanat sync never connected to the relay")
        let pid = process.processIdentifier

        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
        #expect(environ.range(of: Data("AMANAT_SAFETY_MARKER=still-here".utf8)) != nil, "the environment was read")
        #expect(environ.range(of: Data(passphrase.utf8)) == nil, "the passphrase is still in /proc/PID/environ")
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") } ?? ""
        let values = core.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2)
        #expect(values == ["0", "0"], "\(core)")

        if asNobody {
            // Not dumpable: the kernel gives its /proc files to root, although it runs as nobody. A control process
            // of the same user keeps them.
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            #expect(status.contains("Uid:\t65534\t65534"))
            #expect(try procOwner(pid, "environ") == 0, "amanat is dumpable")
            let control = try start(["/bin/sleep", "30"], environment: environment, asNobody: true)
            defer {
                kill(control.processIdentifier, SIGKILL)
                control.waitUntilExit()
            }
            var owner: Int?
            for _ in 0..<50 where owner != 65534 {
                usleep(20_000)
                owner = try? procOwner(control.processIdentifier, "environ")
            }
            #expect(owner == 65534, "the control process is not owned by its user: the check proves nothing")
        }
    }

    // MARK: Relay registration

    @Test func aRelayWithACodeFileRegistersOnlyVaultsThatPresentTheCode() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize()
        let codeFile = scratch.path("relay-code")
        let relay = try ServeProcess(data: scratch.path("relay"), extra: ["--registration-code-file", codeFile.path])
        let code = try String(contentsOf: codeFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(code.count == 29 && code.split(separator: "-").count == 6, "\(code)")
        let mode = try FileManager.default.attributesOfItem(atPath: codeFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let refused = try a.run(["sync", "--create", relay.url])
        #expect(refused.status == 77)
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("needs a registration code") && refused.stderr.contains("--registration-code"))
        let wrong = try a.run(["sync", "--create", relay.url, "--registration-code", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"])
        #expect(wrong.status == 77 && wrong.stderr.contains("refused the registration code"), "\(wrong.stderr)")
        var withCode = a
        withCode.environment["AMANAT_REGISTRATION_CODE"] = code.lowercased()
        let accepted = try withCode.run(["sync", "--create", relay.url])
        #expect(accepted.status == 0, "\(accepted.stderr)")
        #expect(try a.run(["sync", "--create", relay.url]).status == 0, "a registered vault needs no code")
        let (status, log) = relay.stop()
        #expect(status == 0)
        #expect(log.contains("New registration code written to \(codeFile.path)"), "\(log)")
        #expect(!log.contains(code) && !log.contains(code.lowercased()), "the relay's log holds its registration code")

        // Restarted with the same file: the code is kept and not printed again.
        let again = try ServeProcess(data: scratch.path("relay"), extra: ["--registration-code-file", codeFile.path])
        let b = scratch.runner("b")
        try b.initialize()
        #expect(try b.run(["sync", "--create", again.url]).status == 77)
        #expect(try b.run(["sync", "--create", again.url, "--registration-code", code]).status == 0)
        let (_, log2) = again.stop()
        #expect(!log2.contains(code))
        #expect(try String(contentsOf: codeFile, encoding: .utf8) == code + "\n")
    }

    // MARK: Passphrases

    @Test func shortPassphrasesAreRefusedUnlessAllowed() throws {
        let scratch = try Scratch()
        var weak = scratch.runner("weak")
        weak.passphrase = "a"
        let refused = try weak.run(["init", "--kdf", "interactive"])
        #expect(refused.status == 64)
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("at least 12") && refused.stderr.contains("--allow-weak-passphrase"))
        #expect(!FileManager.default.fileExists(atPath: weak.vault.appendingPathComponent("keyring").path))
        #expect(try weak.run(["list"]).status == 66, "no vault was created")

        // 11 characters (of them, multi-byte letters count once) is still too short; 12 is enough.
        weak.passphrase = "گزارش‌هایشا"
        #expect(weak.passphrase.unicodeScalars.count == 11)
        #expect(try weak.run(["init", "--kdf", "interactive"]).status == 64)
        weak.passphrase = "twelve chars"
        #expect(try weak.run(["init", "--kdf", "interactive"]).status == 0)

        var allowed = scratch.runner("allowed")
        allowed.passphrase = "a"
        let accepted = try allowed.run(["init", "--kdf", "interactive", "--allow-weak-passphrase"])
        #expect(accepted.status == 0, "\(accepted.stderr)")

        // join: the same rule for the new device's passphrase.
        let invitation = scratch.path("invite.amanat").path
        let code = try allowed.ok(["invite", "--out", invitation])
        var joiner = scratch.runner("joiner")
        joiner.passphrase = "short"
        let join = try joiner.run(["join", invitation, "--code", code, "--kdf", "interactive"])
        #expect(join.status == 64 && join.stderr.contains("at least 12"), "\(join.stderr)")
        let joined = try joiner.run([
            "join", invitation, "--code", code, "--kdf", "interactive", "--allow-weak-passphrase",
        ])
        #expect(joined.status == 0, "\(joined.stderr)")
    }

    @Test func generatedPassphrasesAreSixRandomWordsThatInitAccepts() throws {
        let scratch = try Scratch()
        let runner = scratch.runner()
        let first = try runner.ok(["init", "--generate-passphrase"])
        let second = try runner.ok(["init", "--generate-passphrase"])
        #expect(first != second)
        for phrase in [first, second] {
            let words = phrase.split(separator: " ")
            #expect(words.count == 6, "\(phrase)")
            #expect(words.allSatisfy { $0.allSatisfy { $0.isLetter || $0 == "-" } && $0 == $0.lowercased() })
        }
        #expect(!FileManager.default.fileExists(atPath: runner.vault.path), "--generate-passphrase creates nothing")
        var user = runner
        user.passphrase = first
        #expect(try user.run(["init", "--kdf", "interactive"]).status == 0)
        #expect(try user.run(["list"]).status == 0)
        let help = try runner.run(["init", "--help"], withVault: false)
        #expect(help.stdout.contains("77 bits"))
    }
}
