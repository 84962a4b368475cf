import AmanatCrypto
import Testing

@testable import AmanatCore

@Suite("RecordState semantics")
struct RecordStateTests {
    let alice: DeviceID
    let bob: DeviceID
    let carol: DeviceID
    let record: RecordID
    /// Alice creates a statement with a title.
    let base: AuthoredChange

    init() throws {
        alice = try makeDevice(1)
        bob = try makeDevice(2)
        carol = try makeDevice(3)
        record = try makeRecord(1)
        base = authored(
            alice, 1, record, wall: 1000,
            [.create(kind: "statement"), .set(field: "title", value: "draft", pred: [])])
    }

    @Test("a created record shows its kind and fields")
    func created() throws {
        let s = state(of: record, after: [base])
        let view = try #require(s.view)
        #expect(view.id == record)
        #expect(view.kind == "statement")
        #expect(view.fields == ["title": "draft"])
        #expect(view.conflicts.isEmpty)
        #expect(view.tags.isEmpty)
        #expect(!view.isSealed)
        #expect(s.creationOp == base.opID(0))
    }

    @Test("concurrent sets of one field: a conflict, won by the greater stamp")
    func concurrentSetsByStamp() throws {
        let s0 = state(of: record, after: [base])
        // Bob's stamp is later even though Carol's device id is greater.
        let fromBob = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "bob")])
        let fromCarol = authored(carol, 1, record, wall: 1500, [s0.setOperation(field: "title", value: "carol")])
        for order in [[base, fromBob, fromCarol], [base, fromCarol, fromBob], [fromCarol, fromBob, base]] {
            let s = state(of: record, after: order)
            let view = try #require(s.view)
            #expect(view.fields["title"] == "bob")
            #expect(view.conflicts == ["title": ["carol"]])
            #expect(s.visibleValues(of: "title").map(\.value) == ["bob", "carol"])
        }
    }

    @Test("concurrent sets with equal stamps: the greater device id wins")
    func concurrentSetsByDevice() throws {
        let s0 = state(of: record, after: [base])
        let fromAlice = authored(alice, 2, record, wall: 2000, [s0.setOperation(field: "title", value: "alice")])
        let fromBob = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "bob")])
        let fromCarol = authored(carol, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "carol")])
        for order in [[base, fromAlice, fromBob, fromCarol], [fromCarol, base, fromBob, fromAlice]] {
            let view = try #require(state(of: record, after: order).view)
            #expect(view.fields["title"] == "carol")
            #expect(view.conflicts["title"] == ["bob", "alice"], "losers, best first")
        }
        // A greater counter in the same millisecond beats a greater device id.
        let late = authored(alice, 3, record, wall: 2000, counter: 1, [s0.setOperation(field: "title", value: "late")])
        let view = try #require(state(of: record, after: [base, fromCarol, late]).view)
        #expect(view.fields["title"] == "late")
        #expect(view.conflicts["title"] == ["carol"])
    }

    @Test("a set built from the merged state overwrites every conflicting value and clears the conflict")
    func resolveConflict() throws {
        let s0 = state(of: record, after: [base])
        let fromBob = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "bob")])
        let fromCarol = authored(carol, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "carol")])
        let merged = state(of: record, after: [base, fromBob, fromCarol])
        let resolveOp = merged.setOperation(field: "title", value: "agreed")
        guard case .set(_, _, let pred) = resolveOp else {
            Issue.record("setOperation did not build a set")
            return
        }
        #expect(Set(pred) == [fromBob.opID(0), fromCarol.opID(0)])
        // The resolution is stamped earlier than both: it still wins, because it observed them.
        let resolution = authored(alice, 2, record, wall: 1800, [resolveOp])
        for order in [[base, fromBob, fromCarol, resolution], [resolution, fromCarol, base, fromBob]] {
            let s = state(of: record, after: order)
            let view = try #require(s.view)
            #expect(view.fields == ["title": "agreed"])
            #expect(view.conflicts.isEmpty)
            #expect(s.overwritten.isSuperset(of: [base.opID(1), fromBob.opID(0), fromCarol.opID(0)]))
        }
    }

    @Test("a set that overwrote only one side leaves the other conflicting value visible")
    func partialOverwrite() throws {
        let s0 = state(of: record, after: [base])
        let fromBob = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "bob")])
        let fromCarol = authored(carol, 1, record, wall: 2001, [s0.setOperation(field: "title", value: "carol")])
        let bobAgain = authored(
            bob, 2, record, wall: 2002,
            [state(of: record, after: [base, fromBob]).setOperation(field: "title", value: "bob2")])
        let view = try #require(state(of: record, after: [base, fromBob, fromCarol, bobAgain]).view)
        #expect(view.fields["title"] == "bob2")
        #expect(view.conflicts["title"] == ["carol"])
    }

    @Test("a set arriving before the value it overwrites still hides that value")
    func overwriteBeforeTarget() throws {
        let s0 = state(of: record, after: [base])
        let edit = authored(bob, 1, record, wall: 900, [s0.setOperation(field: "title", value: "final")])
        let view = try #require(state(of: record, after: [edit, base]).view)
        #expect(view.fields == ["title": "final"])
        #expect(view.conflicts.isEmpty)
    }

    @Test("an edit concurrent with a delete keeps the record visible")
    func editConcurrentWithDelete() throws {
        let s0 = state(of: record, after: [base])
        let delete = authored(alice, 2, record, wall: 3000, [s0.deleteOperation()])
        let edit = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "kept")])
        #expect(state(of: record, after: [base, delete]).view == nil)
        for order in [[base, delete, edit], [base, edit, delete], [edit, delete, base]] {
            let s = state(of: record, after: order)
            #expect(s.isVisible)
            let view = try #require(s.view)
            #expect(view.fields["title"] == "kept")
        }
        // A concurrent tag also keeps it.
        let tag = authored(carol, 1, record, wall: 2000, [.addTag("evidence")])
        #expect(state(of: record, after: [base, delete, tag]).view?.tags == ["evidence"])
    }

    @Test("a delete that observed everything hides the record, whatever the order")
    func deleteObservedEverything() throws {
        let s0 = state(of: record, after: [base])
        let edit = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "x"), .addTag("t")])
        let merged = state(of: record, after: [base, edit])
        let delete = authored(alice, 2, record, wall: 1000, counter: 5, [merged.deleteOperation()])
        for order in [[base, edit, delete], [delete, edit, base], [edit, delete, base]] {
            let s = state(of: record, after: order)
            #expect(!s.isVisible)
            #expect(s.view == nil)
        }
        // An edit made after seeing the delete brings the record back (edits win over deletes they did not see).
        let deleted = state(of: record, after: [base, edit, delete])
        let revive = authored(carol, 1, record, wall: 5000, [deleted.setOperation(field: "title", value: "back")])
        #expect(state(of: record, after: [base, edit, delete, revive]).view?.fields["title"] == "back")
    }

    @Test("deleteOperation observes exactly the live operations")
    func deleteOperationContents() throws {
        let s0 = state(of: record, after: [base])
        let edit = authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "title", value: "x"), .addTag("t")])
        let s = state(of: record, after: [base, edit])
        // base.opID(1) was overwritten, so it is not live any more.
        #expect(s.liveOperations == [base.opID(0), edit.opID(0), edit.opID(1)])
        #expect(s.deleteOperation() == .delete(observed: [base.opID(0), edit.opID(0), edit.opID(1)].sorted()))
    }

    @Test("tags are an observed-remove set: a concurrent add survives a remove")
    func observedRemoveTags() throws {
        let add1 = authored(alice, 2, record, wall: 2000, [.addTag("urgent")])
        let seen = state(of: record, after: [base, add1])
        #expect(seen.view?.tags == ["urgent"])
        let removeOp = try #require(seen.removeTagOperation("urgent"))
        #expect(removeOp == .removeTag("urgent", observed: [add1.opID(0)]))
        let remove = authored(bob, 1, record, wall: 3000, [removeOp])
        let add2 = authored(carol, 1, record, wall: 2500, [.addTag("urgent")])
        #expect(state(of: record, after: [base, add1, remove]).view?.tags == [])
        for order in [[base, add1, remove, add2], [add2, remove, add1, base], [remove, base, add2, add1]] {
            let s = state(of: record, after: order)
            #expect(s.view?.tags == ["urgent"])
            #expect(s.tagOperations(for: "urgent") == [add2.opID(0)])
        }
        // Removing what is visible now removes both adds.
        let all = state(of: record, after: [base, add1, remove, add2])
        let removeAll = authored(alice, 3, record, wall: 4000, [try #require(all.removeTagOperation("urgent"))])
        #expect(state(of: record, after: [base, add1, remove, add2, removeAll]).view?.tags == [])
        #expect(all.removeTagOperation("absent") == nil)
    }

    @Test("a remove arriving before its add keeps the add removed")
    func removeBeforeAdd() throws {
        let add = authored(alice, 2, record, wall: 2000, [.addTag("x"), .addTag("y")])
        let remove = authored(bob, 1, record, wall: 2100, [.removeTag("x", observed: [add.opID(0)])])
        let s = state(of: record, after: [remove, add, base])
        #expect(s.view?.tags == ["y"])
    }

    @Test("tags are sorted and shown once however often they were added")
    func tagsSortedUnique() throws {
        let a = authored(alice, 2, record, wall: 2000, [.addTag("zeta"), .addTag("alpha"), .addTag("zeta")])
        let b = authored(bob, 1, record, wall: 2000, [.addTag("alpha")])
        let s = state(of: record, after: [base, a, b])
        #expect(s.view?.tags == ["alpha", "zeta"])
        #expect(s.tagOperations(for: "zeta") == [a.opID(0), a.opID(2)])
    }

    @Test("edits known before the create stay hidden until the create arrives")
    func createArrivesLate() throws {
        let edit = authored(bob, 1, record, wall: 2000, [.set(field: "body", value: "b", pred: []), .addTag("t")])
        let early = state(of: record, after: [edit])
        #expect(early.view == nil)
        #expect(!early.isVisible)
        let view = try #require(state(of: record, after: [edit, base]).view)
        #expect(view.fields == ["title": "draft", "body": "b"])
        #expect(view.tags == ["t"])
    }

    @Test("two creates: the smaller operation id gives the kind, in any order")
    func twoCreates() throws {
        let other = authored(bob, 1, record, wall: 500, [.create(kind: "testimony")])
        for order in [[base, other], [other, base]] {
            let s = state(of: record, after: order)
            #expect(s.creationOp == base.opID(0))
            #expect(s.view?.kind == "statement")
        }
    }

    @Test("a seal marks the record sealed; concurrent seals keep the smallest operation")
    func seals() throws {
        let hashA = RecordState.sealHash(kind: "testimony", fields: [("narrative", "a")])
        let hashB = RecordState.sealHash(kind: "testimony", fields: [("narrative", "b")])
        let sealB = authored(bob, 1, record, wall: 2000, [.seal(contentHash: hashB)])
        let sealA = authored(carol, 1, record, wall: 1000, [.seal(contentHash: hashA)])
        for order in [[base, sealA, sealB], [sealB, base, sealA]] {
            let s = state(of: record, after: order)
            #expect(s.view?.isSealed == true)
            #expect(s.seal?.op == sealB.opID(0), "bob's device id is smaller")
            #expect(s.seal?.contentHash == hashB)
            #expect(s.seal?.timestamp == HLCTimestamp(wallMillis: 2000, counter: 0))
        }
    }

    @Test("the seal hash covers kind, field names and values, independent of field order")
    func sealHash() {
        let h = RecordState.sealHash(kind: "testimony", fields: [("a", "1"), ("b", "2")])
        #expect(h.count == 32)
        #expect(h == RecordState.sealHash(kind: "testimony", fields: [("b", "2"), ("a", "1")]))
        #expect(h != RecordState.sealHash(kind: "statement", fields: [("a", "1"), ("b", "2")]))
        #expect(h != RecordState.sealHash(kind: "testimony", fields: [("a", "1"), ("b", "3")]))
        #expect(h != RecordState.sealHash(kind: "testimony", fields: [("a", "1")]))
        // Length prefixes keep field boundaries unambiguous.
        #expect(h != RecordState.sealHash(kind: "testimony", fields: [("a", "1b"), ("", "2")]))
        #expect(
            RecordState.sealHash(kind: "t", fields: [("ab", "")])
                != RecordState.sealHash(kind: "t", fields: [("a", "b")]))
    }

    @Test("applying a change twice changes nothing and reports it")
    func idempotentApply() throws {
        var s = RecordState(id: record)
        let edit = authored(bob, 1, record, wall: 2000, [.addTag("t")])
        let first = [s.apply(base), s.apply(edit)]
        #expect(first == [true, true])
        let once = s
        let second = [s.apply(base), s.apply(edit)]
        #expect(second == [false, false])
        #expect(s == once)
        #expect(s.encoded() == once.encoded())
        #expect(s.changes.count == 2)
    }

    @Test("the change history is ordered by (stamp, author, seq), whatever the arrival order")
    func history() throws {
        let c1 = authored(bob, 1, record, wall: 3000, [.addTag("a")])
        let c2 = authored(carol, 1, record, wall: 2000, [.addTag("b")])
        let c3 = authored(alice, 2, record, wall: 2000, [.addTag("c")])
        let s = state(of: record, after: [c1, base, c2, c3])
        #expect(
            s.changes.map { [$0.author.bytes[0], UInt8($0.seq)] } == [[1, 1], [1, 2], [3, 1], [2, 1]])
    }
}

