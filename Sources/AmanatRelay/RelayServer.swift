import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatWire
import Foundation
import Hummingbird
import Logging
import NIOCore

/// An error the relay answers with: a status and one sentence, sent as `{"error": "…"}`.
struct RelayHTTPError: Error {
    var status: HTTPResponse.Status
    var message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The HTTP relay (Protocol/http-api.md): stores members' envelopes per vault, verified but never decrypted.
///
/// Built the Hummingbird way: ``RelayAuthentication`` is a middleware that proves a signed request and puts the
/// authenticated vault into the ``RelayRequestContext``; each route has one small handler; every answer is counted
/// by ``MetricsMiddleware`` and every failure answered by ``ErrorMiddleware``; handlers log through the request's
/// logger (its request id and the vault's first 8 hex digits, never contents).
///
/// ```swift
/// let relay = RelayServer(storage: try SQLiteRelayStorage(directory: dataDir), logger: logger)
/// let running = try await RunningRelay.start(relay)
/// print(running.port)
/// await running.stop()
/// ```
public struct RelayServer: Sendable {
    /// Where envelopes and chunks are kept.
    public let store: any RelayStorage
    /// The relay's log (request summaries only, never payloads).
    public let logger: Logger
    /// Unix time in seconds; replaceable in tests.
    public var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    /// The code a new vault's registration must present (canonical form, ``RelayWire/canonicalRegistrationCode(_:)``),
    /// or nil to register any vault on first contact (trust on first use, http-api.md §3).
    public let registrationCode: String?
    /// A connection on which the relay waits this long for data that does not come is closed (idle keep-alive
    /// connections, half-sent requests; ``ConnectionGuard``).
    public var idleTimeout: Duration = .seconds(30)
    /// A request body must arrive at least this fast on average (bytes per second), after ``bodyGrace``; the
    /// connection of a slower upload is closed.
    public var minimumBodyRate = 1024
    /// The time every request body gets before ``minimumBodyRate`` counts.
    public var bodyGrace: Duration = .seconds(30)
    /// The most connections one client address may hold open at once; a connection above it is closed at once,
    /// before anything is read (Protocol/http-api.md §7). A team behind one NAT shares an address, and each of its
    /// syncing devices uses one connection at a time.
    public var maxConnectionsPerAddress = Self.defaultMaxConnectionsPerAddress
    /// The default of ``maxConnectionsPerAddress``.
    public static let defaultMaxConnectionsPerAddress = 32
    /// The most bytes of envelopes, and apart from them of attachment chunks, one vault may store (`amanat serve
    /// --quota`); nil: no limit. A push or a chunk that would pass it is answered 507 (a push of coordinators' changes
    /// only is always stored: ``EnvelopeQuota``). The storage decides it (for PostgreSQL, in the database).
    public var quota: UInt64?
    /// The operator's metrics (`GET /metrics`).
    public let metrics = RelayMetrics()

    /// Creates a relay over a storage; with `registrationCode`, only requests presenting it register new vaults.
    public init(storage: any RelayStorage, logger: Logger, registrationCode: String? = nil) {
        self.store = storage
        self.logger = logger
        self.registrationCode = registrationCode.map(RelayWire.canonicalRegistrationCode)
    }

    /// Creates a relay over SQLite files (``SQLiteRelayStorage``).
    public init(store: RelayStore, logger: Logger, registrationCode: String? = nil) {
        self.init(storage: SQLiteRelayStorage(store), logger: logger, registrationCode: registrationCode)
    }

    /// The router, built from ``RelayRoute/allCases``: the unauthenticated routes, registration behind the
    /// signature check, and every other route behind the signature, registered-key, nonce and device checks.
    public func buildRouter() -> Router<RelayRequestContext> {
        let router = Router(context: RelayRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: ErrorMiddleware(logger: logger))
        let registration = router.group().add(middleware: RelayAuthentication(server: self, registered: false))
        let members = router.group().add(middleware: RelayAuthentication(server: self, registered: true))
        let vector = router.group().add(
            middleware: RelayAuthentication(server: self, registered: true, readsVector: true))
        for route in RelayRoute.allCases {
            let handler = handler(route)
            let path = RouterPath(route.routerPath)
            switch route {
            case .health, .metrics: router.on(path, method: route.httpMethod, use: handler)
            case .register: registration.on(path, method: route.httpMethod, use: handler)
            case .vector: vector.on(path, method: route.httpMethod, use: handler)
            default: members.on(path, method: route.httpMethod, use: handler)
            }
        }
        return router
    }

