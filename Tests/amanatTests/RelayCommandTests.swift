import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `amanat serve` running as its own process, as a hub laptop would run it.
final class ServeProcess: @unchecked Sendable {
    // @unchecked Sendable: `output` is guarded by `lock`; the rest is set in init.
    let process = Process()
    let port: Int
    private let handle: FileHandle
    private let lock = NSLock()
    private var output = Data()
    private let drained = DispatchSemaphore(value: 0)

    convenience init(data: URL, extra: [String] = []) throws {
        try self.init(arguments: ["serve", "--port", "0", "--data", data.path] + extra)
    }

    /// `amanat ARGUMENTS…` (a serve command listening on 127.0.0.1), with `environment` added to this process's.
    init(arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = CLIRunner.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        handle = pipe.fileHandleForReading
        try process.run()
        // A relay that never says where it listens is killed after a minute, so the loop below ends (and throws).
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        defer { watchdog.cancel() }
        var seen = Data()
        var found: Int?
        while found == nil {
            let chunk = handle.availableData
            if chunk.isEmpty { break }  // the process ended
            seen.append(chunk)
            let text = String(decoding: seen, as: UTF8.self)
            if let range = text.range(of: #"listening on http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                found = Int(text[range].split(separator: ":").last ?? "")
            }
        }
        guard let found else {
            process.terminate()
            throw CLIFailure(
                description: "amanat serve did not print its URL: \(String(decoding: seen, as: UTF8.self))")
        }
        port = found
        output = seen
        // Keep reading, so the relay never blocks on a full pipe.
        let handle = handle
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.withLock { output.append(chunk) }
            }
            drained.signal()
        }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Sends SIGTERM and waits: returns the exit status and everything the relay wrote on stderr.
    private var stopped = false

    /// Kills the relay at once (SIGKILL), as a crashed machine would stop it.
    func kill9() { _ = end(SIGKILL) }

    func stop() -> (Int32, String) { end(SIGTERM) }

    /// Sends `signal` and waits, once; a second call answers what the first saw.
    private func end(_ signal: Int32) -> (Int32, String) {
        if !lock.withLock({ stopped }) {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            drained.wait()
            lock.withLock { stopped = true }
        }
        return (process.terminationStatus, lock.withLock { String(decoding: output, as: UTF8.self) })
    }
}

