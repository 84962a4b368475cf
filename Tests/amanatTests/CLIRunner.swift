import Foundation

/// Runs the built `amanat` binary, as a user or a script would.
struct CLIRunner {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The vault directory passed with --vault.
    var vault: URL
    var passphrase = "correct horse battery staple"
    var environment: [String: String] = [:]

    static let binary: URL = {
        var candidates: [URL] = []
        if let env = ProcessInfo.processInfo.environment["AMANAT_BIN"] { candidates.append(URL(fileURLWithPath: env)) }
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("amanat"))
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("amanat"))
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/amanat"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    /// The environment a command runs in: this process's, with the passphrase and `environment` added.
    var processEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["AMANAT_PASSPHRASE"] = passphrase
        env.removeValue(forKey: "AMANAT_VAULT")
        for (k, v) in environment { env[k] = v }
        return env
    }

    /// Runs `amanat --vault VAULT args…` with the passphrase in the environment.
    @discardableResult
    /// Runs `amanat ARGS`; with `deadline`, a command still running after that many seconds is killed (SIGKILL), so
    /// a command that would hang ends the test with a wrong status instead.
    func run(_ args: [String], stdin: String? = nil, withVault: Bool = true, deadline: Double? = nil) throws -> Result {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = (withVault ? ["--vault", vault.path] : []) + args
        process.environment = processEnvironment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        if let deadline { DispatchQueue.global().asyncAfter(deadline: .now() + deadline, execute: watchdog) }
        defer { watchdog.cancel() }
        if let stdin {
            try input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        // stderr is drained on another thread, so a command that writes more than a pipe holds to stderr cannot
        // block while stdout is read.
        let errBox = DataBox()
        let reader = Thread {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile(); errBox.done.signal()
        }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errBox.done.wait()
        let errData = errBox.data
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs a command that must succeed and returns its stdout without the final newline.
    func ok(_ args: [String]) throws -> String {
        let r = try run(args)
        guard r.status == 0 else {
            throw CLIFailure(description: "amanat \(args.joined(separator: " ")) exited \(r.status): \(r.stderr)")
        }
        return r.stdout.hasSuffix("\n") ? String(r.stdout.dropLast()) : r.stdout
    }

    /// Creates the vault with the fast KDF.
    func initialize(name: String = "test device") throws {
        _ = try ok(["init", "--kdf", "interactive", "--device-name", name])
    }

    /// The parsed `status --json`.
    func status() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try ok(["status", "--json"]).utf8)) as? [String: Any] ?? [:]
    }

    /// The state digest from `status --json`.
    func digest() throws -> String { try status()["state_digest"] as? String ?? "" }

    /// The parsed `list --json`.
    func list(_ extra: [String] = []) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: Data(try ok(["list", "--json"] + extra).utf8)) as? [[String: Any]] ?? []
    }
}

/// The bytes one thread read, handed to another.
final class DataBox: @unchecked Sendable {
    var data = Data()
    let done = DispatchSemaphore(value: 0)
}

struct CLIFailure: Error, CustomStringConvertible {
    var description: String
}

/// A fresh temporary directory, removed when released.
final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// A runner on a vault named `name` inside this directory.
    func runner(_ name: String = "vault") -> CLIRunner { CLIRunner(vault: path(name)) }

    /// A new device in folder `folder`, named `deviceName`, joined to `inviter`'s vault with an invitation written to
    /// `invitation` (with `role`, when given) and its code.
    func join(
        _ folder: String, invitedBy inviter: CLIRunner, deviceName: String, role: String? = nil,
        invitation: String = "invite.amanat"
    ) throws -> CLIRunner {
        let file = path(invitation).path
        let code = try inviter.ok(["invite", "--out", file] + (role.map { ["--role", $0] } ?? []))
        let device = runner(folder)
        _ = try device.ok(["join", file, "--code", code, "--kdf", "interactive", "--device-name", deviceName])
        return device
    }

    /// Two devices of one new vault: "a" founded it (device `founder`), "b" joined it (device `joiner`).
    func pair(founder: String = "field laptop", joiner: String = "coordinator") throws -> (CLIRunner, CLIRunner) {
        let a = runner("a")
        try a.initialize(name: founder)
        return (a, try join("b", invitedBy: a, deviceName: joiner))
    }
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let samplePath = repositoryRoot.appendingPathComponent("seeds/coalition-statement-on-russia-recognition.txt").path
