// amanat-load: starts a relay on loopback, runs N concurrent member devices that write records and sync through it
// for a bounded time, and prints throughput, latency and errors (also written as JSON).
//
//   amanat-load [--clients 50] [--seconds 20] [--vaults 10] [--think-ms 100] [--out Benchmarks/load-results.json]
//               [--storage sqlite|postgres] [--amanat .build/release/amanat]
//   (environment: AMANAT_LOAD_CLIENTS, AMANAT_LOAD_SECONDS, AMANAT_LOAD_VAULTS, AMANAT_LOAD_THINK_MS, AMANAT_LOAD_OUT,
//    AMANAT_LOAD_STORAGE)
//
// With --storage sqlite (the default) the relay runs in this process over SQLite files. With --storage postgres, a
// PostgreSQL server is started in a temporary folder (as the tests start it), and two `amanat serve --database`
// processes serve from one database on two ports; the clients are split across both.
//
// Only 127.0.0.1 is ever contacted, and every loop stops at the deadline.
import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Logging

struct Settings {
    var clients = 50
    var seconds = 20.0
    var vaults = 10
    var thinkMillis = 100
    var out = "Benchmarks/load-results.json"
    var postgres = false
    var amanat = ".build/release/amanat"

    init() {
        let env = ProcessInfo.processInfo.environment
        clients = env["AMANAT_LOAD_CLIENTS"].flatMap(Int.init) ?? clients
        seconds = env["AMANAT_LOAD_SECONDS"].flatMap(Double.init) ?? seconds
        vaults = env["AMANAT_LOAD_VAULTS"].flatMap(Int.init) ?? vaults
        thinkMillis = env["AMANAT_LOAD_THINK_MS"].flatMap(Int.init) ?? thinkMillis
        out = env["AMANAT_LOAD_OUT"] ?? out
        postgres = env["AMANAT_LOAD_STORAGE"] == "postgres"
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let flag = args.next() {
            let value = args.next() ?? ""
            switch flag {
            case "--clients": clients = Int(value) ?? clients
            case "--seconds": seconds = Double(value) ?? seconds
            case "--vaults": vaults = Int(value) ?? vaults
            case "--think-ms": thinkMillis = Int(value) ?? thinkMillis
            case "--out": out = value
            case "--storage" where ["sqlite", "postgres"].contains(value): postgres = value == "postgres"
            case "--amanat": amanat = value
            default:
                FileHandle.standardError.write(Data("amanat-load: unknown option \(flag)\n".utf8))
                exit(64)
            }
        }
        clients = max(1, min(clients, 500))
        vaults = max(1, min(vaults, clients))
        seconds = max(1, min(seconds, 600))
    }
}

/// Figures collected by all clients.
final class Figures: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    var requestMillis: [Double] = []
    var syncMillis: [Double] = []
    var pushed = 0
    var pulled = 0
    var syncs = 0
    var errors = 0
    var errorSamples: [String] = []

    func request(_ millis: Double) { lock.withLock { requestMillis.append(millis) } }

    func sync(_ millis: Double, pushed: Int, pulled: Int) {
        lock.withLock {
            syncMillis.append(millis)
            self.pushed += pushed
            self.pulled += pulled
            syncs += 1
        }
    }

    func error(_ text: String) {
        lock.withLock {
            errors += 1
            if errorSamples.count < 5 { errorSamples.append(text) }
        }
    }

    func snapshot<T>(_ body: (Figures) -> T) -> T { lock.withLock { body(self) } }
}

/// Runs one client's jobs on its own serial queue, as if the client were its own device: its blocking SQLite work then
/// never occupies the shared cooperative threads the relay's requests complete on.
final class DeviceExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: the queue is immutable and serialises the jobs itself.
    private let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Starts the timed phase once every client is ready.
