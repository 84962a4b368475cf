import AmanatCore

/// Anything that holds envelopes for a vault and can say its version vector: a sync file, a relay, a peer
/// (Protocol/sync.md §1).
public protocol Carrier: Sendable {
    /// A short name for messages, such as the file's path or the relay's URL.
    var name: String { get }
    /// Whether envelopes can be pushed to it (a read-only file is pulled from only).
    var canWrite: Bool { get }
    /// Each device's last seq and head hash that the carrier holds.
    func versionVector() async throws -> [DeviceID: ChainHead]
    /// Up to `limit` envelopes of `author` with seq greater than `seq`, in seq order.
    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope]
    /// Stores envelopes the carrier lacks; returns how many it stored.
    func push(_ envelopes: [Envelope]) async throws -> Int
    /// Replaces the carrier's copies of purged envelopes by their purged forms and removes purged chunks.
    func applyPurges(envelopes: [Envelope], chunks: [[UInt8]]) async throws -> Int
    /// Up to `limit` of the envelopes the carrier holds in their purged form and would take content back for, each
    /// one `wanted` accepts, as purged forms (Protocol/sync.md §2, step 6). A relay lists at most 256 at a time
    /// (`wanted` then picks among them); a sync file reads all of its own until `limit` are wanted.
    nonisolated(nonsending) func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool) async throws
        -> [Envelope]
    /// Gives the carrier full copies of envelopes it holds without content; returns how many it put back.
    func putBackContent(_ envelopes: [Envelope]) async throws -> Int
}

extension Carrier {
    /// Replaces the carrier's copies of purged envelopes by their purged forms and removes purged attachment chunks
    /// (a sync file, which cannot evaluate membership, is told by a vault that did). A relay applies purges itself
    /// when it stores the purge entry, so by default nothing is done. Returns how many envelopes were replaced.
    public func applyPurges(envelopes: [Envelope], chunks: [[UInt8]]) async throws -> Int { 0 }

    /// A carrier that cannot say which copies it holds without content lists none.
    nonisolated(nonsending) public func copiesWithoutContent(limit: Int, wanted: (Envelope) throws -> Bool)
        async throws -> [Envelope]
    { [] }

    /// A carrier that lists none is given none.
    public func putBackContent(_ envelopes: [Envelope]) async throws -> Int { 0 }
}
