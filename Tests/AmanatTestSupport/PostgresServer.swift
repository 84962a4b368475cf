import AmanatCrypto
import AmanatRelay
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Why the PostgreSQL tests cannot run on this machine.
public struct PostgresUnavailable: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// Whether a missing PostgreSQL fails the tests instead of skipping them (`AMANAT_REQUIRE_POSTGRES=1`, set by CI).
public let postgresRequired = ProcessInfo.processInfo.environment["AMANAT_REQUIRE_POSTGRES"] == "1"

/// A real PostgreSQL server for the tests: started once per test process, on a free loopback port, in a new
/// temporary data folder, as an unprivileged user (the Debian `postgres` user when the tests run as root: initdb
/// refuses root), with password authentication. It stops when the test process exits, and a small watchdog stops it
/// if the process dies without exiting. Each test gets its own database (``makeDatabase()``).
public final class PostgresTestServer: Sendable {
    /// The user the tests log in as.
    public static let user = "amanat"

    public let port: Int
    public let password: String
    let folder: String
    let bin: String
    let runAs: String?
    /// The server's self-signed certificate (PEM; it names 127.0.0.1): the server accepts TLS connections with it,
    /// and a client that trusts this file can verify them.
    public var certificateFile: String { folder + "/server.crt" }

    /// The server of this test process, started on first use; or why there is none.
    public static let shared: Result<PostgresTestServer, PostgresUnavailable> = {
        do {
            let server = try PostgresTestServer.start()
            atexit { PostgresTestServer.stopShared() }
            return .success(server)
        } catch let error as PostgresUnavailable {
            FileHandle.standardError.write(
                Data("PostgreSQL tests skipped: \(error.reason)\n".utf8))
            return .failure(error)
        } catch {
            return .failure(PostgresUnavailable(reason: "\(error)"))
        }
    }()

    private init(port: Int, password: String, folder: String, bin: String, runAs: String?) {
        self.port = port
        self.password = password
        self.folder = folder
        self.bin = bin
        self.runAs = runAs
    }

