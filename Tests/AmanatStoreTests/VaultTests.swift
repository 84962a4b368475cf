import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

@Suite struct VaultTests {
    @Test func createdVaultReopensWithTheSameIdentityAndRecords() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let id = try vault.createRecord(kind: "statement", fields: [("title", "T")], tags: ["a"], seal: false)
        let reopened = try Vault.open(at: dir.path("vault"), passphrase: testPassphrase)
        #expect(reopened.deviceID == vault.deviceID)
        #expect(reopened.vaultID == vault.vaultID)
        let views = try reopened.visibleRecords()
        #expect(views.map(\.id) == [id])
        #expect(views.first?.fields == ["title": "T"])
        #expect(views.first?.tags == ["a"])
    }

    @Test func noPlaintextAtRestInDatabaseWALSHMOrKeyring() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let statement = try sampleStatement()
        for phrase in knownPlaintexts.dropLast() { #expect(statement.contains(phrase), "seed lacks \(phrase)") }
        _ = try vault.createRecord(
            kind: "statement", fields: [("title", "Coalition statement"), ("body", statement)], tags: ["women"],
            seal: false)
        _ = try vault.createRecord(
            kind: "testimony", fields: [("witness", "W-SECRET-4711"), ("narrative", "compulsory burqas")], tags: [],
            seal: true)
        // The vault is still open: the WAL holds the latest pages now, and must be ciphertext too.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path("vault").path)
        #expect(files.contains("vault.sqlite-wal"), "expected a WAL file while the vault is open: \(files)")
        for phrase in knownPlaintexts {
            #expect(try anyFile(under: dir.path("vault"), contains: phrase).isEmpty, "plaintext \(phrase) at rest")
        }
        // The record id is not stored in clear either.
        _ = vault
    }

    @Test func wrongPassphraseIsToldApartFromDamage() throws {
        let dir = try TemporaryDirectory()
        _ = try makeVault(in: dir)
        #expect(throws: StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")) {
            try Vault.open(at: dir.path("vault"), passphrase: SecureBytes(Array("nope".utf8)))
        }
    }

    @Test func everyFlippedKeyringByteReportsDamageNotAWrongPassphrase() throws {
        let dir = try TemporaryDirectory()
        _ = try makeVault(in: dir)
        let url = dir.path("vault").appendingPathComponent(Vault.keyringFileName)
        let original = Array(try Data(contentsOf: url))
        for position in 0..<original.count {
            var bytes = original
            bytes[position] ^= 0x01
            try Data(bytes).write(to: url)
            do {
                _ = try Vault.open(at: dir.path("vault"), passphrase: testPassphrase)
                Issue.record("flipped keyring byte \(position) was accepted")
            } catch let error as StoreError {
                #expect(error.code == .damaged, "byte \(position): \(error)")
            }
        }
        try Data(original).write(to: url)
        #expect(throws: Never.self) { try Vault.open(at: dir.path("vault"), passphrase: testPassphrase) }
    }

    @Test func truncatedKeyringIsDamaged() throws {
        let dir = try TemporaryDirectory()
        _ = try makeVault(in: dir)
        let url = dir.path("vault").appendingPathComponent(Vault.keyringFileName)
        let original = try Data(contentsOf: url)
        for length in [0, 10, original.count / 2, original.count - 1] {
            try original.prefix(length).write(to: url)
            #expect(throws: StoreError.self) { try Vault.open(at: dir.path("vault"), passphrase: testPassphrase) }
            do { _ = try Vault.open(at: dir.path("vault"), passphrase: testPassphrase) } catch let e as StoreError {
                #expect(e.code == .damaged)
            }
        }
    }

    @Test func creatingOverAnExistingVaultIsRefusedAndChangesNothing() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        _ = try vault.createRecord(kind: "statement", fields: [("title", "x")], tags: [], seal: false)
        let before = try vault.status().stateDigest
        #expect(throws: StoreError.self) { try makeVault(in: dir) }
        let after = try Vault.open(at: dir.path("vault"), passphrase: testPassphrase).status().stateDigest
        #expect(before == after)
    }

    @Test func openingAMissingVaultSaysSo() throws {
        let dir = try TemporaryDirectory()
        do {
            _ = try Vault.open(at: dir.path("none"), passphrase: testPassphrase)
            Issue.record("opened a missing vault")
        } catch let error as StoreError {
            #expect(error.code == .noVault)
        }
    }

    @Test func concurrentValuesAreAConflictAndResolvingClearsIt() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let id = try vault.createRecord(kind: "testimony", fields: [("location", "A")], tags: [], seal: true)
        // Two writes that did not see each other: neither names the other in pred.
        let first = try #require(try vault.allStates().first).visibleValues(of: "location").map(\.op)
        try vault.commit(record: id) { _ in [.set(field: "location", value: "B", pred: first)] }
        try vault.commit(record: id) { _ in [.set(field: "location", value: "C", pred: first)] }
        let conflicted = try #require(try vault.visibleRecords().first)
        #expect(conflicted.fields["location"] == "C")
        #expect(conflicted.conflicts == ["location": ["B"]])
        try vault.commit(record: id) { state in [try #require(state).setOperation(field: "location", value: "B")] }
        let resolved = try #require(try vault.visibleRecords().first)
        #expect(resolved.fields["location"] == "B")
        #expect(resolved.conflicts.isEmpty)
        #expect(try vault.verify().problems == [])
    }

    @Test func verifyFindsAProjectionThatDisagreesWithTheLog() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let id = try vault.createRecord(kind: "statement", fields: [("title", "x")], tags: [], seal: false)
        // Write a projection row that the log does not support.
        try vault.database.write { db in
            var state = try #require(try vault.loadState(db, id: id))
            let forged = AuthoredChange(
                author: vault.deviceID, seq: 99,
                change: Change(
                    record: id, timestamp: HLCTimestamp(wallMillis: 1, counter: 0), operations: [.addTag("forged")]))
            state.apply(forged)
            try vault.saveState(db, state)
        }
        let report = try vault.verify()
        #expect(report.problems.contains { $0.contains("does not match its history") }, "\(report.problems)")
    }

    @Test func clockStaysMonotonicWhenTheWallClockGoesBack() throws {
        let dir = try TemporaryDirectory()
        var vault = try makeVault(in: dir)
        vault.wallClock = { 2_000_000_000_000 }
        let id = try vault.createRecord(kind: "statement", fields: [("title", "x")], tags: [], seal: false)
        vault = try Vault.open(at: dir.path("vault"), passphrase: testPassphrase)
        vault.wallClock = { 1_000_000_000_000 }
        try vault.commit(record: id) { s in [try #require(s).setOperation(field: "title", value: "y")] }
        let stamps = try #require(try vault.allStates().first).changes.map(\.timestamp)
        #expect(stamps.count == 2)
        #expect(stamps[1] > stamps[0])
        #expect(try vault.visibleRecords().first?.fields["title"] == "y")
    }

    @Test func wipeDestroysTheKeyringAndTheDatabase() throws {
        let dir = try TemporaryDirectory()
        _ = try makeVault(in: dir)
        try Vault.wipe(at: dir.path("vault"))
        #expect(!Vault.exists(at: dir.path("vault")))
        #expect(!FileManager.default.fileExists(atPath: dir.path("vault").appendingPathComponent("vault.sqlite").path))
    }
}
