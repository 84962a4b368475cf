import AmanatCore
import AmanatCrypto
import Foundation
import Testing

@testable import AmanatRelay

/// The PostgreSQL storage reads what a replica lacks in one statement whose rows it takes in the order the plan
/// gives them, and reads again in two statements when they come otherwise: ``MissingAnswer`` must notice every row
/// out of its place, and answer as the SQLite store does with the rows in place.
@Suite struct MissingAnswerTests {
    let a = try! DeviceID(Array(repeating: 1, count: 32))
    let b = try! DeviceID(Array(repeating: 2, count: 32))
    let c = try! DeviceID(Array(repeating: 3, count: 32))

    func body(_ author: DeviceID, _ seq: UInt64, size: Int = 10) -> [UInt8] {
        [author.bytes[0], UInt8(seq)] + Array(repeating: 0, count: size - 2)
    }

    /// A replica with nothing, heads a: 3, b: 2, c: 4.
    func answer(limit: Int = 100, budget: Int = 1 << 20) -> MissingAnswer {
        var answer = MissingAnswer(vector: [:], limit: limit, byteBudget: budget)
        answer.plan([(c, 4, false), (a, 3, false), (b, 2, false)])
        return answer
    }

    @Test func rowsInAuthorThenSeqOrderMakeTheAnswer() {
        var answer = answer(limit: 4)
        #expect(answer.wants.map(\.author) == [a, b, c], "authors in id order")
        #expect(answer.wants.map(\.take) == [3, 1, 0], "each author gets what the limit leaves")
        for (author, seq) in [(a, 1), (a, 2), (a, 3), (b, 1)] as [(DeviceID, UInt64)] {
            #expect(answer.add(author: author, seq: seq) { body(author, seq) })
        }
        let done = answer.finished()
        #expect(done.bodies == [body(a, 1), body(a, 2), body(a, 3), body(b, 1)])
        #expect(done.remaining == 9 - 4)
        #expect(done.diverged.isEmpty)
    }

    @Test func aRowOutOfItsPlaceIsNoticed() {
        // An earlier author after a later one, a seq skipped, a seq repeated, an author that does not lag.
        let cases: [[(DeviceID, UInt64)]] = [
            [(b, 1), (a, 1)],
            [(a, 1), (a, 3)],
            [(a, 1), (a, 1)],
            [(a, 2)],
            [(try! DeviceID(Array(repeating: 9, count: 32)), 1)],
        ]
        for rows in cases {
            var answer = answer()
            let taken = rows.map { author, seq in answer.add(author: author, seq: seq) { body(author, seq) } }
            #expect(taken.last == false, "\(rows.map { ($0.0.bytes[0], $0.1) }) was taken")
            #expect(taken.dropLast().allSatisfy { $0 })
        }
    }

    @Test func theBudgetStopsAnAuthorAndSkipsTheRestOnceSpent() {
        // a's second body does not fit: a stops there; b's fits in what is left and spends the budget; c, after it,
        // gets nothing.
        var answer = MissingAnswer(vector: [:], limit: 100, byteBudget: 25)
        answer.plan([(a, 2, false), (b, 1, false), (c, 1, false)])
        #expect(answer.add(author: a, seq: 1) { body(a, 1, size: 20) })
        #expect(answer.add(author: a, seq: 2) { body(a, 2, size: 20) })
        #expect(answer.add(author: b, seq: 1) { body(b, 1, size: 5) })
        #expect(answer.add(author: c, seq: 1) { body(c, 1, size: 5) })
        let done = answer.finished()
        #expect(done.bodies == [body(a, 1, size: 20), body(b, 1, size: 5)])
        #expect(done.remaining == 2)
    }

    @Test func divergedAndUpToDateAuthorsGetNothing() {
        let vector: [DeviceID: ChainHead] = [a: ChainHead(seq: 3, hash: []), b: ChainHead(seq: 1, hash: [])]
        var answer = MissingAnswer(vector: vector, limit: 100, byteBudget: 1 << 20)
        answer.plan([(a, 3, false), (b, 2, true), (c, 1, false)])
        #expect(answer.wants.map(\.author) == [c])
        #expect(answer.add(author: b, seq: 2) { body(b, 2) } == false, "a diverged author's body was taken")
        let done = answer.finished()
        #expect(done.diverged == [b])
        #expect(done.remaining == 1)
    }
}
