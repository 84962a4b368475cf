import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

/// A member whose client stamps its changes far in the future (a hostile clock, or a laptop set to the wrong
/// year): its value never decides what honest replicas display, `history` flags it, and the state stays the same
/// on every replica whatever their clocks.
@Suite struct FutureStampTests {
    /// The stamp of the issue that found this: the year 506713.
    static let endOfTime = HLCTimestamp(wallMillis: 15_928_000_000_000_000, counter: 0)

    /// `author` creates a statement that `witness` and `mole` both receive; `witness` edits its location honestly
    /// while `mole`'s modified client sets it with `stamp`, concurrently. Returns the record and both changes.
    func concurrentEdits(
        _ team: [Vault], stamp: HLCTimestamp
    ) throws -> (record: RecordID, honest: [Envelope], hostile: [Envelope]) {
        let (author, mole, witness) = (team[0], team[1], team[2])
        let record = try author.createRecord(
            kind: "statement", fields: [("title", "Statement"), ("location", "Kabul")], tags: [], seal: false)
        let created = try author.envelopes(of: author.deviceID, after: 0, limit: 100)
        try mole.ingest(created)
        try witness.ingest(created)
        try witness.commit(record: record) { state in
            [try #require(state).setOperation(field: "location", value: "Herat")]
        }
        let prior = try mole.resolveRecord(record.hex)
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let hostile = try chain.change(
            record, key: writingKey(of: mole), at: stamp, [prior.setOperation(field: "location", value: "Mazar")])
        let moleChain = try mole.envelopes(of: mole.deviceID, after: 0, limit: 100) + [hostile]
        let honest = try witness.envelopes(of: witness.deviceID, after: 0, limit: 100)
        return (record, honest, moleChain)
    }

    @Test func aStampAtTheEndOfTimeNeverDecidesTheDisplayedValueOnAnyReplica() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(4, in: dir)
        let (record, honest, hostile) = try concurrentEdits(team, stamp: Self.endOfTime)
        let (author, witness, bystander) = (team[0], team[2], team[3])
        try bystander.ingest(try author.envelopes(of: author.deviceID, after: 0, limit: 100))

        // The coordinator receives the honest edit first; the bystander receives the hostile one first.
        try author.ingest(honest)
        try author.ingest(hostile)
        try bystander.ingest(hostile)
        try bystander.ingest(honest)
        try witness.ingest(hostile)

        for replica in [author, witness, bystander] {
            let view = try #require(try replica.visibleRecords().first { $0.id == record })
            #expect(view.fields["location"] == "Herat", "the value stamped in the year 506713 must not win")
            #expect(view.conflicts["location"] == ["Mazar"], "the hostile value stays visible as a conflict")
            #expect(try replica.verify().problems == [])
        }
        let digests = try [author, witness, bystander].map { try $0.status().stateDigest }
        #expect(Set(digests).count == 1, "the state does not depend on arrival order or clocks")

        // The hostile stamp did not drag this device's clock into the future: its next change is stamped now.
        try author.commit(record: record) { state in [try #require(state).addTagOperation("checked")] }
        let own = try author.history(of: author.resolveRecord(record.hex)).filter {
            $0.change.author == author.deviceID
        }
        let newest = try #require(own.last)
        #expect(newest.change.change.operations == [.addTag("checked")])
        #expect(newest.change.change.timestamp.wallMillis < Self.endOfTime.wallMillis / 1000)
    }

    @Test func aValueFromTheFutureWinsOnceTheClockCatchesUpWithIt() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        // Thirty days ahead: a laptop whose clock is a month fast.
        let ahead = HLCTimestamp(wallMillis: now + 30 * 86_400_000, counter: 0)
        let (record, honest, hostile) = try concurrentEdits(team, stamp: ahead)
        let author = team[0]
        try author.ingest(honest)
        try author.ingest(hostile)
        #expect(try author.visibleRecords().first { $0.id == record }?.fields["location"] == "Herat")
        let digest = try author.status().stateDigest

        // A month later, the stamp is within this device's horizon: the stored views follow the clock.
        author.wallClock = { now + 31 * 86_400_000 }
        try author.refreshDisplayedValues()
        let later = try #require(try author.visibleRecords().first { $0.id == record })
        #expect(later.fields["location"] == "Mazar")
        #expect(later.conflicts["location"] == ["Herat"])
        #expect(try author.status().stateDigest == digest, "only what is displayed changed, not the state")
        #expect(try author.verify().problems == [])
    }

    @Test func historyFlagsTheStampAndShowsNoCalendarDateForIt() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (record, honest, hostile) = try concurrentEdits(team, stamp: Self.endOfTime)
        let author = team[0]
        try author.ingest(honest)
        try author.ingest(hostile)
        let url = author.directory

        let history = try AmanatBinary.run(["history", record.hex], vault: url, passphrase: "test passphrase")
        #expect(history.status == 0, "\(history.stderr)")
        #expect(history.stdout.contains("time 15928000000000000 ms"))
        #expect(!history.stdout.contains("506713"))
        let warnings = history.stdout.split(separator: "\n").filter { $0.contains("ahead of this device's clock") }
        #expect(warnings.count == 1, "\(history.stdout)")
        #expect(warnings.first?.contains("it does not decide which value is shown") == true)
        let show = try AmanatBinary.run(["show", record.hex, "--json"], vault: url, passphrase: "test passphrase")
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains("\"Herat\""))
    }
}
