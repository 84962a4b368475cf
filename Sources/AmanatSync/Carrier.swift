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
}
