import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

/// A sync file that was tampered with is refused with a clear error, and the vault is left exactly as it was.
@Suite struct SyncFileTamperingTests {
    /// Writer's vault with 3 changes in a sync file, and a reader's vault with one record of its own.
    struct Fixture {
        let dir: TemporaryDirectory
        let writer: Vault
        let reader: Vault
        let stick: URL
        let readerDigest: [UInt8]
        let readerChanges: Int

        init() async throws {
            dir = try TemporaryDirectory()
            let team = try makeTeam(2, in: dir)
            writer = team[0]
            reader = team[1]
            for i in 0..<3 {
                _ = try writer.createRecord(kind: "statement", fields: [("title", "s\(i)")], tags: [], seal: false)
            }
            _ = try reader.createRecord(kind: "statement", fields: [("title", "mine")], tags: [], seal: false)
            stick = dir.path("stick.sync")
            let carrier = try FileCarrier(url: stick, vaultID: writer.vaultID)
            _ = try await SyncSession(vault: writer, carrier: carrier).run()
            readerDigest = try reader.status().stateDigest
            readerChanges = try reader.changeCount()
        }

        var file: SyncFile { get throws { try SyncFile.open(at: stick, vaultID: writer.vaultID, create: false) } }

        /// Pulls from the tampered file: must throw a StoreError whose message contains `words`; nothing changes.
        func expectRefused(mentioning words: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            do {
                let carrier = try FileCarrier(url: stick, vaultID: reader.vaultID, create: false)
                _ = try await SyncSession(vault: reader, carrier: carrier).run()
                Issue.record("tampered sync file was accepted", sourceLocation: sourceLocation)
            } catch let error as StoreError {
                #expect(
                    error.message.lowercased().contains(words.lowercased()), "\(error.message)",
                    sourceLocation: sourceLocation)
            }
            #expect(try reader.status().stateDigest == readerDigest, sourceLocation: sourceLocation)
            #expect(try reader.changeCount() == readerChanges, sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [130, 160, 200, -40, -1])
    func aFlippedByteInAnEnvelopeIsRefused(offset: Int) async throws {
        let f = try await Fixture()
        let envelopes = try f.file.envelopes(of: f.writer.deviceID, after: 1, limit: 1)
        var body = try #require(envelopes.first).encoded()
        let position = offset >= 0 ? offset : body.count + offset
        body[position] ^= 0x04
        try f.file.executeForTesting("UPDATE envelope SET body = ? WHERE (id & 1099511627775) = 2", [Data(body)])
        try await f.expectRefused(mentioning: "refused")
    }

    @Test func aRemovedEnvelopeIsRefused() async throws {
        let f = try await Fixture()
        try f.file.executeForTesting("DELETE FROM envelope WHERE (id & 1099511627775) = 2")
        try await f.expectRefused(mentioning: "skips")
    }

    @Test func swappedEnvelopesAreRefused() async throws {
        let f = try await Fixture()
        try f.file.executeForTesting(
            """
            UPDATE envelope SET body = CASE (id & 1099511627775)
                WHEN 1 THEN (SELECT body FROM envelope WHERE (id & 1099511627775) = 2)
                WHEN 2 THEN (SELECT body FROM envelope WHERE (id & 1099511627775) = 1) END
            WHERE (id & 1099511627775) IN (1, 2)
            """)
        try await f.expectRefused(mentioning: "damaged change")
    }

    @Test func aTruncatedFileIsRefused() async throws {
        let f = try await Fixture()
        let data = try Data(contentsOf: f.stick)
        try data.prefix(data.count / 2).write(to: f.stick)
        do {
            let carrier = try FileCarrier(url: f.stick, vaultID: f.reader.vaultID, create: false)
            _ = try await SyncSession(vault: f.reader, carrier: carrier).run()
            Issue.record("truncated file accepted")
        } catch let error as StoreError {
            #expect(error.code == .damaged || error.code == .rejected, "\(error)")
        }
        #expect(try f.reader.status().stateDigest == f.readerDigest)
    }

