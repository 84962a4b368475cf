import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import GRDB
import Testing

/// A laptop taken at a checkpoint can come back with its vault's database edited by hand: any value of any type in
/// the log's columns. Every command then says the vault is damaged, in one sentence with exit 65, or carries on
/// where the edit does not matter; none traps or loops, and no other replica receives anything but valid changes.
@Suite struct EditedVaultTests {
    /// Two devices of one vault that shared their changes through `stick`, and the first one's device id in hex.
    func team(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner, String, String) {
        let (a, b) = try scratch.pair(joiner: "office")
        for i in 0..<3 { _ = try a.ok(["add", "statement", "--title", "statement \(i)", "--body", "text \(i)"]) }
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", "--create", stick])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let vault = try Vault.open(at: a.vault, passphrase: SecureBytes(Array(a.passphrase.utf8)))
        return (a, b, stick, vault.deviceID.hex)
    }

    func edit(_ cli: CLIRunner, _ sql: String) throws {
        let database = try DatabaseQueue(path: cli.vault.appendingPathComponent(Vault.databaseFileName).path)
        try database.write { db in
            try db.execute(sql: sql)
            #expect(db.changesCount == 1, "\(sql)")
        }
        try database.close()
    }

    /// The error lines a command printed, and whether it trapped.
    func refusal(_ r: CLIRunner.Result) -> (lines: Int, trapped: Bool) {
        (
            r.stderr.split(separator: "\n").filter { $0.hasPrefix("amanat: ") }.count,
            r.stderr.contains("Fatal error") || r.stderr.contains("Program crashed")
                || [132, 133, 134, 139, 9]
                    .contains(r.status)
        )
    }

    /// The newest change's row moved to another seq: the log's head now names a row whose envelope is another one.
    /// A sync used to ask for the same rows again and again, for ever; it now stops at once, and what reached the
    /// stick before still verifies on the other device.
    @Test func aHeadRowMovedToAnotherSeqIsDamageAndTheSyncEnds() throws {
        let scratch = try Scratch()
        let (a, b, stick, device) = try team(scratch)
        _ = try a.ok(["add", "statement", "--title", "after the last sync", "--body", "new"])
        try edit(
            a,
            "UPDATE envelope SET seq = 100 WHERE author = x'\(device)' AND seq = (SELECT MAX(seq) FROM envelope WHERE author = x'\(device)')"
        )
        let r = try a.run(["sync", stick], deadline: 60)
        #expect(!refusal(r).trapped, "\(r.stderr)")
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("The vault is damaged"), "\(r.stderr)")
        #expect(refusal(r).lines == 1, "\(r.stderr)")
        let pulled = try b.run(["sync", stick], deadline: 60)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(try b.run(["verify"]).status == 0)
    }

    /// A number where a device id belongs, a negative seq, a fractional one, a hash that is text: `verify` reports
    /// the damaged change (exit 65) and `status` and `sync` do not trap.
    @Test(arguments: [
        ("a device id that is a number", "UPDATE envelope SET author = 42 WHERE seq = 2 AND author = x'DEVICE'"),
        ("a negative seq", "UPDATE envelope SET seq = -5 WHERE seq = 2 AND author = x'DEVICE'"),
        ("a fractional seq", "UPDATE envelope SET seq = 2.5 WHERE seq = 2 AND author = x'DEVICE'"),
        ("a hash that is text", "UPDATE envelope SET hash = 'hash' WHERE seq = 2 AND author = x'DEVICE'"),
    ])
    func aValueOfAnotherTypeIsReportedNeverTrapped(_ what: String, _ sql: String) throws {
        let scratch = try Scratch()
        let (a, _, stick, device) = try team(scratch)
        try edit(a, sql.replacingOccurrences(of: "DEVICE", with: device))
        let verify = try a.run(["verify"], deadline: 60)
        #expect(!refusal(verify).trapped, "\(what): \(verify.stderr)")
        #expect(verify.status == 65, "\(what): \(verify.stdout) \(verify.stderr)")
        #expect((verify.stdout + verify.stderr).contains("is damaged in the database"), "\(what): \(verify.stderr)")
        for command in [["status"], ["sync", stick], ["list"]] {
            let r = try a.run(command, deadline: 60)
            #expect(!refusal(r).trapped, "\(what), \(command): \(r.stderr)")
            #expect(r.status == 0 || (r.status == 65 && refusal(r).lines == 1), "\(what), \(command): \(r.stderr)")
        }
    }

    /// An object planted under the name a migration creates, with the migration marked as not yet run: opening the
    /// vault meets "already exists". That is damage (65, one sentence), not an I/O failure, and nothing is changed.
    @Test func anObjectPlantedWhereAMigrationCreatesOneIsDamage() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "field laptop")
        let database = try DatabaseQueue(path: a.vault.appendingPathComponent(Vault.databaseFileName).path)
        try database.write { db in
            try db.execute(sql: "DROP INDEX envelope_without_content")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v3-without-content-index'")
            try db.execute(sql: "CREATE TABLE envelope_without_content(planted)")
        }
        try database.close()
        let before = try Data(contentsOf: a.vault.appendingPathComponent(Vault.databaseFileName))
        for command in [["list"], ["status"], ["verify"]] {
            let r = try a.run(command, deadline: 60)
            #expect(r.status == 65 && refusal(r).lines == 1, "\(command): \(r.stderr)")
            #expect(r.stderr.contains("its database schema cannot be brought up to date"), "\(command): \(r.stderr)")
        }
        #expect(try Data(contentsOf: a.vault.appendingPathComponent(Vault.databaseFileName)) == before)
    }
}
