import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import GRDB
import Testing

/// What every sync reads before it sends anything: the heads of the vault's chains and the envelopes stored without
/// their content. Both used to read every envelope of the vault; they now read through the primary key and a partial
/// index (schema migration "v3-without-content-index", Protocol/storage.md §3).
@Suite struct SyncLookupTests {
    /// A connection of the test's own to a vault's database file.
    func database(of vault: Vault) throws -> DatabaseQueue {
        try DatabaseQueue(path: vault.directory.appendingPathComponent("vault.sqlite").path)
    }

    /// Each author's last (seq, hash) in `table`, read the plain way (every row).
    func plainHeads(_ db: DatabaseQueue, _ table: String) throws -> [String: ChainHead] {
        try db.read { db in
            var heads: [String: ChainHead] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT author, seq, hash FROM \(table) ORDER BY author, seq") {
                heads[Hex.encode(Array(row["author"] as Data))] = ChainHead(
                    seq: UInt64(row["seq"] as Int64), hash: Array(row["hash"] as Data))
            }
            return heads
        }
    }

    @Test func theSyncVectorIsEveryChainsLastEnvelopeInTheLogAndKeptApart() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(4, in: dir)
        let stick = dir.path("team.sync")
        for (i, vault) in team.enumerated() {
            for j in 0..<(3 * i + 1) {
                _ = try vault.createRecord(kind: "statement", fields: [("title", "\(i).\(j)")], tags: [], seal: false)
            }
        }
        for vault in team + team { try await fileSync(vault, stick) }
        // A device that is not a member: its changes are kept apart (`held`), and its head is in the sync vector.
        var outsider = ForgedChain(vaultID: team[0].vaultID, signer: mintFirstSortingDevice())
        let forged = try (1...3).map { _ in
            try outsider.change(
                RecordID.derived(author: outsider.device, seq: outsider.head.seq + 1), key: writingKey(of: team[1]),
                at: stamp(daysAgo: 1),
                [.create(kind: "statement"), .set(field: "title", value: "kept apart", pred: [])])
        }
        let file = dir.path("outsider.sync")
        #expect(try writeSyncFile(file, vaultID: team[0].vaultID, forged) == 3)
        try await fileSync(team[0], file)

        let db = try database(of: team[0])
        let log = try plainHeads(db, "envelope")
        let held = try plainHeads(db, "held")
        #expect(log.count == 4 && held.count == 1, "\(log.count) chains in the log, \(held.count) kept apart")
        #expect(held[outsider.device.hex]?.seq == 3)
        let vector = Dictionary(uniqueKeysWithValues: try team[0].syncVector().map { ($0.key.hex, $0.value) })
        #expect(vector == log.merging(held) { inLog, _ in inLog })
        let logOnly = Dictionary(uniqueKeysWithValues: try team[0].versionVector().map { ($0.key.hex, $0.value) })
        #expect(logOnly == log)
    }

    /// A vault file edited by hand can hold anything in the log's columns: a device id that is a number, a negative
    /// seq. Reading the sync vector then says the vault is damaged; it never traps.
    @Test func aChainHeadThatIsNotADeviceAndASeqInAnEditedVaultAreDamageNotACrash() async throws {
        let dir = try TemporaryDirectory()
        let vault = try makeTeam(1, in: dir)[0]
        let db = try database(of: vault)
        for (author, seq) in ["42", "x'\(String(repeating: "ab", count: 32))'"].map({ ($0, $0 == "42" ? 1 : -5) }) {
            try await db.write { db in
                try db.execute(sql: "DELETE FROM envelope WHERE author = 42 OR seq < 0")
                try db.execute(
                    sql: "INSERT INTO envelope(author, seq, hash, body) VALUES (\(author), \(seq), x'00', x'00')")
            }
            #expect {
                _ = try vault.syncVector()
            } throws: { error in
                "\(error)".contains("The vault is damaged")
            }
        }
    }

    /// A vault of the release before this index stored envelopes without content in a table with no such index.
    /// Opened by this release, the migration indexes them: the sync still finds them and puts their content back.
    @Test func envelopesWithoutContentStoredBeforeTheIndexAreFoundAfterTheUpgrade() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let honest = dir.path("honest.sync")
        for vault in team + team { try await fileSync(vault, honest) }
        let id = try b.createRecord(
            kind: "statement", fields: [("title", "stripped on the way")], tags: [], seal: false)
        try await fileSync(b, honest)
        let stripped = try b.envelopes(of: b.deviceID, after: 0, limit: 1000).map {
            $0.isAuthority ? $0 : $0.purged()
        }

        // A's database as the release before left it: no index, and no record of its migration.
        let db = try database(of: a)
        try await db.write { db in
            try db.execute(sql: "DROP INDEX envelope_without_content")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v3-without-content-index'")
        }
        let courier = dir.path("courier.sync")
        _ = try writeSyncFile(courier, vaultID: a.vaultID, stripped)
        try await fileSync(a, courier)
        func indexes(_ db: DatabaseQueue) async throws -> [String] {
            try await db.read { db in
                try String.fetchAll(
                    db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'envelope'")
            }
        }
        #expect(try await !indexes(db).contains("envelope_without_content"))
        try db.close()

        let reopened = try Vault.open(at: a.directory, passphrase: passphrase)
        let upgraded = try database(of: reopened)
        #expect(try await indexes(upgraded).contains("envelope_without_content"))
        // The look-up a sync makes reads the index, not every envelope.
        let plan = try await upgraded.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN \(Vault.withoutContentQuery)").map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("envelope_without_content") }, "\(plan)")
        let missing = try reopened.changesWithoutContent()
        #expect(missing.count == 1 && missing.first?.author == b.deviceID, "\(missing)")
        #expect(try !reopened.visibleRecords().contains { $0.id == id })
        #expect(try await fileSync(reopened, honest).restored == 1)
        #expect(try reopened.visibleRecords().contains { $0.id == id && $0.fields["title"] == "stripped on the way" })
        #expect(try reopened.changesWithoutContent().isEmpty)
    }
}
