import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation
import Hummingbird
import NIOCore

/// Bytes of attachment chunks each vault stores on the relay, for `--quota` (Protocol/http-api.md §9).
final class ChunkUsage: @unchecked Sendable {
    // @unchecked Sendable: every access holds `lock`.
    private let lock = NSLock()
    private var bytes: [String: UInt64] = [:]
    private var _quota: UInt64?

    var quota: UInt64? {
        get { lock.withLock { _quota } }
        set { lock.withLock { _quota = newValue } }
    }

    /// Reserves `length` bytes for a vault whose chunks are in `store`: false when the quota would be passed.
    func reserve(_ length: Int, vault: String, store: ChunkStore) -> Bool {
        lock.withLock {
            let used = bytes[vault] ?? Self.measure(store)
            guard _quota.map({ used + UInt64(length) <= $0 }) ?? true else {
                bytes[vault] = used
                return false
            }
            bytes[vault] = used + UInt64(length)
            return true
        }
    }

    /// Gives back bytes reserved for a chunk that was not written.
    func release(_ length: Int, vault: String) {
        lock.withLock { bytes[vault] = (bytes[vault] ?? UInt64(length)) - min(UInt64(length), bytes[vault] ?? 0) }
    }

    /// Forgets a vault's measured usage (chunks were removed): the next reservation measures it again.
    func forget(vault: String) { lock.withLock { bytes[vault] = nil } }

    /// Bytes used by a vault, for the 507 sentence.
    func used(vault: String) -> UInt64 { lock.withLock { bytes[vault] ?? 0 } }

    static func measure(_ store: ChunkStore) -> UInt64 {
        store.addresses().reduce(0) { $0 + UInt64(store.storedLength($1) ?? 0) }
    }
}

extension RelayServer {
    /// 507 Insufficient Storage (RFC 4918), which HTTPTypes does not name.
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

    /// The most chunks one `POST …/chunks` may ask about.
    static let maxChunksPerQuery = 4096

    func handleChunks(
        _ route: RelayRoute, vaultID: [UInt8], request: Request, context: BasicRequestContext, body: [UInt8],
        purged: Set<[UInt8]> = []
    ) throws -> Response {
        let store = store.chunkStore(vaultID: vaultID)
        let vaultHex = Hex.encode(vaultID)
        switch route {
        case .heldChunks:
            // n × (32-byte address ‖ u32 sealed length) in; the held addresses, 32 bytes each, out.
            guard body.count % 36 == 0, body.count / 36 <= Self.maxChunksPerQuery else {
                throw RelayHTTPError(
                    .badRequest, "The body must list at most \(Self.maxChunksPerQuery) chunks of 36 bytes each.")
            }
            var held: [UInt8] = []
            for start in stride(from: 0, to: body.count, by: 36) {
                let address = Array(body[start..<start + 32])
                let length = body[(start + 32)..<(start + 36)].reduce(0) { $0 << 8 | Int($1) }
                if store.has(address, sealedLength: length) { held += address }
            }
            return Self.binary(held)
        case .fetchChunk:
            try Self.expectNoBody(body)
            let address = try Self.chunkAddress(context)
            guard let sealed = try store.read(address) else {
                throw RelayHTTPError(.notFound, "This relay does not hold that chunk.")
            }
            return Self.binary(sealed)
        case .storeChunk:
            let address = try Self.chunkAddress(context)
            guard body.count >= ChunkKeys.overhead, body.count <= ChunkStore.maximumSealedLength,
                Array(body[0..<4]) == ChunkKeys.magic, body[4] == ChunkKeys.version,
                Array(body[5..<ChunkKeys.headerLength]) == address
            else {
                throw RelayHTTPError(
                    .unprocessableContent, "The body is not a sealed chunk of the address in the path.")
            }
            if store.has(address, sealedLength: body.count) || purged.contains(address) {
                return Self.json(.ok, #"{"stored":false}"#)
            }
            guard chunkUsage.reserve(body.count, vault: vaultHex, store: store) else {
                let quota = chunkUsage.quota ?? 0
                throw RelayHTTPError(
                    Self.insufficientStorage,
                    "This vault's attachments on the relay have reached the relay's quota of \(quota / 1_048_576) MiB; ask its operator for a larger --quota."
                )
            }
            do {
                try store.write(address, sealed: body)
            } catch {
                chunkUsage.release(body.count, vault: vaultHex)
                if let error = error as? StoreError, error.code == .diskFull {
                    throw RelayHTTPError(
                        Self.insufficientStorage, "The relay's disk is full; ask its operator to free space.")
                }
                throw error
            }
            logger.info("stored chunk", metadata: ["vault": .escaped(vaultHex.prefix(8)), "bytes": "\(body.count)"])
            return Self.json(.created, #"{"stored":true}"#)
        default:
            throw RelayHTTPError(.internalServerError, "Unreachable route.")
        }
    }

    static func chunkAddress(_ context: BasicRequestContext) throws -> [UInt8] {
        guard let hex = context.parameters.get("chunk"), hex.count == 64, let address = Hex.decode(hex) else {
            throw RelayHTTPError(.badRequest, "The chunk address in the path must be 64 hex digits.")
        }
        return address
    }

    static func expectNoBody(_ body: [UInt8]) throws {
        guard body.isEmpty else { throw RelayHTTPError(.badRequest, "This request takes no body.") }
    }
}

extension RelayServer {
    /// Removes the chunks a stored purge destroys (each overwritten first) and measures the vault's usage again.
    func removePurgedChunks(_ result: RelayStoreResult, vaultID: [UInt8]) {
        guard !result.purgedChunks.isEmpty else { return }
        store.chunkStore(vaultID: vaultID).remove(result.purgedChunks)
        chunkUsage.forget(vault: Hex.encode(vaultID))
    }
}

extension RelayStore {
    /// The folder of a vault's attachment chunks: `DATA/<vault id>.chunks/`, opaque sealed blobs.
    public func chunkStore(vaultID: [UInt8]) -> ChunkStore {
        ChunkStore(root: directory.appendingPathComponent(Hex.encode(vaultID) + ".chunks"))
    }
}
