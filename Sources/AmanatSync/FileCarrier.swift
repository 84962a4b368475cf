import AmanatCore
import AmanatStore
import Foundation

/// A sync file (for example on a USB stick) as a carrier (Protocol/sync-file.md).
public struct FileCarrier: Carrier {
    /// The open sync file.
    public let file: SyncFile

    /// Opens (or, if `create` is true, creates) the sync file at `url` for the vault `vaultID`; with `readOnly`
    /// (a pull only), the file is opened read-only.
    public init(url: URL, vaultID: [UInt8], create: Bool = true, readOnly: Bool = false) throws {
        file = try SyncFile.open(at: url, vaultID: vaultID, create: create, readOnly: readOnly)
    }

    public var name: String { file.url.path }
    public var canWrite: Bool { !file.isReadOnly }

    public func versionVector() async throws -> [DeviceID: ChainHead] { try file.versionVector() }

    public func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        try file.envelopes(of: author, after: seq, limit: limit)
    }

    public func push(_ envelopes: [Envelope]) async throws -> Int { try file.append(envelopes) }

    public func applyPurges(envelopes: [Envelope], chunks: [[UInt8]]) async throws -> Int {
        guard canWrite else { return 0 }
        let replaced = try file.replaceWithPurged(envelopes)
        if !chunks.isEmpty { chunkStore.remove(chunks) }
        return replaced
    }

    nonisolated(nonsending) public func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool)
        async throws -> [Envelope]
    {
        guard canWrite else { return [] }
        return try file.copiesWithoutContent(limit: limit, wanted: wanted)
    }

    public func putBackContent(_ envelopes: [Envelope]) async throws -> Int {
        guard canWrite else { return 0 }
        return try file.putBackContent(envelopes)
    }
}