    /// The folder of PostgreSQL's server programs: `$AMANAT_POSTGRES_BIN`, else the newest
    /// `/usr/lib/postgresql/*/bin` holding initdb.
    static func serverPrograms() -> String? {
        if let bin = ProcessInfo.processInfo.environment["AMANAT_POSTGRES_BIN"], !bin.isEmpty {
            return FileManager.default.isExecutableFile(atPath: bin + "/initdb") ? bin : nil
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// A server of its own, whose certificate's subject alternative names are `names` (OpenSSL's syntax, such as
    /// `DNS:db.example.org`), for a test that needs a certificate the shared server's does not give; the caller stops
    /// it (``stop()``), and the watchdog does if the process dies.
    public static func startPrivate(certificateNames names: String) throws -> PostgresTestServer {
        try start(certificateNames: names)
    }

    /// A server of its own with PostgreSQL's durable defaults (every commit's WAL flushed to the disk, full-page
    /// writes), as an operator runs it, for the load test (`make load`): the shared server skips them to keep the
    /// tests fast. The caller stops it (``stop()``), and the watchdog does if the process dies.
    public static func startDurable() throws -> PostgresTestServer {
        try start(durable: true)
    }

    private static func start(certificateNames: String = "IP:127.0.0.1", durable: Bool = false) throws
        -> PostgresTestServer
    {
        guard let bin = serverPrograms() else {
            throw PostgresUnavailable(
                reason:
                    "PostgreSQL's server programs (initdb, pg_ctl) are not installed; `apt-get install postgresql` (Scripts/setup.sh) installs them."
            )
        }
        var runAs: String?
        var owner: (uid_t, gid_t)?
        if geteuid() == 0 {
            guard let entry = getpwnam("postgres") else {
                throw PostgresUnavailable(
                    reason: "the tests run as root and there is no unprivileged `postgres` user to run PostgreSQL as.")
            }
            runAs = "postgres"
            owner = (entry.pointee.pw_uid, entry.pointee.pw_gid)
        }
        var template = Array("/tmp/amanat-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw PostgresUnavailable(reason: "no temporary folder.") }
        let folder = String(cString: made)
        let password = Hex.encode(Sodium.randomBytes(16))
        let passwordFile = folder + "/password"
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data(password.utf8))
        chmod(passwordFile, 0o600)
        if let (uid, gid) = owner {
            chown(folder, uid, gid)
            chown(passwordFile, uid, gid)
        }
        // A self-signed certificate (for 127.0.0.1 unless told otherwise), so the relay's sslmode handling meets a real
        // TLS server.
        let certificate = [
            "/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "3", "-subj", "/CN=amanat test server", "-addext", "subjectAltName=\(certificateNames)",
            "-keyout", folder + "/server.key", "-out", folder + "/server.crt",
        ]
        guard
            (try? spawnAndWait(
                certificate, environment: ProcessInfo.processInfo.environment, output: folder + "/openssl.log",
                deadline: 60)) == 0
        else {
            throw PostgresUnavailable(reason: "openssl could not make the test server's certificate.")
        }
        chmod(folder + "/server.key", 0o600)
        if let (uid, gid) = owner {
            chown(folder + "/server.key", uid, gid)
            chown(folder + "/server.crt", uid, gid)
        }
        let port = try freePort()
        let server = PostgresTestServer(port: port, password: password, folder: folder, bin: bin, runAs: runAs)
        do {
            try server.run(
                "initdb",
                [
                    "-D", folder + "/data", "-U", user, "--pwfile=" + passwordFile, "-A", "scram-sha-256",
                    "-E", "UTF8", "--locale=C", "--no-sync",
                ], deadline: 120)
            try server.run(
                "pg_ctl",
                [
                    "-D", folder + "/data", "-l", folder + "/log", "-w", "-t", "60", "-o",
                    "-p \(port) -k \(folder) -c listen_addresses=127.0.0.1"
                        + (durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
                        + " -c max_connections=300 -c ssl=on -c ssl_cert_file=\(folder)/server.crt -c ssl_key_file=\(folder)/server.key",
                    "start",
                ], deadline: 90)
        } catch {
            let log = (try? String(contentsOfFile: folder + "/log", encoding: .utf8)) ?? ""
            server.stop()
            throw PostgresUnavailable(reason: "PostgreSQL did not start: \(error) \(log.suffix(400))")
        }
        server.watch()
        return server
    }

    /// Stops the shared server (at exit).
    static func stopShared() {
        guard case .success(let server) = shared else { return }
        server.stop()
    }

    /// Stops the server (fast shutdown, then immediate) and removes its folder.
    public func stop() {
        if (try? run("pg_ctl", ["-D", folder + "/data", "-m", "fast", "-w", "-t", "20", "stop"], deadline: 30)) == nil {
            _ = try? run("pg_ctl", ["-D", folder + "/data", "-m", "immediate", "-w", "-t", "20", "stop"], deadline: 30)
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A watchdog shell that stops the server once this test process is gone, however it ended.
    private func watch() {
        let stop = (runAs.map { "runuser -u \($0) -- " } ?? "") + "\(bin)/pg_ctl -D \(folder)/data -m immediate stop"
        let script =
            "while kill -0 \(getpid()) 2>/dev/null; do sleep 2; done; if [ -d \(folder)/data ]; then \(stop) >/dev/null 2>&1; rm -rf \(folder); fi"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when root), killed after `deadline` seconds; returns what it
    /// printed. (posix_spawn and waitpid, not Foundation's Process, whose child reaping does not work here.)
    @discardableResult
    func run(_ program: String, _ arguments: [String], deadline: Double, environment: [String: String] = [:])
        throws -> String
    {
        let command =
            runAs.map { ["/usr/sbin/runuser", "-u", $0, "--", "\(bin)/\(program)"] } ?? ["\(bin)/\(program)"]
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let output = folder + "/output-\(Hex.encode(Sodium.randomBytes(6)))"
        defer { unlink(output) }
        let status = try Self.spawnAndWait(command + arguments, environment: env, output: output, deadline: deadline)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard let status else {
            throw PostgresUnavailable(reason: "\(program) did not finish within \(Int(deadline)) seconds")
        }
        guard status == 0 else {
            throw PostgresUnavailable(reason: "\(program) failed (\(status)): \(text.suffix(600))")
        }
        return text
    }

    /// Runs `command` with stdout and stderr into `output`; its exit status, or nil when it was killed at `deadline`.
    static func spawnAndWait(_ command: [String], environment: [String: String], output: String, deadline: Double)
        throws -> Int32?
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw PostgresUnavailable(reason: "could not start \(command[0]) (error \(spawned))")
        }
        let end = Date().addingTimeInterval(deadline)
        var status: Int32 = 0
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { return -1 }
            if Date() >= end {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return nil
            }
            usleep(10_000)
        }
        // Exited normally: its status; killed by a signal: 128 + the signal, as shells say.
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs SQL through psql against `database`.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run(
            "psql",
            [
                "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, "-d",
                database,
                "-c", sql,
            ], deadline: 60, environment: ["PGPASSWORD": password])
    }

    /// A plain-SQL dump of `database` (pg_dump), as an operator's backup would be.
    public func dump(database: String) throws -> String {
        try run(
            "pg_dump", ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, "-d", database], deadline: 120,
            environment: ["PGPASSWORD": password])
    }

    private static let counter = DatabaseCounter()

    /// A new empty database on the server, and where it is.
    public func makeDatabase() throws -> PostgresLocation {
        let name = "amanat_test_\(Self.counter.next())_\(Hex.encode(Sodium.randomBytes(4)))"
        try psql("CREATE DATABASE \(name)")
        return PostgresLocation(
            host: "127.0.0.1", port: port, user: Self.user, database: name, password: password, tls: .disable)
    }

    /// A free TCP port on the loopback (bound, read, released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PostgresUnavailable(reason: "no socket for a free port.") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw PostgresUnavailable(reason: "no free loopback port.") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw PostgresUnavailable(reason: "no free loopback port.") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

private final class DatabaseCounter: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}

/// The storages a relay test runs against.
public enum RelayStorageKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { rawValue }
}

