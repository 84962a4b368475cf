import AmanatCore
import AmanatCrypto
import AmanatSync
import Foundation

/// Several relays that serve one vault from one shared database (`amanat serve --database`, Protocol/relay-postgres.md),
/// used as one carrier: `amanat sync URL1 URL2`. Each request goes to the relay that answered last; when that relay
/// cannot be reached (after its own retries, ``HTTPCarrier/Options/attempts``), the same request goes to the next one.
///
/// Re-sending a request to another relay is safe because every request of a sync is idempotent over one database:
/// a push the first relay committed before it died comes back as duplicates, never stored twice, and what is pulled
/// is decided by the replica's vector, not by where the last answer came from. Only an unreachable relay moves the
/// sync on: a refusal (403, 409, 422…) is the database's answer and is the same from every relay.
public final class FailoverCarrier: ExchangeCarrier, ChunkCarrier, @unchecked Sendable {
    // @unchecked Sendable: `current` is guarded by `lock`; the carriers are Sendable.

    /// The relays, in the order given.
    public let carriers: [HTTPCarrier]
    private let lock = NSLock()
    private var current = 0
    private var switched: [(from: String, to: String)] = []
    private var answered: [Int] = []

    /// A carrier over `carriers` (at least one).
    public init(_ carriers: [HTTPCarrier]) {
        precondition(!carriers.isEmpty)
        self.carriers = carriers
    }

    /// Runs `body` with a failover carrier over `urls` and shuts every HTTP client down afterwards.
    public static func with<T>(
        urls: [String], vaultID: [UInt8], key: SigningKeyPair, device: SigningKeyPair? = nil,
        options: HTTPCarrier.Options = HTTPCarrier.Options(), _ body: (FailoverCarrier) async throws -> T
    ) async throws -> T {
        var carriers: [HTTPCarrier] = []
        for url in urls {
            do {
                carriers.append(try HTTPCarrier(url: url, vaultID: vaultID, key: key, device: device, options: options))
            } catch {
                for carrier in carriers { await carrier.shutdown() }
                throw error
            }
        }
        let failover = FailoverCarrier(carriers)
        do {
            let result = try await body(failover)
            await failover.shutdown()
            return result
        } catch {
            await failover.shutdown()
            throw error
        }
    }

    /// Closes every relay's HTTP client.
    public func shutdown() async {
        for carrier in carriers { await carrier.shutdown() }
    }

    /// The relay that answered last (the first until one fails).
    public var name: String { lock.withLock { carriers[current].name } }
    public var canWrite: Bool { true }

    /// Each move from a relay that could not be reached to the next, in order.
    public var failovers: [(from: String, to: String)] { lock.withLock { switched } }

    /// The relays that served at least one request, in the order they first did.
    public var served: [String] { lock.withLock { answered.map { carriers[$0].name } } }

    /// Runs `request` on the current relay, then on each other one in turn while they cannot be reached.
    private nonisolated(nonsending) func run<T>(_ request: (HTTPCarrier) async throws -> T) async throws -> T {
        let start = lock.withLock { current }
        var lastError: RelayClientError?
        for step in 0..<carriers.count {
            let index = (start + step) % carriers.count
            do {
                let result = try await request(carriers[index])
                lock.withLock {
                    if index != start {
                        switched.append((carriers[current].name, carriers[index].name))
                        current = index
                    }
                    if !answered.contains(index) { answered.append(index) }
                }
                return result
            } catch let error as RelayClientError where error.code == .unavailable {
                lastError = error
            }
        }
        let error = lastError ?? RelayClientError(.unavailable, "No relay can be reached.")
        guard carriers.count > 1 else { throw error }
        throw RelayClientError(
            .unavailable,
            "None of the \(carriers.count) relays can be reached (\(carriers.map(\.name).joined(separator: ", "))); the last said: \(error.message)"
        )
    }

    public func versionVector() async throws -> [DeviceID: ChainHead] { try await run { try await $0.versionVector() } }

    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        try await run { try await $0.envelopes(of: author, after: seq, limit: limit) }
    }

    public func push(_ envelopes: [Envelope]) async throws -> Int { try await run { try await $0.push(envelopes) } }

    nonisolated(nonsending) public func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool)
        async throws -> [Envelope]
    {
        try await run { try await $0.copiesWithoutContent(limit: limit, wanted: wanted) }
    }

    public func putBackContent(_ envelopes: [Envelope]) async throws -> Int {
        try await run { try await $0.putBackContent(envelopes) }
    }

    public func exchange(vector: [DeviceID: ChainHead], push: [Envelope], limit: Int) async throws -> ExchangeResult {
        try await run { try await $0.exchange(vector: vector, push: push, limit: limit) }
    }

    public func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]> {
        try await run { try await $0.heldChunks(chunks) }
    }

    public func chunk(_ address: [UInt8]) async throws -> [UInt8]? { try await run { try await $0.chunk(address) } }

    public func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws {
        try await run { try await $0.storeChunk(address, sealed: sealed) }
    }

    public func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool {
        (try? await run { await $0.discardDamaged(address, copy: copy) }) ?? false
    }
}
