import Foundation
import Testing

@testable import AmanatCore

/// Record ids are held as two numbers; their order, bytes and hashing must be those of the 16 bytes, and the
/// in-place sort that `list` and the state digest use must put any array in that order.
@Suite("Record ids: byte order and the in-place sort")
struct RecordIDOrderTests {
    /// $AMANAT_SEED replays a run; each test prints the seed it used.
    static func seed(_ test: String) -> UInt64 {
        let seed = UInt64(ProcessInfo.processInfo.environment["AMANAT_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("\(test) seed: \(seed) (AMANAT_SEED=\(seed) replays it)")
        return seed
    }

    @Test("an id keeps its bytes, and ids compare as their bytes do")
    func byteOrder() throws {
        let seed = Self.seed("record id order")
        var rng = SplitMix64(seed: seed)
        for _ in 0..<2000 {
            // Half the pairs differ in one byte (equal ids and equal halves are common), half are random: a one-byte
            // difference alone agrees with many wrong orders, random pairs tell them from byte order.
            let nearby = Bool.random(using: &rng)
            let a = (0..<16).map { _ in UInt8.random(in: nearby ? 0...3 : 0...255, using: &rng) }
            var b = nearby ? a : (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if nearby { b[Int.random(in: 0..<16, using: &rng)] = UInt8.random(in: 0...3, using: &rng) }
            let x = try RecordID(a)
            let y = try RecordID(b)
            #expect(x.bytes == a, "seed \(seed)")
            #expect(RecordID(hex: x.hex) == x, "seed \(seed)")
            #expect((x < y) == a.lexicographicallyPrecedes(b), "seed \(seed): \(x) against \(y)")
            #expect((x == y) == (a == b), "seed \(seed)")
            #expect(Set([x, y]).count == (a == b ? 1 : 2), "seed \(seed)")
        }
    }

    @Test("sortByID puts every element where a plain sort by bytes does, duplicates and all")
    func inPlaceSort() throws {
        let seed = Self.seed("sortByID")
        var rng = SplitMix64(seed: seed)
        for _ in 0..<200 {
            let count = Int.random(in: 0...300, using: &rng)
            // A small alphabet makes equal ids and equal first halves common.
            var elements: [(id: RecordID, payload: [String])] = try (0..<count).map { n in
                let bytes = (0..<16).map { _ in UInt8.random(in: 0...1, using: &rng) }
                return (try RecordID(bytes), ["element \(n)"])
            }
            let expected = elements.enumerated().sorted {
                $0.element.id.bytes.lexicographicallyPrecedes($1.element.id.bytes)
                    || ($0.element.id == $1.element.id && $0.offset < $1.offset)
            }.map(\.element)
            elements.sortByID(\.id)
            guard elements.map(\.id) == expected.map(\.id) else {
                Issue.record("seed \(seed): \(count) elements are not in byte order after sortByID")
                return
            }
            // Every payload is still there once: the permutation moved elements, it did not lose or repeat them.
            let moved: [String] = elements.map { $0.payload[0] }.sorted()
            let all: [String] = expected.map { $0.payload[0] }.sorted()
            #expect(moved == all, "seed \(seed)")
        }
    }
}