final class Gate: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private let expected: Int
    private var arrived = 0
    private var start: ContinuousClock.Instant?

    init(expected: Int) { self.expected = expected }

    var startInstant: ContinuousClock.Instant? { lock.withLock { start } }

    /// Waits until every client has arrived; returns when the timed phase started.
    func arriveAndWait() async -> ContinuousClock.Instant {
        lock.withLock {
            arrived += 1
            if arrived == expected { start = .now }
        }
        while true {
            if let start = startInstant { return start }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Times every request of a carrier.
struct TimedCarrier: ExchangeCarrier {
    let inner: HTTPCarrier
    let figures: Figures

    var name: String { inner.name }
    var canWrite: Bool { true }

    func timed<T>(_ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        let result = try await body()
        figures.request(millis(ContinuousClock.now - start))
        return result
    }

    func versionVector() async throws -> [DeviceID: ChainHead] { try await timed { try await inner.versionVector() } }

    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        try await timed { try await inner.envelopes(of: author, after: seq, limit: limit) }
    }

    func push(_ envelopes: [Envelope]) async throws -> Int { try await timed { try await inner.push(envelopes) } }

    func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult {
        try await timed { try await inner.exchange(vector: vector, push: push, limit: limit) }
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[index]
}

func millis(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }

@main
struct LoadTest {
    static func main() async throws {
        let settings = Settings()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-load-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let secret = SecureBytes(Array("load test passphrase".utf8))

        var logger = Logger(label: "amanat.relay") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let relays: Relays
        do {
            if settings.postgres {
                relays = try await .postgres(amanat: settings.amanat)
            } else {
                relays = try await .sqlite(work, logger: logger)
            }
        } catch {
            print("could not start the relays: \(error)")
            exit(1)
        }
        print(
            "relays on \(relays.urls.joined(separator: ", ")) (\(settings.postgres ? "two processes over PostgreSQL" : "SQLite")); \(settings.clients) clients in \(settings.vaults) vaults for \(settings.seconds) s"
        )

        // Every vault is founded by a coordinator that invites each of its clients before the run; each invitation
        // carries all of the coordinator's membership entries, so every client knows every other from the start.
        var grants: [InvitationGrant] = []
        do {
            var founders: [Vault] = []
            for v in 0..<settings.vaults {
                founders.append(
                    try Vault.create(
                        at: work.appendingPathComponent("founder\(v)"), passphrase: secret,
                        deviceName: "load vault \(v)", strength: .interactive))
            }
            for client in 0..<settings.clients {
                grants.append(try founders[client % settings.vaults].invite(role: .member, validFor: 86_400))
            }
            for client in 0..<settings.clients {
                grants[client].authority = try founders[client % settings.vaults].authorityEnvelopes()
            }
        } catch {
            print("could not prepare the vaults: \(error)")
            await relays.stop()
            exit(1)
        }
        let figures = Figures()
        // Every client first creates its vault (Argon2 is slow on purpose); the timed phase starts when all are ready.
        let gate = Gate(expected: settings.clients)
        let duration = Duration.milliseconds(Int(settings.seconds * 1000))

        let think = settings.thinkMillis
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<settings.clients {
                let grant = grants[client]
                let dir = work.appendingPathComponent("client\(client)")
                group.addTask(executorPreference: DeviceExecutor(label: "amanat-load.client\(client)")) {
                    let vault: Vault
                    let carrier: TimedCarrier
                    do {
                        vault = try Vault.join(
                            grant, at: dir, passphrase: secret, deviceName: "client \(client)", strength: .interactive)
                        carrier = TimedCarrier(
                            inner: try HTTPCarrier(
                                url: relays.urls[client % relays.urls.count], vaultID: vault.vaultID,
                                key: vault.relaySigningKey,
                                device: vault.keyring.device),
                            figures: figures)
                    } catch {
                        figures.error("client \(client) could not start: \(error)")
                        _ = await gate.arriveAndWait()
                        return
                    }
                    var generator = SystemRandomNumberGenerator()
                    var round = 0
                    let deadline = await gate.arriveAndWait() + duration
                    while ContinuousClock.now < deadline {
                        round += 1
                        do {
                            for i in 0..<Int.random(in: 1...3, using: &generator) {
                                _ = try vault.createRecord(
                                    kind: "statement", fields: [("title", "client \(client) round \(round) #\(i)")],
                                    tags: [], seal: false)
                            }
                            let start = ContinuousClock.now
                            let report = try await ExchangeSession(vault: vault, carrier: carrier).run()
                            figures.sync(
                                millis(ContinuousClock.now - start), pushed: report.pushed, pulled: report.pulled)
                        } catch {
                            figures.error("client \(client): \(error)")
                        }
                        let pause = Int.random(in: 0...(2 * think), using: &generator)
                        try? await Task.sleep(for: .milliseconds(pause))
                    }
                    await carrier.inner.shutdown()
                }
            }
        }
        let elapsed = millis(ContinuousClock.now - (gate.startInstant ?? ContinuousClock.now)) / 1000
        await relays.stop()

        let result: [String: Any] = figures.snapshot { f in
            let requests = f.requestMillis.sorted()
            let syncs = f.syncMillis.sorted()
            func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
            return [
                "storage": settings.postgres ? "postgres" : "sqlite",
                "relays": relays.urls.count,
                "clients": settings.clients,
                "vaults": settings.vaults,
                "seconds": round2(elapsed),
                "think_ms": settings.thinkMillis,
                "syncs": f.syncs,
                "requests": requests.count,
                "errors": f.errors,
                "envelopes_ingested": f.pushed,
                "envelopes_served": f.pulled,
                "ingested_per_second": round2(Double(f.pushed) / elapsed),
                "served_per_second": round2(Double(f.pulled) / elapsed),
                "requests_per_second": round2(Double(requests.count) / elapsed),
                "request_latency_ms": [
                    "p50": round2(percentile(requests, 0.5)), "p99": round2(percentile(requests, 0.99)),
                    "max": round2(requests.last ?? 0),
                ],
                "sync_latency_ms": [
                    "p50": round2(percentile(syncs, 0.5)), "p99": round2(percentile(syncs, 0.99)),
                    "max": round2(syncs.last ?? 0),
                ],
                "error_samples": f.errorSamples,
            ]
        }
        let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: URL(fileURLWithPath: settings.out))
        print(String(decoding: json, as: UTF8.self))
        print("written to \(settings.out)")
        let figuresOK = figures.snapshot { $0.errors == 0 }
        try? FileManager.default.removeItem(at: work)
        exit(figuresOK ? 0 : 1)
    }
}

