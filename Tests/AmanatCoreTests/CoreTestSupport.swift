import AmanatCrypto
import Testing

@testable import AmanatCore

/// SplitMix64: a tiny, fast, seedable generator, so a failing property case can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// `count` pseudo-random bytes.
    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// True with probability `percent` / 100.
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &self) < percent }
}

/// A device id whose first byte is `n` (so ids sort by `n`) and whose other bytes are `fill`.
func makeDevice(_ n: UInt8, fill: UInt8 = 0xd0) throws -> DeviceID {
    try DeviceID([n] + [UInt8](repeating: fill, count: 31))
}

/// A record id whose first byte is `n`.
func makeRecord(_ n: UInt8) throws -> RecordID {
    try RecordID([n] + [UInt8](repeating: 0x5e, count: 15))
}

/// A change by `author` as its change number `seq`, stamped `(wall, counter)`.
func authored(
    _ author: DeviceID, _ seq: UInt64, _ record: RecordID, wall: UInt64, counter: UInt32 = 0,
    _ operations: [RecordOperation]
) -> AuthoredChange {
    AuthoredChange(
        author: author, seq: seq,
        change: Change(
            record: record, timestamp: HLCTimestamp(wallMillis: wall, counter: counter), operations: operations))
}

/// The state of `record` after applying `changes` in order.
func state(of record: RecordID, after changes: [AuthoredChange]) -> RecordState {
    var s = RecordState(id: record)
    for c in changes where c.change.record == record { s.apply(c) }
    return s
}

/// Every record's state after applying `changes` in order (the projection of a replica).
func project<S: Sequence>(_ changes: S) -> [RecordID: RecordState] where S.Element == AuthoredChange {
    var states: [RecordID: RecordState] = [:]
    merge(changes, into: &states)
    return states
}

/// Applies `changes` to an existing projection, the way a replica merges what it receives.
func merge<S: Sequence>(_ changes: S, into states: inout [RecordID: RecordState]) where S.Element == AuthoredChange {
    for c in changes {
        let id = c.change.record
        states[id, default: RecordState(id: id)].apply(c)
    }
}

/// The convergence digest of a projection.
func digest(_ states: [RecordID: RecordState]) -> [UInt8] { StateDigest.compute(states.values) }

/// Runs `body` and returns the ``CoreError`` code it threw, or nil if it threw nothing or another error.
func coreErrorCode<T>(_ body: () throws -> T) -> CoreError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as CoreError {
        return error.code
    } catch {
        return nil
    }
}

/// `bytes` with bit `bit` of byte `index` inverted.
func flipping(_ bytes: [UInt8], byte index: Int, bit: Int = 0) -> [UInt8] {
    var copy = bytes
    copy[index] ^= UInt8(1) << UInt8(bit)
    return copy
}

/// Decodes a hex literal; records a failure if the literal is malformed.
func unhex(_ string: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    try #require(Hex.decode(string), "bad hex literal", sourceLocation: sourceLocation)
}

/// The bytes `start`, `start + 1`, … of length `count`.
func counting(from start: UInt8, count: Int) -> [UInt8] {
    (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0) }
}
