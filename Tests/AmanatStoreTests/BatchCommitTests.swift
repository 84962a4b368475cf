import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import GRDB
import Testing

@testable import AmanatStore

/// `commitBatch` seals its changes on a second thread, a chunk at a time, while the database thread writes the chunk
/// before: each chunk continues the chain, the clock and the records' states where the one before ended.
@Suite struct BatchCommitTests {
    /// The title values and tags each record should end with, and the log's head. A title set without naming the
    /// values it replaces (an empty `pred`) stands beside them, so each record keeps every title set in it.
    static func expectVault(
        _ vault: Vault, titles: [RecordID: Set<String>], tags: [RecordID: [String]], headSeq: UInt64,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let states = Dictionary(uniqueKeysWithValues: try vault.allStates().map { ($0.id, $0) })
        #expect(states.count == titles.count, sourceLocation: sourceLocation)
        for (id, title) in titles {
            let state = try #require(states[id], sourceLocation: sourceLocation)
            #expect(Set(state.values["title"]?.map(\.value) ?? []) == title, sourceLocation: sourceLocation)
            #expect(state.tags.sorted() == (tags[id] ?? []).sorted(), sourceLocation: sourceLocation)
        }
        let head = try vault.database.read { db in try vault.head(db, author: vault.deviceID) }
        #expect(head.seq == headSeq, sourceLocation: sourceLocation)
        // The log replayed from scratch gives every stored row, and the chain links from the first envelope.
        #expect(try vault.verify().problems == [], sourceLocation: sourceLocation)
    }

