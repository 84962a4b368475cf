import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import Foundation
import Logging

/// A logger that drops everything, so test output stays readable.
public let quietLogger = Logger(label: "amanat.relay.test") { _ in SwiftLogNoOpLogHandler() }

/// Starts a relay on an ephemeral loopback port (or `port`) over the data directory `data`.
public func startRelay(data: URL, port: Int = 0) async throws -> RunningRelay {
    let store = try RelayStore(directory: data)
    return try await RunningRelay.start(RelayServer(store: store, logger: quietLogger), host: "127.0.0.1", port: port)
}

/// Fast retries for tests.
public func testOptions(attempts: Int = 8) -> HTTPCarrier.Options {
    var options = HTTPCarrier.Options()
    options.attempts = attempts
    options.initialBackoff = .milliseconds(50)
    options.maxBackoff = .milliseconds(800)
    options.connectTimeout = .seconds(2)
    return options
}

/// Syncs `vault` with the relay at `url`, both ways.
@discardableResult
public func relaySync(
    _ vault: Vault, _ url: String, batchSize: Int = 1000, options: HTTPCarrier.Options = testOptions(),
    progress: (SyncProgress) -> Void = { _ in }
) async throws -> SyncReport {
    try await HTTPCarrier.with(
        url: url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device, options: options
    ) {
        try await ExchangeSession(vault: vault, carrier: $0, batchSize: batchSize).run(progress: progress)
    }
}

/// Runs a task's jobs on a serial queue of its own: a sync a test starts in the background then goes on while the
/// suite's other tests hold the shared cooperative threads (a command-line test blocks one while its process runs).
public final class DedicatedExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: the queue is immutable and serialises the jobs itself.
    private let queue: DispatchQueue

    public init(label: String) { queue = DispatchQueue(label: label) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Holds a sync still once it has moved `at` changes, until the test has done what it must do at that moment (kill
/// a relay): the moment is then the same on a fast machine and a loaded one.
public final class SyncPause: @unchecked Sendable {
    // @unchecked Sendable: `fired` is guarded by the lock; the semaphores are thread-safe.
    private let at: Int
    private let lock = NSLock()
    private var fired = false
    private let resumed = DispatchSemaphore(value: 0)

    public init(at: Int) { self.at = at }

    /// Called with the sync's progress: the first time it reaches `at`, waits (at most 10 minutes) for ``release()``.
    func check(_ done: Int) {
        guard done >= at,
            lock.withLock({
                fired
                    ? false
                    : {
                        fired = true; return true
                    }()
            })
        else { return }
        _ = resumed.wait(timeout: .now() + 600)
    }

    /// Waits at most `seconds` for the sync to reach the pause; returns whether it did. It sleeps between looks
    /// instead of blocking its thread: the suite's in-process relays answer on the same shared threads.
    public func reached(within seconds: Double = 600) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !lock.withLock({ fired }) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// Lets the sync go on.
    public func release() { resumed.signal() }
}

/// Syncs the vault in `directory` through a failover carrier over `urls`, reporting progress in `progress` (and
/// holding still at `pause`), on an executor of its own (``DedicatedExecutor``).
public func failoverSync(_ directory: URL, _ urls: [String], progress: Counter, pause: SyncPause? = nil)
    -> Task<(SyncReport, [String]), Error>
{
    Task(executorPreference: DedicatedExecutor(label: "amanat-test.failover-sync")) {
        let vault = try Vault.open(at: directory, passphrase: passphrase)
        return try await FailoverCarrier.with(
            urls: urls, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
            options: testOptions(attempts: 3)
        ) { carrier in
            let report = try await ExchangeSession(vault: vault, carrier: carrier, batchSize: 100).run {
                progress.set($0.done)
                pause?.check($0.done)
            }
            return (report, carrier.failovers.map(\.to))
        }
    }
}