@Suite("RecordState encoding")
struct RecordStateEncodingTests {
    /// A state that exercises every component: conflicts, overwritten values, tags added and removed,
    /// a delete that a concurrent edit survives, and a seal.
    static func richState() throws -> RecordState {
        let alice = try makeDevice(1)
        let bob = try makeDevice(2)
        let carol = try makeDevice(3)
        let record = try makeRecord(4)
        let base = authored(
            alice, 1, record, wall: 1000,
            [.create(kind: "testimony"), .set(field: "narrative", value: "n", pred: []), .addTag("x")])
        let s0 = state(of: record, after: [base])
        let changes = [
            base,
            authored(bob, 1, record, wall: 2000, [s0.setOperation(field: "narrative", value: "bob"), .addTag("y")]),
            authored(carol, 1, record, wall: 2000, [s0.setOperation(field: "narrative", value: "carol")]),
            authored(carol, 2, record, wall: 2001, [.removeTag("x", observed: [base.opID(2)])]),
            authored(alice, 2, record, wall: 1500, [s0.deleteOperation()]),
            authored(
                bob, 2, record, wall: 2500,
                [.seal(contentHash: RecordState.sealHash(kind: "testimony", fields: [("narrative", "bob")]))]),
            authored(alice, 3, record, wall: 2600, [.set(field: "date", value: "2021-08-15", pred: [])]),
        ]
        return state(of: record, after: changes)
    }

