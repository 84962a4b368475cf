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

/// Syncs the vault in `directory` through a failover carrier over `urls`, reporting progress in `progress`.
public func failoverSync(_ directory: URL, _ urls: [String], progress: Counter) -> Task<(SyncReport, [String]), Error> {
    Task {
        let vault = try Vault.open(at: directory, passphrase: passphrase)
        return try await FailoverCarrier.with(
            urls: urls, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
            options: testOptions(attempts: 3)
        ) { carrier in
            let report = try await ExchangeSession(vault: vault, carrier: carrier, batchSize: 100).run {
                progress.set($0.done)
            }
            return (report, carrier.failovers.map(\.to))
        }
    }
}
