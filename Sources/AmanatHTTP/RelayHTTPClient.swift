import AmanatCrypto
import AmanatSync
import AmanatWire
import AsyncHTTPClient
import Foundation
import NIOCore

/// A plain HTTP client for talking to a relay request by request, with full control over method, path, headers and
/// body: for tests that play an attacker (unsigned, replayed, re-targeted or malformed requests), and for the load
/// generator. Syncing uses ``HTTPCarrier``.
public final class RelayHTTPClient: Sendable {
    /// An answer: status and body.
    public struct Answer: Sendable {
        /// The HTTP status.
        public var status: Int
        /// The body.
        public var body: [UInt8]

        /// The `error` sentence of a JSON error body, if any.
        public var errorMessage: String? {
            (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["error"] as? String
        }
    }

    /// The relay's base URL.
    public let baseURL: String
    private let client: HTTPClient

    /// Creates a client for the relay at `baseURL` (no trailing slash).
    public init(baseURL: String) {
        self.baseURL = baseURL
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5)))
        // Shorter than the relay's idle timeout (30 s), so an idle connection is never reused just as the relay closes it.
        configuration.connectionPool = .init(idleTimeout: .seconds(10))
        // Fail fast on a refused connection: the carrier retries with its own backoff and says so clearly.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the connections.
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Sends a request as given.
    public func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil)
        async throws
        -> Answer
    {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let response = try await client.execute(request, timeout: .seconds(60))
        var buffer = try await response.body.collect(upTo: RelayWire.maxResponseBytes)
        return Answer(status: Int(response.status.code), body: buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    /// The authentication headers for a request signed with `key` (`timestamp` defaults to now): the hex headers,
    /// or `Amanat-Auth` with `compact`.
    public static func signedHeaders(
        key: SigningKeyPair, method: String, path: String, body: [UInt8], timestamp: Int64? = nil,
        nonce: [UInt8] = Sodium.randomBytes(16), device: SigningKeyPair? = nil, compact: Bool = false
    ) -> [(String, String)] {
        RelayWire.signatureHeaders(
            key: key, method: method, pathAndQuery: path, body: body,
            timestamp: timestamp ?? Int64(Date().timeIntervalSince1970), nonce: nonce, device: device,
            compact: compact)
    }

    /// Sends a request signed with `key` (and `device`, when given).
    public func sendSigned(
        _ method: String, _ path: String, key: SigningKeyPair, body: [UInt8] = [], device: SigningKeyPair? = nil
    ) async throws -> Answer {
        let headers = Self.signedHeaders(key: key, method: method, path: path, body: body, device: device)
        return try await send(method, path, headers: headers, body: method == "GET" ? nil : body)
    }
}
