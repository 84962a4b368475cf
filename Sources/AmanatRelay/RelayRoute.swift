import Foundation

/// Every route the relay serves. The router is built from this list, and a test checks it against
/// Protocol/openapi.yaml, so the two cannot drift apart.
public enum RelayRoute: String, CaseIterable, Sendable {
    /// `GET /v1/health`: unauthenticated liveness check.
    case health
    /// `GET /metrics`: the operator's metrics in Prometheus' text format (unauthenticated; Docs/operating-a-relay.md).
    case metrics
    /// `PUT /v1/vaults/{vault}`: registers the vault's relay key (trust on first use).
    case register
    /// `GET /v1/vaults/{vault}/vector`: the relay's version vector of the vault.
    case vector
    /// `GET /v1/vaults/{vault}/envelopes`: one author's envelopes after a seq.
    case fetchEnvelopes
    /// `POST /v1/vaults/{vault}/envelopes`: pushes envelopes.
    case pushEnvelopes
    /// `POST /v1/vaults/{vault}/exchange`: pushes a batch and pulls a batch in one round trip.
    case exchange
    /// `POST /v1/vaults/{vault}/chunks`: which of the listed attachment chunks the relay holds.
    case heldChunks
    /// `GET /v1/vaults/{vault}/chunks/{chunk}`: one sealed chunk.
    case fetchChunk
    /// `PUT /v1/vaults/{vault}/chunks/{chunk}`: stores one sealed chunk (507 when the vault's quota is full).
    case storeChunk
    /// `POST /v1/vaults/{vault}/chunks/{chunk}/damaged`: sets aside the copy a member found damaged, named by its
    /// SHA-256 (kept, never served again).
    case discardDamagedChunk
    /// `GET /v1/vaults/{vault}/without-content`: the copies the relay holds without content that no purge names.
    case listWithoutContent
    /// `POST /v1/vaults/{vault}/without-content`: full copies that put their content back.
    case putBackContent

    /// The HTTP method.
    public var method: String {
        switch self {
        case .health, .metrics, .vector, .fetchEnvelopes, .fetchChunk, .listWithoutContent: "GET"
        case .register, .storeChunk: "PUT"
        case .pushEnvelopes, .exchange, .heldChunks, .putBackContent, .discardDamagedChunk: "POST"
        }
    }

    /// The path template, in OpenAPI form (`{vault}` for a parameter).
    public var path: String {
        switch self {
        case .health: "/v1/health"
        case .metrics: "/metrics"
        case .register: "/v1/vaults/{vault}"
        case .vector: "/v1/vaults/{vault}/vector"
        case .fetchEnvelopes, .pushEnvelopes: "/v1/vaults/{vault}/envelopes"
        case .exchange: "/v1/vaults/{vault}/exchange"
        case .heldChunks: "/v1/vaults/{vault}/chunks"
        case .fetchChunk, .storeChunk: "/v1/vaults/{vault}/chunks/{chunk}"
        case .discardDamagedChunk: "/v1/vaults/{vault}/chunks/{chunk}/damaged"
        case .listWithoutContent, .putBackContent: "/v1/vaults/{vault}/without-content"
        }
    }

    /// The path template in the router's syntax (`:vault`).
    var routerPath: String {
        path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
    }

    /// Whether requests must be signed with the vault's relay key.
    public var isAuthenticated: Bool { self != .health && self != .metrics }
}