    @Test("decoding the encoding gives back an equal state")
    func roundTrip() throws {
        let s = try Self.richState()
        #expect(s.view?.conflicts["narrative"] == ["bob"])
        let decoded = try RecordState(decoding: s.encoded())
        #expect(decoded == s)
        #expect(decoded.encoded() == s.encoded())
        #expect(decoded.view == s.view)
        let empty = RecordState(id: try makeRecord(9))
        #expect(try RecordState(decoding: empty.encoded()) == empty)
    }

    @Test("a decoded state keeps converging: applying more changes gives the same as applying them to the original")
    func decodedStateStillMerges() throws {
        var original = try Self.richState()
        var decoded = try RecordState(decoding: original.encoded())
        let later = authored(try makeDevice(4), 1, original.id, wall: 9000, [original.deleteOperation()])
        original.apply(later)
        decoded.apply(later)
        #expect(decoded == original)
        let reapplied = decoded.apply(later)
        #expect(!reapplied)
    }

    @Test("every truncation, trailing byte and unknown version is rejected")
    func malformed() throws {
        let bytes = try Self.richState().encoded()
        for length in 0..<bytes.count {
            #expect(throws: CoreError.self, "cut to \(length)") {
                try RecordState(decoding: Array(bytes.prefix(length)))
            }
        }
        #expect(coreErrorCode { try RecordState(decoding: bytes + [0]) } == .malformed)
        var newer = bytes
        newer[0] = 2
        #expect(coreErrorCode { try RecordState(decoding: newer) } == .unsupportedVersion)
    }

    @Test("presence flags other than 0 and 1 are rejected, so every stored state has one encoding")
    func presenceFlags() throws {
        let empty = RecordState(id: try makeRecord(9)).encoded()
        // version, 16-byte id, then the creation flag.
        #expect(empty[17] == 0)
        for flag: UInt8 in [2, 0x80, 0xff] {
            var bytes = empty
            bytes[17] = flag
            #expect(throws: CoreError.self, "flag \(flag)") { try RecordState(decoding: bytes) }
        }
    }

    @Test("equal states encode to equal bytes, and different states to different bytes")
    func canonical() throws {
        let s = try Self.richState()
        var other = s
        other.apply(authored(try makeDevice(9), 1, s.id, wall: 1, [.addTag("z")]))
        #expect(other.encoded() != s.encoded())
        #expect(StateDigest.compute([other]) != StateDigest.compute([s]))
        #expect(StateDigest.compute([s]) == StateDigest.compute([try RecordState(decoding: s.encoded())]))
    }

    @Test("the state digest does not depend on the order the states are listed in")
    func digestOrder() throws {
        let a = try Self.richState()
        var b = RecordState(id: try makeRecord(1))
        b.apply(authored(try makeDevice(1), 5, b.id, wall: 1, [.create(kind: "statement")]))
        let c = RecordState(id: try makeRecord(200))
        let d = StateDigest.compute([a, b, c])
        #expect(d.count == 32)
        #expect(StateDigest.compute([c, a, b]) == d)
        #expect(StateDigest.compute([b, c, a]) == d)
        #expect(StateDigest.compute([a, b]) != d)
        #expect(StateDigest.compute([]) != d)
        // The order it hashes in: ids sorted, each state once.
        let ids = [a, b, c].map(\.id).sorted(by: <)
        #expect([c, a, b].sortedByID().map(\.id) == ids && [b, c, a].sortedByID().map(\.id) == ids)
        #expect(
            [c, a, b].sortedByID().map { $0.encoded() } == ids.map { id in [a, b, c].first { $0.id == id }!.encoded() })
    }
}

