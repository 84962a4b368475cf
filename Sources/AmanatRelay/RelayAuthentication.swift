import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatWire
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The relay's request context: Hummingbird's core context, and what ``RelayAuthentication`` proved about the
/// request (nil on the unauthenticated routes).
public struct RelayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The request's vault, key and body, once authenticated.
    public var authenticated: AuthenticatedRequest?
    /// The vault's vector, read with the admission on the route that answers it (`GET …/vector`).
    public var vector: [DeviceID: ChainHead]?
    /// False when the admission found that the vault holds no purged form, so the vector answer lists none.
    public var mayHoldCopiesWithoutContent = true

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// The largest body the relay reads (the authentication middleware collects it to check its signature).
    public var maxUploadSize: Int { RelayWire.maxRequestBytes }

    /// The authenticated request; a handler of a signed route is only reached through the middleware.
    func vault() throws -> AuthenticatedRequest {
        guard let authenticated else {
            throw RelayHTTPError(.internalServerError, "The request reached a signed route unauthenticated.")
        }
        return authenticated
    }
}

/// A request whose signature, timestamp, body digest and nonce the relay verified (Protocol/http-api.md §3).
public struct AuthenticatedRequest: Sendable {
    /// The vault in the path.
    public var vaultID: [UInt8]
    /// The vault id in hex, as in the path (logs show its first 8 digits).
    public var vaultHex: String
    /// The relay key that signed the request.
    public var key: [UInt8]
    /// The device named by the device headers, when given.
    public var device: DeviceID?
    /// The request's timestamp (unix seconds).
    public var timestamp: Int64
    /// The request's nonce.
    public var nonce: [UInt8]
    /// The body, read in full and covered by the signature.
    public var body: [UInt8]
}

extension HTTPField.Name {
    /// `Amanat-Key`: the relay public key that signs the request.
    static let amanatKey = Self(RelayWire.Header.key)!
    /// `Amanat-Timestamp`: unix seconds.
    static let amanatTimestamp = Self(RelayWire.Header.timestamp)!
    /// `Amanat-Nonce`: 16 random bytes in hex.
    static let amanatNonce = Self(RelayWire.Header.nonce)!
    /// `Amanat-Signature`: the relay key's signature of the canonical request.
    static let amanatSignature = Self(RelayWire.Header.signature)!
    /// `Amanat-Device`: the device that sends the request.
    static let amanatDevice = Self(RelayWire.Header.device)!
    /// `Amanat-Device-Signature`: the device's signature of the canonical request.
    static let amanatDeviceSignature = Self(RelayWire.Header.deviceSignature)!
    /// `Amanat-Auth`: the compact form of the five above.
    static let amanatAuth = Self(RelayWire.Header.auth)!
    /// `Amanat-Without-Content` (on a vector answer).
    static let amanatWithoutContent = Self(RelayWire.Header.withoutContent)!
}

/// Authenticates every signed route before its handler runs: the vault id in the path, the four headers (or
/// `Amanat-Auth`), the
/// timestamp window, the body (read within the size limit) and the signature over method, path, timestamp, nonce and
/// body; then, for every route but registration, that the key is the vault's registered relay key, that the nonce
/// is new (in the storage, so a nonce is refused by every relay sharing it) and that the device is not revoked.
/// Registration checks its nonce itself, after registering (the vault has no nonces before).
struct RelayAuthentication: RouterMiddleware {
    typealias Context = RelayRequestContext

    let server: RelayServer
    /// Whether the vault must already be registered (every route but registration).
    let registered: Bool
    /// Whether the route answers the vault's vector, which the storage then reads with the admission (one statement
    /// for PostgreSQL) into the context.
    var readsVector = false

