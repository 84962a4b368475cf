import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation
import GRDB
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Input made by an attacker — hand-made sync files, a fake relay, crafted bundles and armor — run through the real
/// binary: never a crash, never code run, one sentence with the documented status, and the vault unchanged.
@Suite struct HostileInputTests {
    /// Device `a` synced its changes to `stick`; `b` joined the vault and holds a record of its own.
    struct Fixture {
        let scratch: Scratch
        let a: CLIRunner
        let b: CLIRunner
        let stick: URL
        let digest: String

        init() throws {
            scratch = try Scratch()
            a = scratch.runner("a")
            try a.initialize(name: "field laptop")
            let invitation = scratch.path("invite.amanat").path
            let code = try a.ok(["invite", "--out", invitation])
            b = scratch.runner("b")
            _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "coordinator"])
            for i in 0..<3 { _ = try a.ok(["add", "statement", "--title", "from a \(i)"]) }
            stick = scratch.path("stick.amanat-sync")
            _ = try a.ok(["sync", "--create", stick.path])
            _ = try b.ok(["add", "statement", "--title", "b's own"])
            digest = try b.digest()
        }

        /// A copy of the honest stick, to tamper with.
        func copyOfStick(_ name: String) throws -> URL {
            let url = scratch.path(name)
            try? FileManager.default.removeItem(at: url)
            try FileManager.default.copyItem(at: stick, to: url)
            return url
        }

        /// Runs `args` on b: it must fail with `status` and one sentence containing `words`, leave b's vault as it
        /// was, and leave `file` (if given) byte for byte as it was.
        func expectRefused(
            _ args: [String], status: Int32, mentioning words: [String], file: URL? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws {
            let before = try file.map { try Data(contentsOf: $0) }
            let r = try b.run(args)
            #expect(r.status == status, "\(args): \(r.status) \(r.stderr)", sourceLocation: sourceLocation)
            #expect(
                r.stderr.split(separator: "\n").count == 1, "one sentence expected: \(r.stderr)",
                sourceLocation: sourceLocation)
            for word in words {
                #expect(
                    r.stderr.lowercased().contains(word.lowercased()), "\(word) not in: \(r.stderr)",
                    sourceLocation: sourceLocation)
            }
            #expect(!r.stderr.contains("vault is damaged"), "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(try b.digest() == digest, "b's vault changed after \(args)", sourceLocation: sourceLocation)
            if let file, let before {
                #expect(
                    try Data(contentsOf: file) == before, "\(file.lastPathComponent) changed",
                    sourceLocation: sourceLocation)
            }
        }
    }

    /// Runs SQL on a file with plain SQLite, as an attacker would, with `writable_schema` on so that the schema
    /// itself can be edited. Each call is a new connection, so the next one reads the edited schema.
    static func tamper(_ url: URL, _ sql: String) throws {
        let queue = try DatabaseQueue(path: url.path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA writable_schema = ON")
            try db.execute(sql: sql)
        }
        try queue.close()
    }

    // MARK: 1. NULL and wrongly typed columns

    @Test func nullAndWronglyTypedColumnsInASyncFileAreDamageNotACrash() throws {
        let f = try Fixture()
        let cases: [(String, [String])] = [
            (
                "envelope.body NULL",
                [
                    "UPDATE sqlite_master SET sql = 'CREATE TABLE envelope (id INTEGER PRIMARY KEY, body BLOB)' WHERE name = 'envelope'",
                    "UPDATE envelope SET body = NULL WHERE id = (SELECT MAX(id) FROM envelope)",
                    "UPDATE sqlite_master SET sql = 'CREATE TABLE envelope (id INTEGER PRIMARY KEY, body BLOB NOT NULL)' WHERE name = 'envelope'",
                ]
            ),
            (
                "device.key NULL",
                [
                    "UPDATE sqlite_master SET sql = 'CREATE TABLE device (id INTEGER PRIMARY KEY, key BLOB UNIQUE)' WHERE name = 'device'",
                    "UPDATE device SET key = NULL",
                    "UPDATE sqlite_master SET sql = 'CREATE TABLE device (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE)' WHERE name = 'device'",
                ]
            ),
            ("envelope.body an integer", ["UPDATE envelope SET body = 42 WHERE id = (SELECT MAX(id) FROM envelope)"]),
            ("device.key a text", ["UPDATE device SET key = 'not a key'"]),
            ("meta.value a text", ["UPDATE meta SET value = 'one' WHERE key = 'format'"]),
        ]
        for (name, statements) in cases {
            for command in ["import", "sync"] {
                let file = try f.copyOfStick("null-\(command).sync")
                for sql in statements { try Self.tamper(file, sql) }
                try f.expectRefused(
                    [command, file.path], status: 65, mentioning: ["sync file", "damaged"], file: file)
                _ = name
            }
        }
        // device.id cannot be NULL under the documented schema; a file that makes it so has another schema.
        let file = try f.copyOfStick("null-id.sync")
        try Self.tamper(
            file,
            "UPDATE sqlite_master SET sql = 'CREATE TABLE device (id INT PRIMARY KEY, key BLOB NOT NULL UNIQUE)' WHERE name = 'device'"
        )
        try f.expectRefused(["import", file.path], status: 65, mentioning: ["schema"], file: file)
        // The honest stick still syncs.
        _ = try f.b.ok(["import", f.stick.path])
        #expect(try f.b.list().count == 4)
    }

    // MARK: 2. Sync files are data, never code

    @Test func aSyncFileWithATriggerViewIndexOrExtraTableIsRefusedBeforeAnythingRuns() throws {
        let f = try Fixture()
        let additions = [
            "CREATE TRIGGER planted AFTER INSERT ON envelope BEGIN INSERT INTO meta VALUES ('ran-' || new.id, x'00'); END",
            "CREATE TRIGGER planted BEFORE INSERT ON device BEGIN SELECT RAISE(IGNORE); END",
            "CREATE VIEW planted AS SELECT * FROM envelope",
            "CREATE INDEX planted ON envelope(body)",
            "CREATE TABLE planted (x)",
        ]
        for sql in additions {
            for command in ["sync", "import"] {
                let file = try f.copyOfStick("planted-\(command).sync")
                let queue = try DatabaseQueue(path: file.path)
                try queue.write { db in try db.execute(sql: sql) }
                try queue.close()
                try f.expectRefused([command, file.path], status: 65, mentioning: ["schema"], file: file)
                let marks = try DatabaseQueue(path: file.path).read { db in
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM meta WHERE key LIKE 'ran-%'") ?? 0
                }
                #expect(marks == 0, "the planted trigger ran")
            }
        }
        // The honest file is accepted, and b's change is pushed to it.
        _ = try f.b.ok(["sync", "--create", f.stick.path])
        #expect(try f.b.list().count == 4)
    }

    // MARK: 3. Counts and seqs from outside

    // A relay's answers with counts and seqs over every limit are in MaliciousPeerTests (AmanatStoreTests), with
    // every other hostile-peer attack, through a hostile relay speaking to the real HTTP client.

    @Test func aBundleManifestCountingMoreLinksThanIntMaxIsAProblemNotACrash() throws {
        let f = try Fixture()
        var a = f.a
        a.environment["AMANAT_BUNDLE_PASSPHRASE"] = "bundle secret"
        let id = try #require(try a.list().first?["id"] as? String)
        let bundle = f.scratch.path("one.age").path
        _ = try a.ok(["export", "--out", bundle, "--passphrase", "--id", id, "--include-restricted"])
        let folder = f.scratch.path("opened")
        _ = try a.ok(["bundle", "open", bundle, "--passphrase", "--out", folder.path])
        #expect(try a.run(["bundle", "verify", folder.path], withVault: false).status == 0)
        let manifest = folder.appendingPathComponent("manifest.json")
        let original = try String(contentsOf: manifest, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "\"links\":[0-9]+")
        for (count, says) in [
            ("9223372036854775808", "2^53"), ("18446744073709551615", "2^53"),
            ("9007199254740991", "truncated or padded"),
        ] {
            let range = NSRange(original.startIndex..., in: original)
            #expect(pattern.numberOfMatches(in: original, range: range) >= 1)
            let edited = pattern.stringByReplacingMatches(
                in: original, range: range, withTemplate: "\"links\":\(count)")
            try edited.write(to: manifest, atomically: true, encoding: .utf8)
            let r = try a.run(["bundle", "verify", folder.path], withVault: false)
            #expect(r.status == 65, "\(count): \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(says), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("amanat: ") && $0.hasSuffix(".") })
        }
        #expect(try f.b.digest() == f.digest)
    }

    // MARK: 4. A full or failing stderr

    @Test func aFullStderrIsNoCrash() throws {
        let f = try Fixture()
        for args in [["--vault", f.scratch.path("nowhere").path, "list"], ["--vault", f.b.vault.path, "show", "zz"]] {
            let process = Process()
            process.executableURL = CLIRunner.binary
            process.arguments = args
            process.environment = ["AMANAT_PASSPHRASE": f.b.passphrase, "PATH": "/usr/bin:/bin"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: "/dev/full")
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationReason == .exit, "\(args): killed by signal \(process.terminationStatus)")
            #expect([66, 67].contains(process.terminationStatus), "\(args): \(process.terminationStatus)")
        }
        #expect(try f.b.digest() == f.digest)
    }

    // MARK: 5. verify checks every signature

    @Test func anEnvelopeWithAGarbageSignatureInTheMiddleOfARunFailsVerify() throws {
        let f = try Fixture()
        // A malicious member (c) chains three changes and puts 64 random bytes in the middle one's signature; only
        // the last signature, which ingest checks, is genuine.
        let invitation = f.scratch.path("invite-c.amanat").path
        let code = try f.a.ok(["invite", "--out", invitation])
        let c = f.scratch.runner("c")
        _ = try c.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "mole"])
        for i in 0..<3 { _ = try c.ok(["add", "statement", "--title", "from c \(i)"]) }
        let stick = f.scratch.path("mole.sync")
        do {
            let vault = try Vault.open(at: c.vault, passphrase: SecureBytes(Array(c.passphrase.utf8)))
            let key = vault.keyring.currentKey
            // c's log: its join (a membership entry, kept as it is), then its three records.
            let honest = try vault.envelopes(of: vault.deviceID, after: 0, limit: 4)
            #expect(honest.count == 4 && honest[0].isAuthority)
            var chain: [Envelope] = [honest[0]]
            var previous = honest[0].hash
            for (index, envelope) in honest.enumerated().dropFirst() {
                var sealed = try Envelope.seal(
                    try envelope.open(with: key), vaultID: vault.vaultID, key: key, signer: vault.keyring.device,
                    seq: envelope.header.seq, previousHash: previous)
                if index == 2 {
                    sealed = Envelope(
                        header: sealed.header, ciphertext: sealed.ciphertext, signature: Sodium.randomBytes(64))
                }
                chain.append(sealed)
                previous = sealed.hash
            }
            #expect(!chain[2].hasValidSignature() && chain[3].hasValidSignature())
            // The coordinator's log rides along, so b knows the invitation that admitted c.
            let coordinator = try Vault.open(at: f.a.vault, passphrase: SecureBytes(Array(f.a.passphrase.utf8)))
            let invites = try coordinator.envelopes(of: coordinator.deviceID, after: 0, limit: 100)
            let file = try SyncFile.open(at: stick, vaultID: vault.vaultID, create: true)
            #expect(try file.append(invites) == invites.count)
            #expect(try file.append(chain) == 4)
        }
        #expect(try f.b.ok(["verify"]).hasPrefix("ok:"))
        // Ingest checks one signature per run (Protocol/envelope.md §6): the run is imported.
        _ = try f.b.ok(["import", stick.path])
        let r = try f.b.run(["verify"])
        #expect(r.status == 65, "\(r.status): \(r.stderr) \(r.stdout)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("signature on change 3 of device"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    // MARK: 6. An armored age file with an empty body

    @Test func anArmoredBundleWithAnEmptyBodyIsRefusedAsAHeaderFailure() throws {
        let f = try Fixture()
        let file = f.scratch.path("empty.age")
        try Data("-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n".utf8).write(to: file)
        var b = f.b
        b.environment["AMANAT_BUNDLE_PASSPHRASE"] = "bundle secret"
        for args in [["bundle", "verify", file.path, "--passphrase"], ["import", file.path, "--passphrase"]] {
            let r = try b.run(args)
            #expect(r.status == 65, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(!r.stderr.lowercased().contains("armor"), "an armor failure: \(r.stderr)")
        }
        #expect(try f.b.digest() == f.digest)
    }

    // MARK: Import opens read-only, even after an interrupted sync

    @Test func importOfAnInterruptedSyncFileSaysHowToRepairItAndWritesNothing() throws {
        let f = try Fixture()
        // A sync stopped mid-commit: the file with pages already spilled, and its hot rollback journal.
        let file = f.scratch.path("interrupted.sync")
        let queue = try DatabaseQueue(path: f.stick.path)
        try queue.inDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = 2")
            try db.execute(sql: "BEGIN IMMEDIATE")
            try db.execute(
                sql: "INSERT INTO meta SELECT 'filler-' || value, zeroblob(300000) FROM json_each('[1,2,3]')")
            try FileManager.default.copyItem(at: f.stick, to: file)
            try FileManager.default.copyItem(
                at: URL(fileURLWithPath: f.stick.path + "-journal"), to: URL(fileURLWithPath: file.path + "-journal"))
            try db.execute(sql: "ROLLBACK")
        }
        try queue.close()
        let journal = try Data(contentsOf: URL(fileURLWithPath: file.path + "-journal"))
        try f.expectRefused(
            ["import", file.path], status: 74, mentioning: ["interrupted sync", "amanat sync"], file: file)
        #expect(try Data(contentsOf: URL(fileURLWithPath: file.path + "-journal")) == journal, "import wrote")
        // sync, which may write, rolls the journal back and syncs.
        _ = try f.b.ok(["sync", "--create", file.path])
        #expect(try f.b.list().count == 4)
        #expect(!FileManager.default.fileExists(atPath: file.path + "-journal"))
    }

    // MARK: 8. A damaged sync file is named as that

    @Test func aDamagedSyncFileIsReportedAsTheSyncFileWithItsSQLiteCode() throws {
        let f = try Fixture()
        let file = try f.copyOfStick("flipped.sync")
        var bytes = try Data(contentsOf: file)
        bytes[0] ^= 0xff  // the SQLite header: no longer a database
        try bytes.write(to: file)
        for command in ["import", "sync"] {
            try f.expectRefused(
                [command, file.path], status: 65, mentioning: ["The sync file \(file.path) is damaged", "SQLite code"],
                file: file)
        }
    }
}
