import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
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
/// ```swift
/// let relay = RelayServer(storage: try SQLiteRelayStorage(directory: dataDir), logger: logger)
/// let running = try await relay.start(host: "127.0.0.1", port: 0)
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
    /// The most bytes of attachment chunks one vault may store (`amanat serve --quota`); nil: no limit. A chunk
    /// that would pass it is answered 507.
    public var chunkQuota: UInt64?

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

    /// The router, built from ``RelayRoute/allCases``.
    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware(logger: logger))
        for route in RelayRoute.allCases {
            router.on(RouterPath(route.routerPath), method: route.httpMethod) { request, context in
                try await handle(route, request: request, context: context)
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

    // MARK: Handling

    private func handle(_ route: RelayRoute, request: Request, context: BasicRequestContext) async throws -> Response {
        if route == .health {
            return Self.json(.ok, #"{"status":"ok","protocol":1}"#)
        }
        guard let vaultHex = context.parameters.get("vault"), vaultHex.count == 32, let vaultID = Hex.decode(vaultHex)
        else {
            throw RelayHTTPError(.badRequest, "The vault id in the path must be 32 hex digits.")
        }
        // Cheap checks first, then the body, then the signature over it.
        let auth = try Authentication(headers: request.headers)
        let now = now()
        guard abs(auth.timestamp - now) <= RelayWire.timestampWindow else {
            throw RelayHTTPError(
                .unauthorized,
                "The request's timestamp is more than 5 minutes away from the relay's clock; check the clock.")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > RelayWire.maxRequestBytes {
            throw Self.tooLarge
        }
        var buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: RelayWire.maxRequestBytes)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw Self.tooLarge
        }
        let body = buffer.readBytes(length: buffer.readableBytes) ?? []
        let message = RelayWire.canonicalRequest(
            method: request.method.rawValue, pathAndQuery: request.head.path ?? "", timestamp: auth.timestamp,
            nonce: auth.nonceHex, body: body)
        guard SigningKeyPair.verify(auth.signature, of: message, publicKey: auth.key) else {
            throw RelayHTTPError(
                .unauthorized,
                "The request's signature does not verify for this method, path, timestamp, nonce and body.")
        }
        if let device = auth.device, let deviceSignature = auth.deviceSignature,
            !SigningKeyPair.verify(deviceSignature, of: message, publicKey: device.bytes)
        {
            throw RelayHTTPError(.unauthorized, "The request's device signature does not verify.")
        }
        if route == .register {
            if let registrationCode, try await store.registeredKey(of: vaultID) == nil,
                !Sodium.constantTimeEquals(Array(registrationCode.utf8), body)
            {
                throw RelayHTTPError(
                    .forbidden,
                    body.isEmpty
                        ? "This relay registers a new vault only with its registration code; ask the relay's operator for it."
                        : "The registration code is wrong; ask the relay's operator for the right one.")
            }
            let created: Bool
            do {
                created = try await store.register(vaultID: vaultID, key: auth.key, now: now)
            } catch let error as RelayStoreError where error.code == .keyMismatch {
                throw RelayHTTPError(.forbidden, error.message)
            }
            try await checkNonce(auth, vaultID: vaultID, now: now)
            if created { logger.notice("registered vault", metadata: ["vault": .escaped(vaultHex.prefix(8))]) }
            return Self.json(created ? .created : .ok, created ? #"{"registered":true}"# : #"{"registered":false}"#)
        }
        guard let registered = try await store.registeredKey(of: vaultID) else {
            throw RelayHTTPError(
                .notFound, "This relay does not hold this vault yet; a member's first sync registers it.")
        }
        guard registered == auth.key else {
            throw RelayHTTPError(
                .forbidden, "This key is not the vault's registered relay key; only members may use it.")
        }
        try await checkNonce(auth, vaultID: vaultID, now: now)
        try await checkDevice(auth, vaultID: vaultID)

        switch route {
        case .vector:
            try Self.expectEmpty(body)
            let vector = try await store.versionVector(vaultID: vaultID)
            return Self.binary(RelayWire.encodeVector(vector))
        case .fetchEnvelopes:
            try Self.expectEmpty(body)
            let query = request.uri.queryParameters
            guard let authorHex = query.get("author"), let authorBytes = Hex.decode(authorHex), authorBytes.count == 32,
                let author = try? DeviceID(authorBytes), let after = query.get("after", as: UInt64.self),
                after <= UInt64(Int64.max)
            else {
                throw RelayHTTPError(.badRequest, "The query must name author (64 hex digits) and after (a number).")
            }
            let limit = min(query.get("limit", as: Int.self) ?? 1000, RelayWire.maxEnvelopesPerMessage)
            guard limit > 0 else { throw RelayHTTPError(.badRequest, "The limit must be a positive number.") }
            let bodies = try await store.envelopes(
                vaultID: vaultID, author: author, after: after, limit: limit, byteBudget: RelayWire.batchBytes)
            return Self.binary(RelayWire.encodeEnvelopeList(bodies))
        case .pushEnvelopes:
            let envelopes = try Self.decode { try RelayWire.decodeEnvelopeList(body) }
            let result = try await store.store(vaultID: vaultID, envelopes: envelopes)
            if result.stored > 0 {
                logger.info(
                    "stored", metadata: ["vault": .escaped(vaultHex.prefix(8)), "envelopes": "\(result.stored)"])
            }
            return Self.json(.ok, #"{"stored":\#(result.stored),"duplicates":\#(result.duplicates)}"#)
        case .exchange:
            let (exchange, pushed) = try Self.decode { try RelayWire.ExchangeRequest.decode(body) }
            let result = try await store.store(vaultID: vaultID, envelopes: pushed)
            let limit = min(max(Int(exchange.limit), 1), RelayWire.maxEnvelopesPerMessage)
            let missing = try await store.missing(
                vaultID: vaultID, for: exchange.vector, limit: limit, byteBudget: RelayWire.batchBytes)
            if result.stored > 0 || !missing.bodies.isEmpty {
                logger.info(
                    "exchange",
                    metadata: [
                        "vault": .escaped(vaultHex.prefix(8)), "stored": "\(result.stored)",
                        "sent": "\(missing.bodies.count)",
                        "remaining": "\(missing.remaining)",
                    ])
            }
            let response = RelayWire.ExchangeResponse(
                stored: UInt32(result.stored), remaining: missing.remaining, diverged: missing.diverged,
                envelopes: missing.bodies)
            return Self.binary(response.encoded())
        case .heldChunks, .fetchChunk, .storeChunk:
            return try await handleChunks(route, vaultID: vaultID, request: request, context: context, body: body)
        case .health, .register:
            throw RelayHTTPError(.internalServerError, "Unreachable route.")
        }
    }

    /// Once the relay has seen a revocation in the vault's membership log, every request must name its device,
    /// and a revoked device is refused whatever it asks (Protocol/http-api.md §3).
    private func checkDevice(_ auth: Authentication, vaultID: [UInt8]) async throws {
        let membership = try await store.membership(vaultID: vaultID)
        let revocations = membership.members.values.contains(where: \.isRevoked)
        guard let device = auth.device else {
            if revocations {
                throw RelayHTTPError(
                    .unauthorized,
                    "A device of this vault was revoked: requests must name their device (Amanat-Device headers).")
            }
            return
        }
        if membership.members[device]?.isRevoked == true {
            throw RelayHTTPError(.forbidden, "This device was revoked from this vault; the relay no longer serves it.")
        }
    }

    private func checkNonce(_ auth: Authentication, vaultID: [UInt8], now: Int64) async throws {
        let fresh = try await store.useNonce(
            vaultID: vaultID, nonce: auth.nonce, expires: max(auth.timestamp, now) + RelayWire.timestampWindow + 1,
            now: now)
        guard fresh else {
            throw RelayHTTPError(.unauthorized, "This request was already received (a replayed nonce); it was ignored.")
        }
    }

    private static let tooLarge = RelayHTTPError(
        .contentTooLarge,
        "The request body is larger than the relay's limit of \(RelayWire.maxRequestBytes / 1_048_576) MiB.")

    private static func decode<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CoreError {
            throw RelayHTTPError(.badRequest, "The body is malformed: \(error.message)")
        }
    }

    private static func expectEmpty(_ body: [UInt8]) throws {
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

/// The four authentication headers of a request, parsed (Protocol/http-api.md §3).
struct Authentication {
    var key: [UInt8]
    var timestamp: Int64
    var nonce: [UInt8]
    var nonceHex: String
    var signature: [UInt8]
    /// The device named by the optional device headers, and its signature of the request.
    var device: DeviceID?
    var deviceSignature: [UInt8]?

    init(headers: HTTPFields) throws {
        func field(_ name: String) -> String? { headers.first { $0.name.canonicalName == name }?.value }
        guard let keyHex = field(RelayWire.Header.key), let stamp = field(RelayWire.Header.timestamp),
            let nonceHex = field(RelayWire.Header.nonce), let signatureHex = field(RelayWire.Header.signature)
        else {
            throw RelayHTTPError(
                .unauthorized,
                "The request is not signed: it needs the Amanat-Key, -Timestamp, -Nonce and -Signature headers.")
        }
        guard keyHex.count == 64, let key = Hex.decode(keyHex), signatureHex.count == 128,
            let signature = Hex.decode(signatureHex), nonceHex.count == 32, let nonce = Hex.decode(nonceHex),
            stamp.count <= 12, let timestamp = Int64(stamp)
        else {
            throw RelayHTTPError(.unauthorized, "The request's authentication headers are malformed.")
        }
        self.key = key
        self.timestamp = timestamp
        self.nonce = nonce
        self.nonceHex = nonceHex
        self.signature = signature
        switch (field(RelayWire.Header.device), field(RelayWire.Header.deviceSignature)) {
        case (nil, nil):
            device = nil
            deviceSignature = nil
        case (let deviceHex?, let signatureHex?):
            guard deviceHex.count == 64, let bytes = Hex.decode(deviceHex), let id = try? DeviceID(bytes),
                signatureHex.count == 128, let signature = Hex.decode(signatureHex)
            else {
                throw RelayHTTPError(.unauthorized, "The request's device headers are malformed.")
            }
            device = id
            deviceSignature = signature
        default:
            throw RelayHTTPError(.unauthorized, "The request names a device without its signature, or the reverse.")
        }
    }
}

/// Turns every failure into a JSON error answer with one sentence, and logs it without payloads.
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
            case .full: status = .init(code: 507, reasonPhrase: "Insufficient Storage")
            }
            message = error.message
        } catch let error as StoreError {
            status = error.code == .busy ? .serviceUnavailable : .internalServerError
            message = "The relay could not use its storage; try again later."
            logger.error("storage failure", metadata: ["error": .escaped(error.message)])
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
            logger.error("unexpected failure", metadata: ["error": "\(type(of: error))"])
        }
        let level: Logger.Level = status.code >= 500 ? .error : .notice
        logger.log(
            level: level, "refused",
            metadata: [
                "method": .escaped(request.method.rawValue), "path": .escaped(request.uri.path.prefix(80)),
                "status": "\(status.code)", "reason": .escaped(message),
            ])
        return RelayServer.json(status, Self.errorJSON(message))
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
