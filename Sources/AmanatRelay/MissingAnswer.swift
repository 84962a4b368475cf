import AmanatCore

/// Builds the PostgreSQL storage's answer to "what does a replica whose vector is `vector` lack" from rows read in
/// author then seq order, as ``RelayStore/missing(vaultID:for:limit:byteBudget:)`` answers it from SQLite: each
/// lagging author's share is what the limit leaves after the authors before it; within the byte budget an author's
/// bodies stop at the first that does not fit, and an author is skipped once the budget is spent.
struct MissingAnswer {
    /// A lagging author: from where the replica lacks its chain, how much, and how much this answer may carry.
    struct Want {
        var author: DeviceID
        var after: UInt64
        var wanted: UInt64
        var take: Int
        var got = 0
    }

    let vector: [DeviceID: ChainHead]
    let limit: Int
    let byteBudget: Int
    private(set) var wants: [Want] = []
    private var result = RelayMissing()
    private var current = -1
    private var open = false
    private var bytes = 0

    init(vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int) {
        self.vector = vector
        self.limit = limit
        self.byteBudget = byteBudget
    }

    /// Takes every author's head and whether the replica's head of it diverged; the diverged authors are reported,
    /// the lagging ones get their shares of the limit, in author order.
    mutating func plan(_ heads: [(author: DeviceID, seq: UInt64, diverged: Bool)]) {
        var room = limit
        for head in heads.sorted(by: { $0.author < $1.author }) {
            if head.diverged {
                result.diverged.append(head.author)
                continue
            }
            let after = vector[head.author]?.seq ?? 0
            guard after < head.seq else { continue }
            let wanted = head.seq - after
            let take = Int(min(UInt64(max(room, 0)), wanted))
            room -= take
            wants.append(Want(author: head.author, after: after, wanted: wanted, take: take))
        }
    }

    /// Takes the next body read; false when it is not where the order puts it (an author before the current one, an
    /// author that does not lag, or not the next seq of its author's chain), and the rows must be read again.
    mutating func add(author: DeviceID, seq: UInt64, body: () -> [UInt8]) -> Bool {
        var index = max(current, 0)
        while index < wants.count && wants[index].author != author { index += 1 }
        guard index < wants.count else { return false }
        guard seq == wants[index].after + UInt64(wants[index].got) + 1 || (index == current && !open) else {
            return false
        }
        if index != current {
            current = index
            open = !(bytes >= byteBudget && !result.bodies.isEmpty)
        }
        guard open, wants[index].got < wants[index].take else { return true }
        let bytes = body()
        if self.bytes > 0 && self.bytes + bytes.count > byteBudget {
            open = false
            return true
        }
        self.bytes += bytes.count
        result.bodies.append(bytes)
        wants[index].got += 1
        return true
    }

    /// The answer: the bodies taken, the diverged authors and how many envelopes the replica still lacks.
    func finished() -> RelayMissing {
        var answer = result
        for want in wants { answer.remaining += want.wanted - UInt64(want.got) }
        return answer
    }
}