@Suite struct RelayCommandTests {
    func makePair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner) { try scratch.pair(founder: "hub laptop") }

    @Test func serveAndSyncOverHTTPEndToEnd() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let data = scratch.path("relay")
        let relay = try ServeProcess(data: data)
        let id = try a.ok([
            "add", "testimony", "--witness", "W-SECRET-4711", "--narrative-file", samplePath, "--location", "Kabul",
        ])

        let first = try a.run(["sync", "--create", relay.url])
        #expect(first.status == 0, "\(first.stderr)")
        // a's log: founding the vault, inviting b, the testimony; b's: its join.
        #expect(first.stderr.contains("Synced with \(relay.url): 0 changes pulled, 3 pushed."), "\(first.stderr)")
        #expect(first.stdout.isEmpty)
        let second = try b.run(["sync", "--create", relay.url])
        #expect(second.status == 0 && second.stderr.contains("3 changes pulled, 1 pushed"), "\(second.stderr)")
        #expect(try b.list().map { $0["id"] as? String } == [id])
        _ = try b.ok(["edit", id, "--set", "location=Herat"])
        _ = try b.ok(["sync", "--create", relay.url])
        _ = try a.ok(["sync", "--create", relay.url])
        #expect(try a.digest() == b.digest())

        let (status, log) = relay.stop()
        #expect(status == 0, "\(log)")
        #expect(log.contains("Relay stopped."))
        for phrase in ["shaking the bloody hands", "W-SECRET-4711", "Herat"] {
            #expect(!log.contains(phrase), "the log holds \(phrase)")
        }
        let files =
            FileManager.default.enumerator(at: data, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        #expect(!files.isEmpty)
        for file in files {
            let bytes = try Data(contentsOf: file)
            for phrase in ["shaking the bloody hands", "W-SECRET-4711", "Herat", "Kabul"] {
                #expect(bytes.range(of: Data(phrase.utf8)) == nil, "\(phrase) in \(file.lastPathComponent)")
            }
        }
    }

    /// `--log-format json`, for a log collector: every line on stderr is one JSON event, the relay's notices
    /// included; a client's quote, newline or brace stays inside its event; and no event holds vault content.
    @Test func withLogFormatJSONEveryLineIsOneEventAndNoneHoldsContent() throws {
        let scratch = try Scratch()
        let (a, _) = try makePair(scratch)
        let relay = try ServeProcess(
            data: scratch.path("relay"), extra: ["--log-format", "json", "--log-level", "debug"])
        _ = try a.ok([
            "add", "testimony", "--witness", "W-SECRET-4711", "--narrative-file", samplePath, "--location", "Kabul",
        ])
        let synced = try a.run(["sync", "--create", relay.url])
        #expect(synced.status == 0, "\(synced.stderr)")
        // A path that would end the line and open an event of its own if it were written as text.
        let path = "/v1/vaults/%22%0A%5C%7B%22level%22:%22critical%22%7D"
        let connection = try RawConnection(port: relay.port)
        #expect(connection.write(Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n".utf8), within: 2))
        _ = connection.readUntilClosed(within: 5)
        let (status, log) = relay.stop()
        #expect(status == 0, "\(log)")

        var events: [[String: Any]] = []
        for line in log.split(separator: "\n") {
            guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                Issue.record("a line is not one JSON object: \(line)")
                continue
            }
            #expect(event["time"] is String && event["label"] is String && event["message"] is String, "\(line)")
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            #expect(levels.contains(event["level"] as? String ?? ""), "\(line)")
            events.append(event)
        }
        func metadata(_ event: [String: Any]) -> [String: Any] { event["metadata"] as? [String: Any] ?? [:] }
        let messages = events.compactMap { $0["message"] as? String }
        #expect(messages.contains { $0.hasPrefix("Relay listening on http://127.0.0.1:\(relay.port) ") }, "\(log)")
        #expect(messages.last == "Relay stopped.", "\(log)")
        // The sync: a registration and a stored batch, each with its request id and the vault's first 8 hex digits.
        for message in ["registered vault", "stored"] {
            let event = events.first { $0["message"] as? String == message }
            #expect((metadata(event ?? [:])["vault"] as? String)?.count == 8, "\(message): \(log)")
            #expect(metadata(event ?? [:])["hb.request.id"] is String, "\(message): \(log)")
        }
        // The refusal names the path as sent, escapes intact, in its own field; no client text became an event.
        let refusal = events.first { metadata($0)["path"] as? String == path }
        #expect(metadata(refusal ?? [:])["status"] as? String == "404", "\(log)")
        #expect(!events.contains { $0["level"] as? String == "critical" }, "\(log)")
        for phrase in ["shaking the bloody hands", "W-SECRET-4711", "Kabul"] {
            #expect(!log.contains(phrase), "the log holds \(phrase)")
        }

        // The relay's notices to its operator are there whatever --log-level, as in text mode.
        let quiet = try ServeProcess(
            data: scratch.path("relay2"),
            extra: [
                "--log-format", "json", "--log-level", "error", "--registration-code-file", scratch.path("code").path,
            ])
        let (_, quietLog) = quiet.stop()
        let notices = quietLog.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        #expect(notices.count == quietLog.split(separator: "\n").count, "\(quietLog)")
        let said = notices.compactMap { $0["message"] as? String }
        #expect(said.contains { $0.hasPrefix("New registration code written to ") }, "\(quietLog)")
        #expect(said.contains { $0.hasPrefix("Relay listening on ") } && said.last == "Relay stopped.", "\(quietLog)")
    }

    @Test func anUnknownLogFormatIsAUsageError() throws {
        let scratch = try Scratch()
        let result = try scratch.runner("a").run(
            ["serve", "--port", "0", "--data", scratch.path("relay").path, "--log-format", "xml"], withVault: false,
            deadline: 30)
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--log-format takes text or json, not \"xml\"."), "\(result.stderr)")
    }

    @Test func anUnreachableRelayExitsWithStatus69AndOneSentence() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize()
        let relay = try ServeProcess(data: scratch.path("relay"))
        let url = relay.url
        _ = relay.stop()
        let r = try a.run(["sync", "--create", url])
        #expect(r.status == 69)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("amanat: The relay at \(url) cannot be reached"))
        #expect(r.stdout.isEmpty)

        let bad = try a.run(["sync", "--create", "http://"])
        #expect(bad.status == 64, "\(bad.stderr)")
    }

    @Test func serveRefusesAPortInUse() throws {
        let scratch = try Scratch()
        let relay = try ServeProcess(data: scratch.path("relay"))
        let other = scratch.runner("x")
        let r = try other.run(
            ["serve", "--port", "\(relay.port)", "--data", scratch.path("relay2").path], withVault: false)
        #expect(r.status == 74, "\(r.stderr)")
        #expect(r.stderr.contains("Could not listen"))
        // With --log-format json the failure is one more JSON event, with the same sentence and exit status, and
        // every line stays JSON.
        let json = try other.run(
            ["serve", "--port", "\(relay.port)", "--data", scratch.path("relay3").path, "--log-format", "json"],
            withVault: false, deadline: 60)
        #expect(json.status == 74, "\(json.stderr)")
        let events = json.stderr.split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        #expect(!events.isEmpty && events.allSatisfy { $0 != nil }, "\(json.stderr)")
        let failure = events.last??.filter { ["level", "message", "metadata"].contains($0.key) }
        #expect(failure?["level"] as? String == "critical", "\(json.stderr)")
        #expect((failure?["message"] as? String)?.hasPrefix("Could not listen on 127.0.0.1:\(relay.port)") == true)
        #expect((failure?["metadata"] as? [String: Any])?["exit"] as? String == "74", "\(json.stderr)")
        _ = relay.stop()
    }
}