    @Test func aBatchOfManyChunksEditsItsOwnRecordsAcrossChunksAndTheChainHolds() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let before = try vault.createRecord(kind: "statement", fields: [("title", "old")], tags: [], seal: false)
        let startSeq = try vault.database.read { db in try vault.head(db, author: vault.deviceID) }.seq
        // 100 new records, then 250 edits that reach back several chunks, and one record made before the batch.
        let chunk = Vault.BatchSealer.chunk
        #expect(350 > 5 * chunk, "the batch spans several chunks")
        var items: [(RecordID?, [RecordOperation])] = (0..<100).map { i in
            (nil, [.create(kind: "statement"), .set(field: "title", value: "t\(i)", pred: [])])
        }
        let ids = (0..<100).map { RecordID.derived(author: vault.deviceID, seq: startSeq + 1 + UInt64($0)) }
        var titles = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, Set(["t\($0)"])) })
        var tags: [RecordID: [String]] = [:]
        for i in 0..<250 {
            let id = i % 50 == 49 ? before : ids[(i * 37) % 100]
            if i % 3 == 0 {
                items.append((id, [.addTag("tag\(i)")]))
                tags[id, default: []].append("tag\(i)")
            } else {
                items.append((id, [.set(field: "title", value: "e\(i)", pred: [])]))
                titles[id, default: ["old"]].insert("e\(i)")
            }
        }
        // A record made in the first chunk is changed in the fifth.
        #expect(items[(4 * chunk)...].contains { $0.0 == ids[0] })
        let returned = try vault.commitBatch(items)
        #expect(Array(returned.prefix(100)) == ids)
        try Self.expectVault(vault, titles: titles, tags: tags, headSeq: startSeq + 350)
    }

    /// `list` reads its rows in blocks that other threads open and decode, then moves their views into id order:
    /// every visible record comes back once, in id order, with its own fields, whichever block held it.
    @Test func aListOfManyBlocksIsEveryVisibleRecordOnceInIDOrder() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        // More blocks than are decoded at once, so that reading waits on decoding.
        let count = (Vault.decodeAhead + 2) * Vault.decodeBlock + 300
        let ids = try vault.commitBatch(
            (0..<count).map { i in (nil, [.create(kind: "statement"), .set(field: "title", value: "t\(i)", pred: [])]) }
        )
        // Every seventh record deleted: its row stays, and `list` leaves it out.
        let deleted = Set(ids.enumerated().filter { $0.offset % 7 == 3 }.map(\.element))
        _ = try vault.commitBatch(
            try vault.allStates().filter { deleted.contains($0.id) }.map { ($0.id, [$0.deleteOperation()]) })
        let titles = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, "t\($0)") })
        let listed = try vault.visibleRecords()
        #expect(listed.map(\.id) == ids.filter { !deleted.contains($0) }.sorted())
        #expect(listed.allSatisfy { $0.fields == ["title": titles[$0.id]!] })

        // A row damaged in the middle of the scan: the list stops with one sentence, and the blocks in flight are
        // waited for and freed; put back, the same list again.
        let (slot, body) = try vault.database.read { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT slot, body FROM record LIMIT 1 OFFSET 3000"))
            return (row["slot"] as Data, row["body"] as Data)
        }
        var damaged = body
        damaged[damaged.count / 2] ^= 0x01
        try vault.database.write { db in
            try db.execute(sql: "UPDATE record SET body = ? WHERE slot = ?", arguments: [damaged, slot])
        }
        do {
            _ = try vault.visibleRecords()
            Issue.record("a damaged row was listed")
        } catch let error as StoreError {
            #expect(error.code == .damaged && error.message.contains("does not decrypt"), "\(error.message)")
        }
        try vault.database.write { db in
            try db.execute(sql: "UPDATE record SET body = ? WHERE slot = ?", arguments: [body, slot])
        }
        #expect(try vault.visibleRecords() == listed)
    }

    @Test func aChangeRefusedLateInABatchLeavesTheVaultAsItWas() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let kept = try vault.createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        let startSeq = try vault.database.read { db in try vault.head(db, author: vault.deviceID) }.seq
        var items: [(RecordID?, [RecordOperation])] = (0..<200).map { i in
            (nil, [.create(kind: "statement"), .set(field: "title", value: "t\(i)", pred: [])])
        }
        items.append((kept, [.set(field: "title", value: "changed", pred: [])]))
        // A record created under an id its change does not derive, in the fourth chunk: refused.
        items.append((RecordID.derived(author: vault.deviceID, seq: 1_000_000), [.create(kind: "statement")]))
        items += (0..<40).map { _ in (kept, [RecordOperation.addTag("late")]) }
        do {
            _ = try vault.commitBatch(items)
            Issue.record("a batch with a refused change was committed")
        } catch let error as StoreError {
            #expect(error.code == .invalid)
            #expect(error.message.contains("can only be created by the change whose id it derives"))
        }
        try Self.expectVault(vault, titles: [kept: ["kept"]], tags: [:], headSeq: startSeq)
        // The vault goes on from where it was.
        let next = try vault.commitBatch([
            (nil, [.create(kind: "statement"), .set(field: "title", value: "n", pred: [])])
        ])
        #expect(next == [RecordID.derived(author: vault.deviceID, seq: startSeq + 1)])
        try Self.expectVault(vault, titles: [kept: ["kept"], next[0]: ["n"]], tags: [:], headSeq: startSeq + 1)
    }

    /// A record's id derives from its creating change (this device, the next seq), so another member can change it
    /// before it exists: a new record of a batch starts from the row that change left, as a single commit does.
    @Test func aNewRecordOfABatchKeepsWhatAnotherMemberWroteUnderItsIdFirst() throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        try exchange(a, b)
        let next = try #require(try a.versionVector()[a.deviceID]).seq + 1
        let id = RecordID.derived(author: a.deviceID, seq: next)
        try b.commit(record: id, operations: { _ in [.addTag("early")] })
        try exchange(b, a)
        let created = try a.commitBatch([
            (nil, [.create(kind: "statement"), .set(field: "title", value: "t", pred: [])])
        ])
        #expect(created == [id])
        let state = try #require(try a.allStates().first { $0.id == id })
        #expect(state.tags == ["early"])
        #expect(state.values["title"]?.map(\.value) == ["t"])
        #expect(try a.verify().problems == [])
    }
}