/// The relays under load: one in this process over SQLite, or two `amanat serve --database` processes over one
/// PostgreSQL database.
final class Relays: @unchecked Sendable {
    // @unchecked Sendable: set once at start, then only read.
    let urls: [String]
    private let inProcess: RunningRelay?
    private let storage: (any RelayStorage)?
    private let processes: [Process]
    private let database: PostgresTestServer?

    private init(
        urls: [String], inProcess: RunningRelay?, storage: (any RelayStorage)?, processes: [Process],
        database: PostgresTestServer? = nil
    ) {
        self.urls = urls
        self.inProcess = inProcess
        self.storage = storage
        self.processes = processes
        self.database = database
    }

    static func sqlite(_ work: URL, logger: Logger) async throws -> Relays {
        let storage = try SQLiteRelayStorage(directory: work.appendingPathComponent("relay"))
        var server = RelayServer(storage: storage, logger: logger)
        // Fifty devices share the loopback address here; on a network each would have its own.
        server.maxConnectionsPerAddress = 1000
        let relay = try await RunningRelay.start(server)
        return Relays(urls: [relay.url], inProcess: relay, storage: storage, processes: [])
    }

    static func postgres(amanat: String) async throws -> Relays {
        guard FileManager.default.isExecutableFile(atPath: amanat) else {
            throw LoadError(message: "\(amanat) is not built (swift build -c release --product amanat)")
        }
        // A server with PostgreSQL's durable defaults, as an operator runs it (the tests' shared server skips the
        // flushes): every request commits its nonce, so each waits for its WAL to reach the disk.
        let server = try PostgresTestServer.startDurable()
        let location: PostgresLocation
        do {
            location = try server.makeDatabase()
        } catch {
            server.stop()
            throw error
        }
        var processes: [Process] = []
        var urls: [String] = []
        for _ in 0..<2 {
            let port: Int
            do {
                port = try PostgresTestServer.freePort()
            } catch {
                await Relays(urls: urls, inProcess: nil, storage: nil, processes: processes, database: server).stop()
                throw error
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: amanat)
            process.arguments = [
                "serve", "--port", "\(port)", "--log-level", "warning", "--max-connections-per-address", "1000",
                "--database",
                "postgres://\(location.user)@\(location.host):\(location.port)/\(location.database)?sslmode=disable",
            ]
            var environment = ProcessInfo.processInfo.environment
            environment["AMANAT_DATABASE_PASSWORD"] = location.password
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                await Relays(urls: urls, inProcess: nil, storage: nil, processes: processes, database: server).stop()
                throw error
            }
            processes.append(process)
            urls.append("http://127.0.0.1:\(port)")
        }
        let relays = Relays(urls: urls, inProcess: nil, storage: nil, processes: processes, database: server)
        // Both answer their health route within 60 seconds, or the run stops.
        let deadline = ContinuousClock.now + .seconds(60)
        for url in urls {
            while !(await healthy(url)) {
                guard ContinuousClock.now < deadline, processes.allSatisfy(\.isRunning) else {
                    await relays.stop()
                    throw LoadError(message: "the relay at \(url) did not start")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return relays
    }

    static func healthy(_ url: String) async -> Bool {
        let client = RelayHTTPClient(baseURL: url)
        let status = try? await client.send("GET", "/v1/health").status
        await client.shutdown()
        return status == 200
    }

    /// Stops every relay (SIGTERM, then SIGKILL after 20 seconds), then the database server if there is one.
    func stop() async {
        await inProcess?.stop()
        await storage?.close()
        for process in processes where process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(20)
        for process in processes {
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        database?.stop()
    }
}

struct LoadError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
