import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatWire
import Foundation
import Hummingbird
import NIOCore

extension RelayServer {
    /// 507 Insufficient Storage (RFC 4918), which HTTPTypes does not name.
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

    /// The most chunks one `POST …/chunks` may ask about.
    static let maxChunksPerQuery = 4096

    /// `POST …/chunks`: n × (32-byte address ‖ u32 sealed length) in; the held addresses, 32 bytes each, out.
    func heldChunks(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let body = request.body
        guard body.count % 36 == 0, body.count / 36 <= Self.maxChunksPerQuery else {
            throw RelayHTTPError(
                .badRequest, "The body must list at most \(Self.maxChunksPerQuery) chunks of 36 bytes each.")
        }
        let wanted = stride(from: 0, to: body.count, by: 36).map { start in
            (
                address: Array(body[start..<start + 32]),
                sealedLength: body[(start + 32)..<(start + 36)].reduce(0) { $0 << 8 | Int($1) }
            )
        }
        return Self.binary(try await store.heldChunks(vaultID: request.vaultID, wanted).flatMap { $0 })
    }

    /// `GET …/chunks/{chunk}`.
    func fetchChunk(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        try Self.expectEmpty(request.body)
        let address = try Self.chunkAddress(context)
        guard let sealed = try await store.readChunk(vaultID: request.vaultID, address: address) else {
            throw RelayHTTPError(.notFound, "This relay does not hold that chunk.")
        }
        return Self.binary(sealed)
    }

    /// `PUT …/chunks/{chunk}`: stores a sealed chunk of the address in the path, within the vault's quota.
    func storeChunk(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let body = request.body
        let address = try Self.chunkAddress(context)
        guard body.count >= ChunkKeys.overhead, body.count <= ChunkStore.maximumSealedLength,
            Array(body[0..<4]) == ChunkKeys.magic, body[4] == ChunkKeys.version,
            Array(body[5..<ChunkKeys.headerLength]) == address
        else {
            throw RelayHTTPError(.unprocessableContent, "The body is not a sealed chunk of the address in the path.")
        }
        let outcome: ChunkWriteOutcome
        do {
            outcome = try await store.storeChunk(
                vaultID: request.vaultID, address: address, sealed: body, quota: quota)
        } catch let error as StoreError where error.code == .diskFull {
            throw RelayHTTPError(Self.insufficientStorage, "The relay's disk is full; ask its operator to free space.")
        }
        switch outcome {
        case .alreadyHeld, .purged:
            return Self.json(.ok, #"{"stored":false}"#)
        case .overQuota:
            throw RelayHTTPError(
                Self.insufficientStorage,
                "This vault's attachments on the relay have reached the relay's quota of \(quotaText(quota ?? 0)); ask its operator for a larger --quota."
            )
        case .stored:
            metrics.storedChunk(bytes: body.count)
            context.logger.info("stored chunk", metadata: ["bytes": "\(body.count)"])
            return Self.json(.created, #"{"stored":true}"#)
        }
    }

    /// `POST …/chunks/{chunk}/damaged`: the SHA-256 of the copy a member fetched and found damaged (32 bytes) in;
    /// that copy is set aside (kept, never served) if it is still the one held, so the next member holding a good copy
    /// sends it again. The relay cannot open a chunk, so it takes a member's word, and keeps the bytes: a member can
    /// make a chunk travel once more, never destroy it.
    func discardDamagedChunk(_ context: RelayRequestContext) async throws -> Response {
        let request = try context.vault()
        let address = try Self.chunkAddress(context)
        guard request.body.count == 32 else {
            throw RelayHTTPError(.badRequest, "The body must be the 32-byte SHA-256 of the damaged copy.")
        }
        let setAside = try await store.discardDamagedChunk(
            vaultID: request.vaultID, address: address, sha256: Array(request.body))
        if setAside { context.logger.warning("set aside a chunk a member found damaged") }
        return Self.json(.ok, #"{"discarded":\#(setAside)}"#)
    }

    static func chunkAddress(_ context: RelayRequestContext) throws -> [UInt8] {
        guard let hex = context.parameters.get("chunk"), hex.count == 64, let address = Hex.decode(hex) else {
            throw RelayHTTPError(.badRequest, "The chunk address in the path must be 64 hex digits.")
        }
        return address
    }
}
