import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import Foundation
import Logging

/// A fresh temporary directory, removed when released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-relay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> URL { url.appendingPathComponent(name) }
}

let passphrase = SecureBytes(Array("test passphrase".utf8))

/// A logger that drops everything, so test output stays readable.
let quietLogger = Logger(label: "amanat.relay.test") { _ in SwiftLogNoOpLogHandler() }

/// A team of `count` member devices of one vault, each in its own vault directory.
func makeTeam(_ count: Int, in dir: TemporaryDirectory, prefix: String = "r") throws -> [Vault] {
    let first = try Vault.create(
        at: dir.path("\(prefix)0"), passphrase: passphrase, deviceName: "\(prefix)0", strength: .interactive)
    var team = [first]
    for i in 1..<max(count, 1) {
        let keyring = Keyring(
            vaultID: first.vaultID, device: .generate(), deviceName: "\(prefix)\(i)", keys: first.keyring.keys)
        team.append(
            try Vault.create(
                at: dir.path("\(prefix)\(i)"), keyring: keyring, passphrase: passphrase, strength: .interactive))
    }
    return Array(team.prefix(count))
}

/// Starts a relay on an ephemeral loopback port (or `port`) over the data directory `data`.
func startRelay(data: URL, port: Int = 0) async throws -> RunningRelay {
    let store = try RelayStore(directory: data)
    return try await RunningRelay.start(RelayServer(store: store, logger: quietLogger), host: "127.0.0.1", port: port)
}

/// Fast retries for tests.
func testOptions(attempts: Int = 8) -> HTTPCarrier.Options {
    var options = HTTPCarrier.Options()
    options.attempts = attempts
    options.initialBackoff = .milliseconds(50)
    options.maxBackoff = .milliseconds(800)
    options.connectTimeout = .seconds(2)
    return options
}

/// Syncs `vault` with the relay at `url`, both ways.
@discardableResult
func relaySync(
    _ vault: Vault, _ url: String, batchSize: Int = 1000, options: HTTPCarrier.Options = testOptions(),
    progress: (SyncProgress) -> Void = { _ in }
) async throws -> SyncReport {
    try await HTTPCarrier.with(url: url, vaultID: vault.vaultID, key: vault.relaySigningKey, options: options) {
        try await ExchangeSession(vault: vault, carrier: $0, batchSize: batchSize).run(progress: progress)
    }
}

/// Syncs `vault` with the sync file at `url`, both ways.
@discardableResult
func fileSync(_ vault: Vault, _ url: URL) async throws -> SyncReport {
    try await SyncSession(vault: vault, carrier: try FileCarrier(url: url, vaultID: vault.vaultID)).run()
}

/// A small deterministic generator (SplitMix64), so a failing seed can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// A flag shared between a sync's progress callback and a task that watches it.
final class Counter: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var count = 0

    func set(_ value: Int) { lock.withLock { count = value } }
    var value: Int { lock.withLock { count } }
}
