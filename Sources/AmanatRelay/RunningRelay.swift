import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// A relay running in this process, for tests, the load generator and embedding: started on a port (0 picks a free
/// one) and stopped gracefully.
public final class RunningRelay: Sendable {
    /// The port the relay listens on.
    public let port: Int
    /// The relay's URL.
    public let url: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    private init(port: Int, host: String, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.url = "http://\(host):\(port)"
        self.group = group
        self.task = task
    }

    /// Starts `relay` on `host:port` and returns once it accepts connections.
    public static func start(_ relay: RelayServer, host: String = "127.0.0.1", port: Int = 0) async throws
        -> RunningRelay
    {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = relay.application(host: host, port: port) { bound in
            continuation.yield(bound)
            continuation.finish()
        }
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], logger: relay.logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            // The server stopped before it was running: surface its error.
            try await task.value
            throw RelayStartError(message: "The relay stopped before it accepted connections.")
        }
        return RunningRelay(port: bound, host: host, group: group, task: task)
    }

    /// Stops accepting connections, finishes requests in flight, and returns when the relay has stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// The relay could not start (for example: the port is taken).
public struct RelayStartError: Error, CustomStringConvertible {
    /// One sentence.
    public var message: String
    public var description: String { message }
}

extension RelayServer {
    /// Serves until SIGINT or SIGTERM, then shuts down gracefully (requests in flight finish). `onRunning` receives
    /// the bound port once the relay accepts connections. Throws if the relay cannot listen.
    public func serve(host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        let removed = (try? await store.removeUnusedVaults(now: now())) ?? 0
        if removed > 0 { logger.notice("removed vaults that never stored anything", metadata: ["count": "\(removed)"]) }
        let app = application(host: host, port: port, onRunning: onRunning)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await store.close()
    }
}