    /// A Hummingbird application serving the relay on `host:port`; `onRunning` receives the bound port.
    public func application(
        host: String, port: Int, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let limiter = ConnectionLimiter(limit: maxConnectionsPerAddress)
        return Application(
            router: buildRouter(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [
                        ConnectionGuard(
                            idleTimeout: Self.timeAmount(idleTimeout), minimumRate: minimumBodyRate,
                            grace: Self.timeAmount(bodyGrace), limiter: limiter, logger: logger)
                    ],
                    // The guard applies the idle timeout: Hummingbird's would also count time in which the relay
                    // itself is too busy to read.
                    idleTimeout: nil)),
            configuration: .init(address: .hostname(host, port: port), serverName: "amanat-relay"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    // MARK: Handlers

    typealias Handler = @Sendable (Request, RelayRequestContext) async throws -> Response

    private func handler(_ route: RelayRoute) -> Handler {
        switch route {
        case .health: { _, _ in Self.json(.ok, #"{"status":"ok","protocol":1}"#) }
        case .metrics: { _, _ in try await metricsText() }
        case .register: { _, context in try await register(context) }
        case .vector: { _, context in try await vector(context) }
        case .fetchEnvelopes: { request, context in try await fetchEnvelopes(request, context) }
        case .pushEnvelopes: { _, context in try await pushEnvelopes(context) }
        case .exchange: { _, context in try await exchange(context) }
        case .heldChunks: { _, context in try await heldChunks(context) }
        case .fetchChunk: { _, context in try await fetchChunk(context) }
        case .storeChunk: { _, context in try await storeChunk(context) }
        case .discardDamagedChunk: { _, context in try await discardDamagedChunk(context) }
        case .listWithoutContent: { _, context in try await listWithoutContent(context) }
        case .putBackContent: { _, context in try await putBackContent(context) }
        }
    }

    /// `GET /metrics`: Prometheus text, with the storage's totals read now.
    private func metricsText() async throws -> Response {
        let text = metrics.render(try await store.totals())
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    /// `PUT /v1/vaults/{vault}`: registers the vault's relay key; with a registration code, only when the body
    /// presents it.
    private func register(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        if let registrationCode, try await store.registeredKey(of: request.vaultID) == nil,
            !Sodium.constantTimeEquals(Array(registrationCode.utf8), request.body)
        {
            throw RelayHTTPError(
                .forbidden,
                request.body.isEmpty
                    ? "This relay registers a new vault only with its registration code; ask the relay's operator for it."
                    : "The registration code is wrong; ask the relay's operator for the right one.")
        }
        let created: Bool
        do {
            created = try await store.register(vaultID: request.vaultID, key: request.key, now: now())
        } catch let error as RelayStoreError where error.code == .keyMismatch {
            throw RelayHTTPError(.forbidden, error.message)
        }
        try await checkNonce(request.nonce, timestamp: request.timestamp, vaultID: request.vaultID, now: now())
        if created { context.logger.notice("registered vault") }
        return Self.json(created ? .created : .ok, created ? #"{"registered":true}"# : #"{"registered":false}"#)
    }

    /// `GET …/vector`.
    private func vector(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        try Self.expectEmpty(request.body)
        let vector: [DeviceID: ChainHead]
        if let read = context.vector {
            vector = read
        } else {
            vector = try await store.versionVector(vaultID: request.vaultID)
        }
        var response = Self.binary(RelayWire.encodeVector(vector))
        if context.mayHoldCopiesWithoutContent {
            let stripped = try await store.copiesWithoutContent(
                vaultID: request.vaultID, limit: RelayWire.withoutContentLimit)
            if !stripped.isEmpty { response.headers[.amanatWithoutContent] = "\(stripped.count)" }
        }
        return response
    }

    /// `GET …/without-content`: the copies held without content that no purge names, as an envelope list.
    private func listWithoutContent(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        try Self.expectEmpty(request.body)
        let bodies = try await store.copiesWithoutContent(
            vaultID: request.vaultID, limit: RelayWire.withoutContentLimit)
        return Self.binary(RelayWire.encodeEnvelopeList(bodies))
    }

    /// `POST …/without-content`: full copies that put back the content of copies held without it.
    private func putBackContent(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let envelopes = try Self.decode { try RelayWire.decodeEnvelopeList(request.body) }
        guard envelopes.count <= RelayWire.withoutContentLimit else {
            throw RelayHTTPError(
                .badRequest, "At most \(RelayWire.withoutContentLimit) copies are put back in one request.")
        }
        let restored = try await store.putBackContent(vaultID: request.vaultID, envelopes: envelopes, quota: quota)
        if restored > 0 { context.logger.info("content put back", metadata: ["envelopes": "\(restored)"]) }
        return Self.json(.ok, #"{"restored":\#(restored)}"#)
    }

    /// `GET …/envelopes?author=…&after=…&limit=…`.
    private func fetchEnvelopes(_ http: Request, _ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        try Self.expectEmpty(request.body)
        let query = http.uri.queryParameters
        guard let authorHex = query.get("author"), let authorBytes = Hex.decode(authorHex), authorBytes.count == 32,
            let author = try? DeviceID(authorBytes), let after = query.get("after", as: UInt64.self),
            after <= UInt64(Int64.max)
        else {
            throw RelayHTTPError(.badRequest, "The query must name author (64 hex digits) and after (a number).")
        }
        let limit = min(query.get("limit", as: Int.self) ?? 1000, RelayWire.maxEnvelopesPerMessage)
        guard limit > 0 else { throw RelayHTTPError(.badRequest, "The limit must be a positive number.") }
        let bodies = try await store.envelopes(
            vaultID: request.vaultID, author: author, after: after, limit: limit, byteBudget: RelayWire.batchBytes)
        return Self.binary(RelayWire.encodeEnvelopeList(bodies))
    }

    /// `POST …/envelopes`.
    private func pushEnvelopes(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let envelopes = try Self.decode { try RelayWire.decodeEnvelopeList(request.body) }
        let result = try await storeCounted(envelopes, request, context)
        return Self.json(.ok, #"{"stored":\#(result.stored),"duplicates":\#(result.duplicates)}"#)
    }

    /// `POST …/exchange`: stores a batch, answers with what the replica lacks.
    private func exchange(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let (exchange, pushed) = try Self.decode { try RelayWire.ExchangeRequest.decode(request.body) }
        let result = try await storeCounted(pushed, request, context)
        let limit = min(max(Int(exchange.limit), 1), RelayWire.maxEnvelopesPerMessage)
        let missing = try await store.missing(
            vaultID: request.vaultID, for: exchange.vector, limit: limit, byteBudget: RelayWire.batchBytes)
        if result.stored > 0 || !missing.bodies.isEmpty {
            context.logger.info(
                "exchange",
                metadata: [
                    "stored": "\(result.stored)", "sent": "\(missing.bodies.count)",
                    "remaining": "\(missing.remaining)",
                ])
        }
        let response = RelayWire.ExchangeResponse(
            stored: UInt32(result.stored), remaining: missing.remaining, diverged: missing.diverged,
            envelopes: missing.bodies)
        return Self.binary(response.encoded())
    }

    /// Stores pushed envelopes and counts what was new in the metrics.
    private func storeCounted(_ envelopes: [Envelope], _ request: AuthenticatedRequest, _ context: RelayRequestContext)
        async throws -> RelayStoreResult
    {
        let result = try await store.store(vaultID: request.vaultID, envelopes: envelopes, quota: quota)
        if result.stored > 0 {
            metrics.stored(envelopes: result.stored, bytes: result.bytes)
            context.logger.info("stored", metadata: ["envelopes": "\(result.stored)"])
        }
        return result
    }

    func checkNonce(_ nonce: [UInt8], timestamp: Int64, vaultID: [UInt8], now: Int64) async throws {
        let fresh = try await store.useNonce(
            vaultID: vaultID, nonce: nonce, expires: Self.nonceExpiry(timestamp: timestamp, now: now), now: now)
        guard fresh else { throw Self.replayed }
    }

    /// Until when a nonce is kept: past it, a request carrying it is outside the timestamp window anyway.
    static func nonceExpiry(timestamp: Int64, now: Int64) -> Int64 {
        max(timestamp, now) + RelayWire.timestampWindow + 1
    }

    static let replayed = RelayHTTPError(
        .unauthorized, "This request was already received (a replayed nonce); it was ignored.")

    static let tooLarge = RelayHTTPError(
        .contentTooLarge,
        "The request body is larger than the relay's limit of \(RelayWire.maxRequestBytes / 1_048_576) MiB.")

    static func decode<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CoreError {
            throw RelayHTTPError(.badRequest, "The body is malformed: \(error.message)")
        }
    }

    static func expectEmpty(_ body: [UInt8]) throws {
        guard body.isEmpty else { throw RelayHTTPError(.badRequest, "This request takes no body.") }
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func binary(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: RelayWire.binaryType],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Turns every failure into a JSON error answer with one sentence, and logs it through the request's logger without
/// payloads.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let status: HTTPResponse.Status
        let message: String
        do {
            return try await next(request, context)
        } catch let error as RelayHTTPError {
            (status, message) = (error.status, error.message)
        } catch let error as RelayStoreError {
            switch error.code {
            case .unknownVault: status = .notFound
            case .keyMismatch: status = .forbidden
            case .fork: status = .conflict
            case .refused: status = .unprocessableContent
            case .full, .overQuota: status = .init(code: 507, reasonPhrase: "Insufficient Storage")
            }
            message = error.message
        } catch let error as StoreError {
            status = error.code == .busy ? .serviceUnavailable : .internalServerError
            message = "The relay could not use its storage; try again later."
            context.logger.error("storage failure", metadata: ["error": .escaped(error.message)])
        } catch let error as HTTPResponseError {
            status = error.status
            message =
                switch error.status {
                case .notFound: "There is no such route on this relay."
                case .contentTooLarge: "The request body is larger than the relay's limit."
                default: "The request was refused (\(error.status.code))."
                }
        } catch {
            status = .internalServerError
            message = "The relay failed to answer; see its log."
            context.logger.error("unexpected failure", metadata: ["error": "\(type(of: error))"])
        }
        let level: Logger.Level = status.code >= 500 ? .error : .notice
        context.logger.log(
            level: level, "refused",
            metadata: [
                "method": .escaped(request.method.rawValue),
                "path": .escaped(Self.loggedPath(request.uri.path.prefix(160))),
                "status": "\(status.code)", "reason": .escaped(message),
            ])
        return RelayServer.json(status, Self.errorJSON(message))
    }

    /// A request's path for the log, with every run of 16 or more hex digits (a vault id, a chunk address) cut to
    /// its first 8 and `…`, as the vault's prefix is on every line: the log says which vault without holding its id.
    static func loggedPath(_ path: Substring) -> String {
        var out = ""
        var run = ""
        func flush() {
            out += run.count >= 16 ? run.prefix(8) + "…" : run
            run = ""
        }
        for character in path {
            if character.isHexDigit && character.isASCII {
                run.append(character)
            } else {
                flush()
                out.append(character)
            }
        }
        flush()
        return out
    }

    static func errorJSON(_ message: String) -> String {
        var escaped = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20: escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return #"{"error":"\#(escaped)"}"#
    }
}

extension Logger.MetadataValue {
    /// Text that came with a request (a path, a header, an id, an error's text), with control and bidirectional
    /// characters escaped as they are on a terminal (``TerminalText``): a log line is read on a terminal too, and a
    /// client must not be able to forge or hide lines in the operator's log.
    static func escaped(_ text: some StringProtocol) -> Self {
        .string(TerminalText.escape(String(text)))
    }
}

extension RelayRoute {
    var httpMethod: HTTPRequest.Method {
        switch method {
        case "PUT": .put
        case "POST": .post
        default: .get
        }
    }
}
