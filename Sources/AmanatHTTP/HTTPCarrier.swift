import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatWire
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix

/// A failure talking to a relay, with a stable code the command line maps to an exit status.
public struct RelayClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// The relay cannot be reached (connection refused, reset or timed out), even after retries.
        case unavailable
        /// The relay refused the request's authentication (signature, clock or replay): 401.
        case unauthorized
        /// The vault is registered on the relay with another key: 403.
        case forbidden
        /// The relay holds a different chain for a device whose changes were pushed: 409.
        case fork
        /// The relay refused pushed envelopes as invalid: 422.
        case refused
        /// A request was larger than the relay accepts: 413.
        case tooLarge
        /// The relay's answer is not a valid answer of this protocol, or the relay failed (5xx).
        case badResponse
        /// The relay's URL is not one this client can use.
        case badURL
    }

    /// The kind of failure.
    public var code: Code
    /// One sentence that says what to do.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// An HTTP relay (`amanat serve`) as a carrier, over AsyncHTTPClient (Protocol/http-api.md).
///
/// Requests are signed with the vault's relay key, so the relay serves only members. The first contact registers
/// the vault (trust on first use). Connection failures, resets and 502/503/504 answers are retried with backoff;
/// every attempt is signed anew. Call ``shutdown()`` when done, or use ``with(url:vaultID:key:options:_:)``.
///
/// ```swift
/// let report = try await HTTPCarrier.with(url: "http://192.168.1.20:8080", vaultID: vault.vaultID,
///                                         key: vault.relaySigningKey) { carrier in
///     try await ExchangeSession(vault: vault, carrier: carrier).run()
/// }
/// ```
public struct HTTPCarrier: ExchangeCarrier {
    /// Timeouts and retries.
    public struct Options: Sendable {
        /// How long to wait for a TCP connection.
        public var connectTimeout: Duration = .seconds(10)
        /// How long one request may take, from sending to the end of the answer.
        public var requestTimeout: Duration = .seconds(120)
        /// Attempts per request on connection errors (1 = no retry).
        public var attempts = 5
        /// The first retry's delay; each later one doubles, up to `maxBackoff`.
        public var initialBackoff: Duration = .milliseconds(250)
        /// The longest delay between attempts.
        public var maxBackoff: Duration = .seconds(4)
        /// Unix time in seconds for request timestamps; replaceable in tests.
        public var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
        /// The relay's registration code, presented when this sync registers the vault (http-api.md §3).
        public var registrationCode: String?
        /// Told before each wait between attempts: why the last one failed, and how long the wait is.
        public var onRetry: (@Sendable (_ reason: String, _ delay: Duration) -> Void)?

        /// The defaults.
        public init() {}
    }

    /// The relay's base URL, without a trailing slash.
    public let baseURL: String
    /// The vault synced.
    public let vaultID: [UInt8]
    /// The vault's relay key (``Vault/relaySigningKey``).
    public let key: SigningKeyPair
    /// This device's signing key: requests name the device, so a relay can refuse a revoked one.
    public let device: SigningKeyPair?
    /// Timeouts and retries.
    public let options: Options
    private let client: HTTPClient
    private let ownsClient: Bool
    private let pathPrefix: String
    /// How many copies without content the last vector answer announced (http-api.md §11).
    private let announced = Shared(0)
    /// Whether requests carry the hex headers: only after a relay refused the compact `Amanat-Auth` (http-api.md §3).
    private let hexHeaders = Shared(false)

    /// A value shared by the copies of this carrier: the count a vector answer's `Amanat-Without-Content` header gave,
    /// kept for the sync that read it; the authentication form.
    private final class Shared<Value: Sendable>: @unchecked Sendable {
        // @unchecked Sendable: `stored` is only read and written under `lock`.
        private let lock = NSLock()
        private var stored: Value
        init(_ value: Value) { stored = value }
        var value: Value {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }

    /// Creates a carrier for the relay at `url` (`http://host:port` or `https://…`).
    public init(
        url: String, vaultID: [UInt8], key: SigningKeyPair, device: SigningKeyPair? = nil, options: Options = Options(),
        client: HTTPClient? = nil
    )
        throws
    {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        guard let parsed = URL(string: base), let scheme = parsed.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            let host = parsed.host, !host.isEmpty, parsed.query == nil, parsed.fragment == nil
        else {
            throw RelayClientError(.badURL, "\(url) is not a relay URL; give one like http://192.168.1.20:8080.")
        }
        baseURL = base
        pathPrefix = parsed.path
        self.vaultID = vaultID
        self.key = key
        self.device = device
        self.options = options
        if let client {
            self.client = client
            ownsClient = false
        } else {
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .nanoseconds(Int64(options.connectTimeout.nanoseconds))))
            // Shorter than the relay's idle timeout (30 s), so an idle connection is never reused just as the relay closes it.
            configuration.connectionPool = .init(idleTimeout: .seconds(10))
            // Fail fast on a refused connection: the carrier retries with its own backoff and says so clearly.
            configuration.connectionPool.retryConnectionEstablishment = false
            self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            ownsClient = true
        }
    }

    /// Runs `body` with a carrier and shuts its HTTP client down afterwards, whatever happens.
    public static func with<T>(
        url: String, vaultID: [UInt8], key: SigningKeyPair, device: SigningKeyPair? = nil,
        options: Options = Options(), _ body: (HTTPCarrier) async throws -> T
    ) async throws -> T {
        let carrier = try HTTPCarrier(url: url, vaultID: vaultID, key: key, device: device, options: options)
        do {
            let result = try await body(carrier)
            await carrier.shutdown()
            return result
        } catch {
            await carrier.shutdown()
            throw error
        }
    }

    /// Closes the HTTP client's connections (only if the carrier created it).
    public func shutdown() async {
        if ownsClient { try? await client.shutdown() }
    }

    public var name: String { baseURL }
    public var canWrite: Bool { true }

    var vaultPath: String { "/v1/vaults/\(Hex.encode(vaultID))" }

    // MARK: Carrier

    public func versionVector() async throws -> [DeviceID: ChainHead] {
        var count = 0
        let body = try await registeringIfNeeded {
            let answer = try await exchangeAnswer("GET", vaultPath + "/vector", body: [])
            count = try withoutContentCount(answer.withoutContent)
            return answer.body
        }
        let vector = try decode { try RelayWire.decodeVector(body) }
        announced.value = count
        return vector
    }

    /// The vector answer's `Amanat-Without-Content` (0 when absent); anything but a number from 1 to
    /// ``RelayWire/withoutContentLimit`` is refused.
    private func withoutContentCount(_ values: [String]) throws -> Int {
        guard let value = values.first else { return 0 }
        guard values.count == 1, value.count <= 3, value.allSatisfy({ $0 >= "0" && $0 <= "9" }), let count = Int(value),
            (1...RelayWire.withoutContentLimit).contains(count)
        else {
            throw RelayClientError(
                .badResponse,
                "The relay at \(baseURL) announced copies without content in a form this client does not understand.")
        }
        return count
    }

    nonisolated(nonsending) public func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool)
        async throws -> [Envelope]
    {
        guard announced.value > 0, limit > 0 else { return [] }
        let body = try await exchangeAnswer("GET", vaultPath + "/without-content", body: [], extra: true).body
        let list = try decode { try RelayWire.decodeEnvelopeList(body) }
        // Each listed once: a relay that repeats one would have this device load its full copy again and again.
        let distinct = Set(list.map { ChainPlace(author: $0.header.author, seq: $0.header.seq) })
        guard list.count <= RelayWire.withoutContentLimit, distinct.count == list.count,
            list.allSatisfy({ $0.isPurged && $0.header.vaultID == vaultID })
        else {
            throw RelayClientError(
                .badResponse, "The relay at \(baseURL) listed copies without content that are not such copies.")
        }
        return Array(try list.filter(wanted).prefix(limit))
    }

    /// The answer to a push (`{"stored":N,"duplicates":N}`).
    private struct PushAnswer: Decodable {
        var stored: Int
    }

    /// The answer to a put-back (`{"restored":N}`).
    private struct PutBackAnswer: Decodable {
        var restored: Int
    }

    /// A relay's JSON answer, decoded with JSONDecoder rather than read through JSONSerialization, where `true`
    /// passes for the number 1; anything else is an answer this client does not understand.
    private func decodeAnswer<Answer: Decodable>(_ type: Answer.Type, _ answer: [UInt8]) throws -> Answer {
        guard let decoded = try? JSONDecoder().decode(type, from: Data(answer)) else { throw notUnderstood }
        return decoded
    }

    /// What an answer this client cannot use is (undecodable, or a count out of range).
    private var notUnderstood: RelayClientError {
        RelayClientError(.badResponse, "The relay at \(baseURL) sent an answer this client does not understand.")
    }

    /// An envelope's place in its author's chain.
    private struct ChainPlace: Hashable {
        var author: DeviceID
        var seq: UInt64
    }

    public func putBackContent(_ envelopes: [Envelope]) async throws -> Int {
        var restored = 0
        for chunk in Self.requests(envelopes) {
            let answer = try await exchangeAnswer(
                "POST", vaultPath + "/without-content", body: RelayWire.encodeEnvelopeList(chunk), extra: true
            ).body
            let count = try decodeAnswer(PutBackAnswer.self, answer).restored
            guard count >= 0, count <= chunk.count else { throw notUnderstood }
            restored += count
        }
        return restored
    }

    /// Wire forms in requests of at most ``RelayWire/batchBytes`` (one envelope always goes) and
    /// ``RelayWire/maxEnvelopesPerMessage`` envelopes.
    static func requests(_ envelopes: [Envelope]) -> [[[UInt8]]] {
        var requests: [[[UInt8]]] = []
        var chunk: [[UInt8]] = []
        var bytes = 0
        for envelope in envelopes {
            let wire = envelope.encoded()
            if !chunk.isEmpty
                && (bytes + wire.count > RelayWire.batchBytes || chunk.count == RelayWire.maxEnvelopesPerMessage)
            {
                requests.append(chunk)
                chunk = []
                bytes = 0
            }
            chunk.append(wire)
            bytes += wire.count
        }
        if !chunk.isEmpty { requests.append(chunk) }
        return requests
    }

    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        let query = "?author=\(author.hex)&after=\(seq)&limit=\(max(1, min(limit, RelayWire.maxEnvelopesPerMessage)))"
        let body = try await registeringIfNeeded { try await send("GET", vaultPath + "/envelopes" + query) }
        let list = try decode { try RelayWire.decodeEnvelopeList(body) }
        guard list.allSatisfy({ $0.header.author == author && $0.header.seq > seq }) else {
            throw RelayClientError(
                .badResponse, "The relay at \(baseURL) answered with envelopes that were not asked for.")
        }
        return list
    }

    public func push(_ envelopes: [Envelope]) async throws -> Int {
        var stored = 0
        for chunk in Self.requests(envelopes) {
            let body = RelayWire.encodeEnvelopeList(chunk)
            let answer = try await registeringIfNeeded { try await send("POST", vaultPath + "/envelopes", body: body) }
            stored += try decodeAnswer(PushAnswer.self, answer).stored
        }
        return stored
    }

    // MARK: ExchangeCarrier

    public func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult {
        let request = RelayWire.ExchangeRequest(
            vector: vector, envelopes: push.map { $0.encoded() },
            limit: UInt32(max(1, min(limit, RelayWire.maxEnvelopesPerMessage))))
        let body = request.encoded()
        let answer = try await registeringIfNeeded { try await send("POST", vaultPath + "/exchange", body: body) }
        let (response, envelopes) = try decode { try RelayWire.ExchangeResponse.decode(answer) }
        return ExchangeResult(
            stored: Int(response.stored), remaining: response.remaining, diverged: response.diverged,
            envelopes: envelopes)
    }

    /// Registers the vault's relay key (trust on first use): true if the relay registered it now.
    @discardableResult
    public func register() async throws -> Bool {
        let body = RelayWire.registrationBody(code: options.registrationCode)
        do {
            let (status, _) = try await exchangeRaw("PUT", vaultPath, body: body)
            return status == 201
        } catch is UnknownVault {
            // A relay takes a new vault at this path; whatever answered 404 here is not one.
            throw RelayClientError(
                .badResponse,
                "\(baseURL) is not an Amanat relay (it answered 404 where a relay takes a new vault); check the address: a relay is http://HOST:PORT, with no path."
            )
        }
    }

    // MARK: Transport

    /// Runs `request`; if the relay does not know the vault (404), registers it and runs `request` once more.
    func registeringIfNeeded(_ request: () async throws -> [UInt8]) async throws -> [UInt8] {
        do {
            return try await request()
        } catch is UnknownVault {
            do {
                try await register()
            } catch let error as RelayClientError where error.code == .forbidden {
                // The relay does not hold the vault (404), so a 403 here refuses the registration itself.
                throw RelayClientError(
                    .forbidden,
                    options.registrationCode == nil
                        ? "The relay at \(baseURL) needs a registration code to take a new vault: ask its operator, then sync with --registration-code CODE."
                        : "The relay at \(baseURL) refused the registration code: check it with the relay's operator.")
            }
        }
        do {
            return try await request()
        } catch is UnknownVault {
            throw RelayClientError(
                .badResponse, "The relay at \(baseURL) registered the vault but then did not find it.")
        }
    }

    private struct UnknownVault: Error {}

    /// Sends a signed request; returns the body of a 2xx answer or throws the relay's refusal.
    private func send(_ method: String, _ path: String, body: [UInt8] = []) async throws -> [UInt8] {
        let (_, answer) = try await exchangeRaw(method, path, body: body)
        return answer
    }

    /// Sends a signed request with retries; returns the status and body of a 2xx answer.
    func exchangeRaw(_ method: String, _ path: String, body: [UInt8]) async throws -> (Int, [UInt8]) {
        let answer = try await exchangeAnswer(method, path, body: body)
        return (answer.status, answer.body)
    }

    /// A 2xx answer: its status, body and `Amanat-Without-Content` header values.
    struct Answer {
        var status: Int
        var body: [UInt8]
        var withoutContent: [String]
    }

    /// Sends a signed request with retries; returns the 2xx answer.
    /// `extra`: a request that is an extra to the sync (copies without content, http-api.md §11) is tried once, with
    /// at most 30 s for its answer: a relay that stalls it cannot hold the sync for the retries' ten minutes.
    func exchangeAnswer(_ method: String, _ path: String, body: [UInt8], extra: Bool = false) async throws -> Answer {
        var delay = options.initialBackoff
        var attempt = 1
        while true {
            let compact = !hexHeaders.value
            do {
                return try await attemptOnce(
                    method, path, body: body, compact: compact,
                    timeout: extra ? min(options.requestTimeout, .seconds(30)) : nil)
            } catch let error as RelayClientError
                where compact && error.code == .unauthorized && error.message.contains(Self.notSigned)
            {
                // A relay older than `Amanat-Auth` (or a proxy that drops it) finds the request unsigned
                // (http-api.md §3): this carrier signs with the hex headers from now on, and the request goes again
                // at once (the relay refused it before reading it). Any other refusal is final, as is this one
                // when the hex form gets it too.
                hexHeaders.value = true
            } catch let error as Transient {
                guard attempt < (extra ? 1 : max(1, options.attempts)) else {
                    throw RelayClientError(
                        .unavailable,
                        error.answered
                            ? "The relay at \(baseURL) runs but could not serve the sync (\(error.reason)); try again later, or ask its operator."
                            : "The relay at \(baseURL) cannot be reached (\(error.reason)); check that `amanat serve` is running there and try again."
                    )
                }
                options.onRetry?(error.reason, delay)
                try await Task.sleep(for: delay)
                delay = min(delay * 2, options.maxBackoff)
                attempt += 1
            }
        }
    }

    /// A failure worth retrying: no answer, or a relay that is restarting or overloaded.
    private struct Transient: Error {
        var reason: String
        /// Whether the relay answered (502, 503, 504): it runs, but could not serve the request.
        var answered = false
    }

    /// The start of the sentence a relay answers with 401 to a request without the hex headers; from a relay older
    /// than `Amanat-Auth`, the answer to a compact one.
    static let notSigned = "The request is not signed"

    private func attemptOnce(
        _ method: String, _ path: String, body: [UInt8], compact: Bool, timeout: Duration? = nil
    ) async throws -> Answer {
        let signedPath = pathPrefix + path
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        for (name, value) in RelayWire.signatureHeaders(
            key: key, method: method, pathAndQuery: signedPath, body: body, timestamp: options.now(), device: device,
            compact: compact)
        {
            request.headers.add(name: name, value: value)
        }
        if !body.isEmpty || method == "POST" || method == "PUT" {
            request.headers.add(name: "content-type", value: RelayWire.binaryType)
            request.body = .bytes(body)
        }
        let status: Int
        let answer: [UInt8]
        let withoutContent: [String]
        do {
            let response = try await client.execute(
                request, timeout: .nanoseconds(Int64((timeout ?? options.requestTimeout).nanoseconds)))
            status = Int(response.status.code)
            withoutContent = response.headers[RelayWire.Header.withoutContent]
            var buffer = try await response.body.collect(upTo: RelayWire.maxResponseBytes)
            answer = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch is NIOTooManyBytesError {
            throw RelayClientError(
                .badResponse, "The relay at \(baseURL) sent an answer larger than this client accepts.")
        } catch let error as CancellationError {
            throw error
        } catch {
            throw Transient(reason: Self.describe(error))
        }
        switch status {
        case 200..<300:
            return Answer(status: status, body: answer, withoutContent: withoutContent)
        case 404 where path.contains("/chunks/"):
            // The relay does not hold that chunk: an answer, not a failure.
            return Answer(status: status, body: [], withoutContent: withoutContent)
        case 507:
            throw CarrierFullError(
                message: Self.errorMessage(answer) ?? "The relay at \(baseURL) has no room left for this vault.")
        case 404 where path.hasPrefix("/v1/vaults/"):
            throw UnknownVault()
        case 502, 503, 504:
            // The relay's own sentence, when it gave one (503: it cannot use its storage now), said as it is.
            let said = Self.errorMessage(answer).map { ": \(TerminalText.escape($0))" } ?? ""
            // Only a 503 is the relay's own "running, but cannot serve now"; a 502 or 504 usually comes from a proxy
            // in front of a relay that is down.
            throw Transient(reason: "it answered \(status)\(said)", answered: status == 503)
        default:
            let code: RelayClientError.Code =
                switch status {
                case 401: .unauthorized
                case 403: .forbidden
                case 409: .fork
                case 413: .tooLarge
                case 422: .refused
                default: .badResponse
                }
            if let message = Self.errorMessage(answer) {
                throw RelayClientError(code, "The relay at \(baseURL) refused: \(message)")
            }
            throw RelayClientError(
                code,
                (500..<600).contains(status)
                    ? "The relay at \(baseURL) failed (it answered \(status)); try again later, or ask its operator."
                    : "\(baseURL) answered \(status), which an Amanat relay does not: check that the address is an Amanat relay (http://HOST:PORT)."
            )
        }
    }

    private static func errorMessage(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let message = object["error"] as? String, !message.isEmpty
        else { return nil }
        return String(message.prefix(300))
    }

    /// What went wrong with the network, classified by the error's type (never by its text).
    static func describe(_ error: Error) -> String {
        switch error {
        case let e as HTTPClientError:
            if [.connectTimeout, .deadlineExceeded, .readTimeout, .writeTimeout, .tlsHandshakeTimeout].contains(e) {
                return "timed out"
            }
            return e == .remoteConnectionClosed ? "connection lost" : "network error"
        case let e as NIOConnectionError:
            if e.connectionErrors.isEmpty, e.dnsAError != nil || e.dnsAAAAError != nil { return "unknown host" }
            return e.connectionErrors.lazy.map { describe($0.error) }.first { $0 != "network error" }
                ?? "network error"
        case let e as IOError:
            switch e.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET, EPIPE, ECONNABORTED: return "connection lost"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH, ENETUNREACH: return "no route to the host"
            default: return "network error"
            }
        case let e as ChannelError:
            switch e {
            case .connectTimeout: return "timed out"
            case .ioOnClosedChannel, .eof, .alreadyClosed, .outputClosed, .inputClosed: return "connection lost"
            default: return "network error"
            }
        default:
            return "network error"
        }
    }

    private func decode<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CoreError {
            // One sentence: the reader's own sentence becomes the reason in brackets.
            var reason = error.message
            if reason.hasSuffix(".") { reason.removeLast() }
            if let first = reason.first { reason = first.lowercased() + reason.dropFirst() }
            throw RelayClientError(.badResponse, "The relay at \(baseURL) sent a malformed answer (\(reason)).")
        }
    }
}

extension Duration {
    fileprivate var nanoseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }
}