@Suite struct CanonicalEquivalenceTests {
    /// Two replicas that receive the two spellings of one tag and one field name in opposite orders write the same
    /// state bytes (Protocol/change.md §5): names and tags are written in NFC, whichever spelling came first.
    @Test func theStateBytesDoNotDependOnWhichSpellingArrivedFirst() throws {
        let record = try RecordID(Array(repeating: 7, count: 16))
        let a = try DeviceID(Array(repeating: 1, count: 32))
        let b = try DeviceID(Array(repeating: 2, count: 32))
        let stamp = HLCTimestamp(wallMillis: 1_700_000_000_000, counter: 0)
        let decomposed = AuthoredChange(
            author: a, seq: 1,
            change: Change(
                record: record, timestamp: stamp,
                operations: [
                    .create(kind: "statement"), .set(field: "note\u{301}", value: "x", pred: []), .addTag("e\u{301}"),
                ]))
        let composed = AuthoredChange(
            author: b, seq: 1,
            change: Change(
                record: record, timestamp: stamp,
                operations: [.set(field: "not\u{e9}", value: "y", pred: []), .addTag("\u{e9}"), .addTag("t2")]))
        var first = RecordState(id: record)
        first.apply(decomposed)
        first.apply(composed)
        var second = RecordState(id: record)
        second.apply(composed)
        second.apply(decomposed)
        #expect(first.encoded() == second.encoded())
        #expect(first.tags == ["t2", "\u{e9}"])
        #expect(first.tags.map { Array($0.utf8) } == [Array("t2".utf8), [0xC3, 0xA9]])
        let view = try #require(first.view(nowMillis: stamp.wallMillis))
        #expect(view.fields.keys.map { Array($0.utf8) } == [Array("not\u{e9}".utf8)])
        #expect(view.conflicts.values.first?.count == 1)
    }
}
