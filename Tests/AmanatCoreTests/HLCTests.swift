import Testing

@testable import AmanatCore

@Suite("Hybrid logical clock")
struct HLCTests {
    @Test("stamps order by wall time, then counter")
    func ordering() {
        let a = HLCTimestamp(wallMillis: 10, counter: 5)
        let b = HLCTimestamp(wallMillis: 11, counter: 0)
        let c = HLCTimestamp(wallMillis: 11, counter: 1)
        #expect(a < b && b < c && a < c)
        #expect(!(b < b))
        #expect(HLCTimestamp.zero < a)
        #expect(HLCTimestamp(wallMillis: 0, counter: 1) > .zero)
        #expect(HLCTimestamp(wallMillis: 12, counter: 0) > HLCTimestamp(wallMillis: 11, counter: .max))
    }

    @Test("the first tick takes the wall clock with counter 0")
    func firstTick() {
        var clock = HybridLogicalClock()
        #expect(clock.tick(wallMillis: 1_700_000_000_000) == HLCTimestamp(wallMillis: 1_700_000_000_000, counter: 0))
        #expect(clock.last == HLCTimestamp(wallMillis: 1_700_000_000_000, counter: 0))
    }

    @Test("the counter increments within a millisecond and resets when the wall clock advances")
    func counter() {
        var clock = HybridLogicalClock()
        #expect(clock.tick(wallMillis: 1000) == HLCTimestamp(wallMillis: 1000, counter: 0))
        #expect(clock.tick(wallMillis: 1000) == HLCTimestamp(wallMillis: 1000, counter: 1))
        #expect(clock.tick(wallMillis: 1000) == HLCTimestamp(wallMillis: 1000, counter: 2))
        #expect(clock.tick(wallMillis: 1001) == HLCTimestamp(wallMillis: 1001, counter: 0))
    }

    @Test("stamps stay strictly increasing when the wall clock jumps back by hours")
    func wallClockJumpsBack() {
        let hour: UInt64 = 3_600_000
        var clock = HybridLogicalClock()
        let before = clock.tick(wallMillis: 10 * hour)
        let afterJump = clock.tick(wallMillis: 7 * hour)
        #expect(afterJump > before)
        #expect(afterJump == HLCTimestamp(wallMillis: 10 * hour, counter: 1))
        var previous = afterJump
        for step in 0..<1000 {
            let stamp = clock.tick(wallMillis: 7 * hour + UInt64(step))
            #expect(stamp > previous, "step \(step)")
            previous = stamp
        }
        // Once the wall clock catches up, it takes over again.
        #expect(clock.tick(wallMillis: 10 * hour + 5) == HLCTimestamp(wallMillis: 10 * hour + 5, counter: 0))
    }

    @Test("a clock resumed from a stored stamp issues later stamps even if the wall clock is behind")
    func resumed() {
        var clock = HybridLogicalClock(last: HLCTimestamp(wallMillis: 5000, counter: 7))
        #expect(clock.tick(wallMillis: 10) == HLCTimestamp(wallMillis: 5000, counter: 8))
    }

    @Test("observing a future remote stamp makes the next local stamp greater than it")
    func observeFuture() {
        var clock = HybridLogicalClock()
        _ = clock.tick(wallMillis: 1000)
        let remote = HLCTimestamp(wallMillis: 90_000, counter: 42)
        clock.observe(remote)
        let next = clock.tick(wallMillis: 1001)
        #expect(next > remote)
        #expect(next == HLCTimestamp(wallMillis: 90_000, counter: 43))
    }

    @Test("observing an older remote stamp changes nothing")
    func observePast() {
        var clock = HybridLogicalClock()
        let mine = clock.tick(wallMillis: 5000)
        clock.observe(HLCTimestamp(wallMillis: 4000, counter: 9))
        #expect(clock.last == mine)
        #expect(clock.tick(wallMillis: 5000) == HLCTimestamp(wallMillis: 5000, counter: 1))
    }

    @Test("counter overflow rolls into the next millisecond instead of wrapping")
    func counterOverflow() {
        var clock = HybridLogicalClock(last: HLCTimestamp(wallMillis: 777, counter: .max - 1))
        let a = clock.tick(wallMillis: 777)
        #expect(a == HLCTimestamp(wallMillis: 777, counter: .max))
        let b = clock.tick(wallMillis: 777)
        #expect(b == HLCTimestamp(wallMillis: 778, counter: 0))
        #expect(b > a)
        let c = clock.tick(wallMillis: 100)
        #expect(c == HLCTimestamp(wallMillis: 778, counter: 1))
        var observed = HybridLogicalClock()
        observed.observe(HLCTimestamp(wallMillis: 50, counter: .max))
        #expect(observed.tick(wallMillis: 50) == HLCTimestamp(wallMillis: 51, counter: 0))
    }
}

@Suite("Hybrid logical clock: hostile stamps")
struct HLCHostileStampTests {
    @Test("a peer's stamp at the end of time does not crash the next local tick")
    func stampAtEndOfTime() async {
        await #expect(processExitsWith: .success) {
            var clock = HybridLogicalClock()
            clock.observe(HLCTimestamp(wallMillis: .max, counter: .max))
            _ = clock.tick(wallMillis: 1_700_000_000_000)
        }
    }

    @Test("a stamp more than a day ahead of the local clock is not observed; a nearer one is")
    func driftIsBounded() {
        var clock = HybridLogicalClock()
        let now: UInt64 = 1_700_000_000_000
        clock.observe(
            HLCTimestamp(wallMillis: now + HybridLogicalClock.maximumDriftMillis + 1, counter: 0), wallMillis: now)
        #expect(clock.tick(wallMillis: now) == HLCTimestamp(wallMillis: now, counter: 0))
        clock.observe(HLCTimestamp(wallMillis: now + 60_000, counter: 5), wallMillis: now)
        #expect(clock.tick(wallMillis: now + 1) == HLCTimestamp(wallMillis: now + 60_000, counter: 6))
        clock.observe(HLCTimestamp(wallMillis: .max, counter: .max), wallMillis: .max - 5)
        #expect(clock.last == HLCTimestamp(wallMillis: .max, counter: .max))
        #expect(clock.tick(wallMillis: 0) == HLCTimestamp(wallMillis: .max, counter: .max), "saturates, never traps")
    }
}