/// How long a test relay waits for its database. Longer than a relay's own 15 s: tests that block their thread
/// (a command-line run waiting for its process) can hold every thread of the shared pool for a while on a
/// 2-core machine, and the connection pool's tasks wait for one.
let testStartTimeout: Duration = .seconds(90)

/// A relay storage of `kind` for one test: SQLite files in `data`, or a new database on the shared PostgreSQL
/// server. Throws ``PostgresUnavailable`` when PostgreSQL cannot run here.
public func makeRelayStorage(_ kind: RelayStorageKind, data: URL, maxVaults: Int = 1000) async throws
    -> any RelayStorage
{
    switch kind {
    case .sqlite:
        return try SQLiteRelayStorage(directory: data, maxVaults: maxVaults)
    case .postgres:
        let server = try PostgresTestServer.shared.get()
        let location = try server.makeDatabase()
        return try await PostgresRelayStorage.connect(
            location, maxVaults: maxVaults, startTimeout: testStartTimeout, logger: quietLogger)
    }
}

extension PostgresRelayStorage {
    /// The test database's name.
    public var databaseName: String { location.database }
}

/// Where a test relay keeps its data, so the same storage can be opened again (a restarted relay, a second relay
/// process over the same database, a test reading what the relay stored).
public struct TestStorage: Sendable {
    public let kind: RelayStorageKind
    /// The SQLite data folder.
    public let data: URL
    /// The PostgreSQL database.
    public let location: PostgresLocation?

    /// New storage of `kind` (for PostgreSQL, a new database on the shared server).
    public init(_ kind: RelayStorageKind, data: URL) throws {
        self.kind = kind
        self.data = data
        location = kind == .postgres ? try PostgresTestServer.shared.get().makeDatabase() : nil
    }

    /// Opens the storage (each call a new connection pool, as a separate relay process would have).
    public func open(maxVaults: Int = 1000) async throws -> any RelayStorage {
        if let location {
            return try await PostgresRelayStorage.connect(
                location, maxVaults: maxVaults, startTimeout: testStartTimeout, logger: quietLogger)
        }
        return try SQLiteRelayStorage(directory: data, maxVaults: maxVaults)
    }

    /// What the storage holds as bytes an attacker who stole it would read: every file of the SQLite folder, or a
    /// pg_dump of the database.
    public func rawContents() throws -> [(name: String, bytes: Data)] {
        if let location {
            let dump = try PostgresTestServer.shared.get().dump(database: location.database)
            return [("pg_dump of \(location.database)", Data(dump.utf8))]
        }
        let files =
            FileManager.default.enumerator(at: data, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        return try files.filter { !$0.hasDirectoryPath }.map { ($0.lastPathComponent, try Data(contentsOf: $0)) }
    }
}

/// A relay started for a test over a ``TestStorage``; ``stop()`` stops it and closes its storage.
public struct TestRelay: Sendable {
    public let running: RunningRelay
    public let storage: any RelayStorage

    public var url: String { running.url }
    public var port: Int { running.port }

    /// Starts a relay over `spec` on a free loopback port (or `port`); `configure` adjusts the server first.
    public static func start(
        _ spec: TestStorage, port: Int = 0, maxVaults: Int = 1000, registrationCode: String? = nil,
        logger: Logger = quietLogger, configure: (inout RelayServer) -> Void = { _ in }
    ) async throws -> TestRelay {
        let storage = try await spec.open(maxVaults: maxVaults)
        var server = RelayServer(storage: storage, logger: logger, registrationCode: registrationCode)
        configure(&server)
        do {
            return TestRelay(
                running: try await RunningRelay.start(server, host: "127.0.0.1", port: port), storage: storage)
        } catch {
            await storage.close()
            throw error
        }
    }

    public func stop() async {
        await running.stop()
        await storage.close()
    }
}

/// A log handler that keeps every line it is given, for tests that read what the relay logged.
public final class CollectedLog: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var lines: [String] = []

    public init() {}

    /// A logger writing here, at `level` and above.
    public func logger(level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: "amanat.relay.test") { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    /// Every line so far: level, message and metadata.
    public var text: String { lock.withLock { lines.joined(separator: "\n") } }

    func append(_ line: String) { lock.withLock { lines.append(line) } }

    struct Handler: LogHandler {
        let log: CollectedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            for (key, value) in event.metadata ?? [:] { all[key] = value }
            log.append("\(event.level) \(event.message) \(all.sorted { $0.key < $1.key })")
        }
    }
}