    @Test func aSyncFileOfAnotherVaultIsRefused() async throws {
        let f = try await Fixture()
        let other = try Vault.create(
            at: f.dir.path("other"), passphrase: passphrase, deviceName: "o", strength: .interactive)
        #expect(throws: StoreError.self) { try FileCarrier(url: f.stick, vaultID: other.vaultID, create: false) }
        do {
            _ = try FileCarrier(url: f.stick, vaultID: other.vaultID, create: false)
        } catch let error as StoreError {
            #expect(error.message.contains("another vault"))
        }
    }

    @Test func aFileThatIsNotASyncFileIsRefused() async throws {
        let f = try await Fixture()
        let junk = f.dir.path("junk.sync")
        try Data("this is not sqlite at all, just some words in a file".utf8).write(to: junk)
        #expect(throws: StoreError.self) { try FileCarrier(url: junk, vaultID: f.reader.vaultID, create: false) }
    }

    @Test func aForkIsRefusedAndReportedWhileTheRestStillSyncs() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let honest = team[1]
        // A cloned device: a copy of its vault directory, so one device key writes two histories.
        let third = try addMember(to: team[0], at: dir.path("third"), name: "third")
        let clone = try cloneVault(team[0], to: dir.path("clone"))
        let forkSeq = try #require(try team[0].versionVector()[team[0].deviceID]).seq + 1
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "original")], tags: [], seal: false)
        _ = try clone.createRecord(kind: "statement", fields: [("title", "equivocation")], tags: [], seal: false)
        _ = try third.createRecord(kind: "statement", fields: [("title", "unrelated")], tags: [], seal: false)

        try await fileSync(team[0], dir.path("a.sync"))
        try await fileSync(honest, dir.path("a.sync"))
        try await fileSync(clone, dir.path("b.sync"))
        try await fileSync(third, dir.path("b.sync"))
        let report = try await fileSync(honest, dir.path("b.sync"))
        #expect(report.forks.map(\.device) == [team[0].deviceID])
        #expect(report.forks.map(\.seq) == [forkSeq])
        let titles = try honest.visibleRecords().compactMap { $0.fields["title"] }.sorted()
        #expect(titles == ["original", "unrelated"], "the valid rest syncs; the equivocation does not")
        #expect(try honest.status().forks == [ForkReport(device: team[0].deviceID, seq: forkSeq)])
        let problems = try honest.verify().problems
        #expect(problems.contains { $0.contains(team[0].deviceID.hex.prefix(12)) && $0.contains("forked") })
    }

    @Test func aReadOnlyCarrierIsPulledFromOnly() async throws {
        let f = try await Fixture()
        let carrier = ReadOnlyCarrier(inner: try FileCarrier(url: f.stick, vaultID: f.reader.vaultID, create: false))
        let report = try await SyncSession(vault: f.reader, carrier: carrier).run()
        // The writer's 3 records and its 2 membership entries (founding the vault, inviting the reader).
        #expect(report.pulled == 3 + 2)
        #expect(report.pushed == 0 && report.pullOnly)
        #expect(try f.file.count() == 3 + 2)
    }
}

/// Wraps a carrier and reports it unwritable, as a sync file on a read-only medium is.
struct ReadOnlyCarrier: Carrier {
    let inner: FileCarrier
    var name: String { inner.name }
    var canWrite: Bool { false }
    func versionVector() async throws -> [DeviceID: ChainHead] { try await inner.versionVector() }
    func envelopes(of author: DeviceID, after seq: UInt64, limit: Int) async throws -> [Envelope] {
        try await inner.envelopes(of: author, after: seq, limit: limit)
    }
    func push(_ envelopes: [Envelope]) async throws -> Int { throw StoreError(.io, "read-only") }
}