    func handle(
        _ request: Request, context: RelayRequestContext,
        next: (Request, RelayRequestContext) async throws -> Response
    ) async throws -> Response {
        guard let vaultHex = context.parameters.get("vault"), vaultHex.count == 32, let vaultID = Hex.decode(vaultHex)
        else {
            throw RelayHTTPError(.badRequest, "The vault id in the path must be 32 hex digits.")
        }
        // Cheap checks first, then the body, then the signature over it.
        let auth = try Authentication(headers: request.headers)
        let now = server.now()
        guard abs(auth.timestamp - now) <= RelayWire.timestampWindow else {
            throw RelayHTTPError(
                .unauthorized,
                "The request's timestamp is more than 5 minutes away from the relay's clock; check the clock.")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > RelayWire.maxRequestBytes {
            throw RelayServer.tooLarge
        }
        var buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: RelayWire.maxRequestBytes)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw RelayServer.tooLarge
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
        var context = context
        context.authenticated = AuthenticatedRequest(
            vaultID: vaultID, vaultHex: vaultHex, key: auth.key, device: auth.device, timestamp: auth.timestamp,
            nonce: auth.nonce, body: body)
        context.logger[metadataKey: "vault"] = .escaped(vaultHex.prefix(8))
        if registered {
            let expires = RelayServer.nonceExpiry(timestamp: auth.timestamp, now: now)
            let admission: RelayAdmission
            if readsVector {
                let vector: [DeviceID: ChainHead]
                (admission, vector, context.mayHoldCopiesWithoutContent) = try await server.store.admitForVector(
                    vaultID: vaultID, key: auth.key, nonce: auth.nonce, expires: expires, now: now)
                context.vector = vector
            } else {
                admission = try await server.store.admit(
                    vaultID: vaultID, key: auth.key, nonce: auth.nonce, expires: expires, now: now)
            }
            switch admission {
            case .unknownVault:
                throw RelayHTTPError(
                    .notFound, "This relay does not hold this vault yet; a member's first sync registers it.")
            case .otherKey:
                throw RelayHTTPError(
                    .forbidden, "This key is not the vault's registered relay key; only members may use it.")
            case .replayed:
                throw RelayServer.replayed
            case .admitted(let membership):
                try checkDevice(auth.device, membership)
            }
        }
        return try await next(request, context)
    }

    /// Once the relay has seen a revocation in the vault's membership log, every request must name its device,
    /// and a revoked device is refused whatever it asks (Protocol/http-api.md §3).
    private func checkDevice(_ device: DeviceID?, _ membership: MembershipState) throws {
        guard let device else {
            if membership.members.values.contains(where: \.isRevoked) {
                throw RelayHTTPError(
                    .unauthorized,
                    "A device of this vault was revoked: requests must name their device (in Amanat-Auth or the Amanat-Device headers)."
                )
            }
            return
        }
        if membership.members[device]?.isRevoked == true {
            throw RelayHTTPError(.forbidden, "This device was revoked from this vault; the relay no longer serves it.")
        }
    }
}

/// The authentication headers of a request, parsed (Protocol/http-api.md §3): the hex headers, or `Amanat-Auth`.
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
        let compact = headers[values: .amanatAuth]
        guard compact.isEmpty else {
            self = try Self.compact(compact, headers: headers)
            return
        }
        guard let keyHex = headers[.amanatKey], let stamp = headers[.amanatTimestamp],
            let nonceHex = headers[.amanatNonce], let signatureHex = headers[.amanatSignature]
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
        switch (headers[.amanatDevice], headers[.amanatDeviceSignature]) {
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

extension Authentication {
    /// The one `Amanat-Auth` header: once, alone (none of the hex headers beside it), of the right length.
    fileprivate static func compact(_ values: [String], headers: HTTPFields) throws -> Authentication {
        let hex: [HTTPField.Name] = [
            .amanatKey, .amanatTimestamp, .amanatNonce, .amanatSignature, .amanatDevice, .amanatDeviceSignature,
        ]
        guard values.count == 1, !hex.contains(where: { headers[$0] != nil }) else {
            throw RelayHTTPError(
                .unauthorized, "The request carries its authentication more than once (Amanat-Auth and other headers).")
        }
        // A timestamp is at most 12 decimal digits in the hex form; the same bound here, before any conversion.
        guard let auth = CompactAuthentication(values[0]), auth.timestamp < 1_000_000_000_000 else {
            throw RelayHTTPError(.unauthorized, "The request's Amanat-Auth header is malformed.")
        }
        var device: DeviceID?
        if let deviceKey = auth.deviceKey {
            guard let id = try? DeviceID(deviceKey) else {
                throw RelayHTTPError(.unauthorized, "The request's Amanat-Auth header is malformed.")
            }
            device = id
        }
        return Authentication(
            key: auth.key, timestamp: Int64(auth.timestamp), nonce: auth.nonce, nonceHex: Hex.encode(auth.nonce),
            signature: auth.signature, device: device, deviceSignature: auth.deviceSignature)
    }

    private init(
        key: [UInt8], timestamp: Int64, nonce: [UInt8], nonceHex: String, signature: [UInt8], device: DeviceID?,
        deviceSignature: [UInt8]?
    ) {
        self.key = key
        self.timestamp = timestamp
        self.nonce = nonce
        self.nonceHex = nonceHex
        self.signature = signature
        self.device = device
        self.deviceSignature = deviceSignature
    }
}
