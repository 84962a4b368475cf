import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

/// A member whose client writes odd but genuinely signed changes: honest replicas take them in any order and
/// still converge, and nothing they show depends on which arrived first.
@Suite struct MaliciousPeerTests {
    @Test func predsNamingOtherFieldsOrNothingAndEditsOfUnknownRecordsConvergeInAnyOrder() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (author, first, second) = (team[0], team[1], team[2])
        let record = try author.createRecord(
            kind: "statement", fields: [("title", "t"), ("body", "b")], tags: ["x"], seal: false)
        let honest = try author.envelopes(of: author.deviceID, after: 0, limit: 100)
        let state = try author.resolveRecord(record.hex)
        let bodyOp = try #require(state.values["body"]?.first?.op)

        // A member's modified client: a set of `title` whose pred names the op of `body`; a set naming an op that
        // does not exist; an edit and a tag on a record nobody created; an empty change.
        let mole = first
        var chain = ForgedChain(
            vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let key = writingKey(of: mole)
        let ghost = try #require(RecordID(hex: String(repeating: "ab", count: 16)))
        let missing = OpID(device: author.deviceID, seq: 999, index: 7)
        let odd = [
            try chain.change(record, key: key, at: stampNow(), [.set(field: "title", value: "t2", pred: [bodyOp])]),
            try chain.change(record, key: key, at: stampNow(), [.set(field: "body", value: "b2", pred: [missing])]),
            try chain.change(ghost, key: key, at: stampNow(), [.set(field: "title", value: "ghost", pred: [])]),
            try chain.change(ghost, key: key, at: stampNow(), [.addTag("ghost")]),
            try chain.change(record, key: key, at: stampNow(), []),
        ]
        let moleChain = try mole.envelopes(of: mole.deviceID, after: 0, limit: 100)

        // Two honest replicas receive the same envelopes in opposite orders.
        try first.ingest(honest)
        for envelope in odd.reversed() { _ = try? second.ingest([envelope]) }  // out of order: refused, nothing kept
        try second.ingest(moleChain + odd)
        try second.ingest(honest)
        try first.ingest(odd)
        #expect(try first.status().stateDigest == second.status().stateDigest)
        let view = try #require(try second.resolveRecord(record.hex).view)
        // Removal by op id is global within a record (Docs/architecture.md): the title's pred removed the body's
        // first value, and overwrote no title value, so the title shows a conflict; a pred naming nothing
        // removes nothing.
        #expect(Set([view.fields["title"]] + (view.conflicts["title"] ?? []).map(Optional.some)) == ["t", "t2"])
        #expect(view.fields["body"] == "b2" && view.conflicts["body"] == nil)
        #expect(try second.visibleRecords().map(\.id) == [record], "a record nobody created is never shown")
        #expect(try second.verify().problems == [])
        #expect(try first.verify().problems == [])
    }
}
