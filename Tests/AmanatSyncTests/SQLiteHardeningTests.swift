import AmanatCore
import AmanatCrypto
import AmanatSync
import AmanatTestSupport
import Foundation
import GRDB
import Testing

@testable import AmanatRelay
@testable import AmanatStore

/// Every database Amanat opens runs in SQLite's defensive mode with an untrusted schema, and a damaged relay file is
/// named as that.
@Suite struct SQLiteHardeningTests {
    /// Editing the schema through `writable_schema` is what defensive mode forbids; an ordinary connection allows it.
    static func canRewriteSchema(_ db: Database) -> Bool {
        do {
            try db.execute(sql: "PRAGMA writable_schema = ON")
            try db.execute(sql: "UPDATE sqlite_master SET sql = sql WHERE name = 'meta'")
            return true
        } catch {
            return false
        }
    }

    static func trustsSchema(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "PRAGMA trusted_schema") ?? true
    }

    @Test func theVaultTheSyncFileAndTheRelayFilesAreDefensive() async throws {
        let dir = try TemporaryDirectory()
        let vault = try Vault.create(
            at: dir.path("vault"), passphrase: passphrase, deviceName: "d", strength: .interactive)
        _ = try vault.createRecord(kind: "statement", fields: [("title", "t")], tags: [], seal: false)
        // A plain connection can rewrite the schema, so the checks below can fail.
        let plain = try DatabaseQueue(path: dir.path("vault").appendingPathComponent("vault.sqlite").path)
        #expect(try await plain.writeWithoutTransaction { Self.canRewriteSchema($0) })
        try plain.close()

        #expect(try await vault.database.writeWithoutTransaction { !Self.canRewriteSchema($0) })
        #expect(try await vault.database.read { try !Self.trustsSchema($0) })

        let stick = dir.path("stick.sync")
        _ = try await SyncSession(vault: vault, carrier: FileCarrier(url: stick, vaultID: vault.vaultID)).run()
        let file = try SyncFile.open(at: stick, vaultID: vault.vaultID, create: false)
        #expect(throws: (any Error).self) {
            try file.executeForTesting("PRAGMA writable_schema = ON")
            try file.executeForTesting("UPDATE sqlite_master SET sql = sql WHERE name = 'meta'")
        }
        #expect(!(try FileCarrier(url: stick, vaultID: vault.vaultID, create: false, readOnly: true).canWrite))

        let relay = try RelayStore(directory: dir.path("relay"))
        #expect(try relay.register(vaultID: vault.vaultID, key: vault.relaySigningKey.publicKey))
        let relayFile = dir.path("relay").appendingPathComponent(Hex.encode(vault.vaultID) + RelayStore.fileSuffix)
        let pool = try DatabasePool(path: relayFile.path, configuration: RelayStore.configuration())
        #expect(try await pool.writeWithoutTransaction { !Self.canRewriteSchema($0) })
        #expect(try await pool.read { try !Self.trustsSchema($0) })
        try pool.close()
        relay.close()
    }

    @Test func aDamagedRelayFileIsNamedAsTheRelayFile() throws {
        let dir = try TemporaryDirectory()
        let vaultID = Sodium.randomBytes(16)
        let data = dir.path("relay")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let file = data.appendingPathComponent(Hex.encode(vaultID) + RelayStore.fileSuffix)
        try Data(repeating: 0x5a, count: 8192).write(to: file)
        let relay = try RelayStore(directory: data)
        do {
            _ = try relay.registeredKey(of: vaultID)
            Issue.record("a damaged relay file was opened")
        } catch let error as StoreError {
            #expect(error.code == .damaged, "\(error)")
            #expect(error.message.contains("relay file \(file.path) is damaged"), "\(error)")
            #expect(error.message.contains("SQLite code 26"), "\(error)")
            #expect(!error.message.contains("vault is damaged"), "\(error)")
        }
    }
}
