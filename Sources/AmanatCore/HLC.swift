/// A hybrid logical clock stamp: wall-clock milliseconds plus a counter (Protocol/change.md §2).
///
/// Stamps order by `(wallMillis, counter)`; ties between devices are broken by device id elsewhere.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, as the clock believed when it stamped.
    public var wallMillis: UInt64
    /// Disambiguates stamps within one millisecond and keeps the clock monotonic when the wall clock stalls.
    public var counter: UInt32

    /// Creates a stamp.
    public init(wallMillis: UInt64, counter: UInt32) {
        self.wallMillis = wallMillis
        self.counter = counter
    }

    /// The zero stamp, earlier than every real one.
    public static let zero = HLCTimestamp(wallMillis: 0, counter: 0)

    public static func < (a: HLCTimestamp, b: HLCTimestamp) -> Bool {
        (a.wallMillis, a.counter) < (b.wallMillis, b.counter)
    }

    public var description: String { "\(wallMillis).\(counter)" }
}

/// A hybrid logical clock: stamps never go backwards, even when the wall clock does.
///
/// ```swift
/// var clock = HybridLogicalClock(last: storedStamp)
/// let stamp = clock.tick(wallMillis: nowMillis)
/// clock.observe(remoteStamp)
/// ```
public struct HybridLogicalClock: Sendable {
    /// The greatest stamp issued or observed.
    public private(set) var last: HLCTimestamp

    /// Creates a clock that will issue stamps after `last`.
    public init(last: HLCTimestamp = .zero) { self.last = last }

    /// How far ahead of the local wall clock a received stamp may be and still be observed: one day.
    public static let maximumDriftMillis: UInt64 = 86_400_000

    /// Issues a stamp greater than every stamp issued or observed before (saturating at the end of time).
    public mutating func tick(wallMillis: UInt64) -> HLCTimestamp {
        if wallMillis > last.wallMillis {
            last = HLCTimestamp(wallMillis: wallMillis, counter: 0)
        } else if last.counter < UInt32.max {
            last.counter += 1
        } else if last.wallMillis < UInt64.max {
            last = HLCTimestamp(wallMillis: last.wallMillis + 1, counter: 0)
        }
        return last
    }

    /// Takes note of a stamp seen in another device's change, so later local stamps sort after it.
    public mutating func observe(_ stamp: HLCTimestamp) {
        if stamp > last { last = stamp }
    }

    /// Observes a received stamp unless it is more than ``maximumDriftMillis`` ahead of `wallMillis`: a peer with
    /// a wildly wrong (or hostile) clock must not drag this device's clock into the future.
    public mutating func observe(_ stamp: HLCTimestamp, wallMillis: UInt64) {
        if stamp.wallMillis <= Self.horizon(wallMillis) { observe(stamp) }
    }

    /// The latest wall time a device whose clock reads `wallMillis` accepts as plausible: its clock plus
    /// ``maximumDriftMillis`` (saturating). Later stamps are "from the future": never observed, never displayed
    /// over a plausible value, and flagged in `history`.
    public static func horizon(_ wallMillis: UInt64) -> UInt64 {
        let (sum, overflow) = wallMillis.addingReportingOverflow(maximumDriftMillis)
        return overflow ? .max : sum
    }

    /// Whether `stamp` lies beyond the horizon of a clock reading `wallMillis`.
    public static func isFromTheFuture(_ stamp: HLCTimestamp, wallMillis: UInt64) -> Bool {
        stamp.wallMillis > horizon(wallMillis)
    }
}
