import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// Attacks on what the bundle, import and custody work promises, built as a hostile member or a forger would.
@Suite struct AttackReviewTests {
    /// A hostile member of the importing team holds the bundle (or the kept custody a colleague's import synced to
    /// it). With a modified client it creates its own record naming the same origin, keeps every genuine original
    /// envelope and membership entry with it, and writes a narrative the witness never gave. Every kept envelope
    /// verifies, so `history` said "every signature, key and seal verified" over the invented narrative, `verify`
    /// said ok, and the colleague's real import then counted the record as "already imported" and wrote nothing.
    @Test func copiedCustodyUnderInventedValuesIsNotVerifiedAndDoesNotBlockTheImport() throws {
        let s = try ImportCustodyTests.Setting()
        let bundle = try s.export("first.age")
        let state = try s.field[0].resolveRecord(s.testimony.hex)
        let report = BundleVerifier.verify(
            try BundleExporter.archive(from: s.field[0], records: [state], now: Date()))
        #expect(report.outcome == .verified)
        let record = try #require(report.records.first)
        let items =
            record.custody.map { CustodyItem(envelope: $0.envelope.encoded(), key: $0.envelopeKey) }
            + report.entries.map { CustodyItem(envelope: $0.envelope.encoded(), key: []) }

        let mole = s.lawyers[1]
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let fields = [
            ("witness", "W-7"), ("narrative", "They never came."), ("consent", "share"), ("location", "Herat"),
        ]
        let squat = RecordID.derived(author: mole.deviceID, seq: chain.head.seq + 1)
        let forged = try chain.change(
            squat, key: writingKey(of: mole), at: stampNow(),
            testimonyOperations(fields) + [
                .addTag("detention"), .origin(vault: s.field[0].vaultID, record: s.testimony),
            ]
                + items.map { .custody(envelope: $0.envelope, key: $0.key) })
        try s.exchange(mole, s.lawyers[0])
        try s.lawyers[0].ingest([forged])

        let lawyer = s.cli(s.lawyers[0])
        let history = try lawyer.ok(["history", squat.hex])
        #expect(history.contains("They never came."), "the squatting record is there: \(history)")
        #expect(!history.contains("every signature, key and seal verified"), "\(history)")
        #expect(history.contains("NOT VERIFIED") && history.contains("narrative to a value no kept original"))
        let verify = try lawyer.run(["verify"])
        #expect(verify.status != 0, "\(verify.stdout)")
        #expect((verify.stdout + verify.stderr).contains("narrative to a value no kept original"))

        // The real import is not pre-empted: the genuine record comes in, verified, beside the squatter.
        let imported = try lawyer.run(["import", bundle, "--identity", s.key])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("imported 1 record"), "\(imported.stderr)")
        let genuine = try #require(
            try s.lawyers[0].allStates().first { $0.origin != nil && $0.id != squat })
        let real = try lawyer.ok(["history", genuine.id.hex])
        #expect(real.contains("every signature, key and seal verified"), "\(real)")
        #expect(real.contains("شب آمدند. They came at night."))
    }

    /// A member creates a record naming an origin and keeping nothing: history claimed "0 signed changes kept with it:
    /// every signature, key and seal verified, every signer proven a member" — a verdict about nothing.
    @Test func anOriginWithNothingKeptIsNotVerified() throws {
        let s = try ImportCustodyTests.Setting()
        let mole = s.lawyers[1]
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let squat = RecordID.derived(author: mole.deviceID, seq: chain.head.seq + 1)
        let forged = try chain.change(
            squat, key: writingKey(of: mole), at: stampNow(),
            [.create(kind: "statement"), .origin(vault: s.field[0].vaultID, record: s.testimony)])
        try s.exchange(mole, s.lawyers[0])
        try s.lawyers[0].ingest([forged])
        let history = try s.cli(s.lawyers[0]).ok(["history", squat.hex])
        #expect(!history.contains("every signature, key and seal verified"), "\(history)")
        #expect(history.contains("NOT VERIFIED: No original signed change"), "\(history)")
    }

    /// Someone who knows the passphrase (it was coerced, or watched) swaps the backup on the stick for one whose
    /// database holds a trigger. Sync files with triggers are refused; a restored database was not checked, so the
    /// trigger became part of the vault and ran inside every later `amanat add`.
    @Test func aBackupWhoseDatabaseHoldsATriggerIsRefused() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeTeam(1, in: dir)[0]
        _ = try vault.createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        var owner = CLIRunner(vault: vault.directory)
        owner.passphrase = "test passphrase"
        let backup = dir.path("v.backup")
        _ = try owner.ok(["backup", "--out", backup.path])

        let plaintext = try AgeDecryption.decrypt(
            Array(try Data(contentsOf: backup)), identities: [try AgeScryptIdentity(passphrase: passphrase)])
        let archive = try TarArchive(decoding: plaintext)
        let database = dir.path("planted.sqlite")
        try Data(try #require(archive.file("vault.sqlite"))).write(to: database)
        let plant = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.executescript("CREATE TABLE planted(x); CREATE TRIGGER spy AFTER INSERT ON envelope BEGIN INSERT INTO planted VALUES (NEW.seq); END;")
            db.commit()
            """
        #expect(try shell("/usr/bin/python3 -c '\(plant)' '\(database.path)'").0 == 0)
        var crafted = TarArchive()
        for entry in archive.entries {
            crafted.add(
                entry.path, entry.path == "vault.sqlite" ? Array(try Data(contentsOf: database)) : entry.contents)
        }
        let swapped = dir.path("swapped.backup")
        try Data(try AgeEncryptor.encrypt(crafted.encoded(), to: [try AgeScryptRecipient(passphrase: passphrase)]))
            .write(to: swapped)

        var restorer = CLIRunner(vault: dir.path("restored"))
        restorer.passphrase = "test passphrase"
        let restored = try restorer.run(["restore", swapped.path])
        if restored.status == 0 {
            _ = try restorer.ok(["add", "statement", "--title", "after the restore"])
            let count = try shell(
                "/usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM planted\").fetchone()[0])' '\(dir.path("restored/vault.sqlite").path)'"
            ).1
            Issue.record(
                "the crafted backup was restored and its trigger ran \(count.trimmingCharacters(in: .whitespacesAndNewlines)) times"
            )
        }
        #expect(restored.status == 65, "\(restored.stderr)")
        #expect(restored.stderr.contains("trigger or view"), "\(restored.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path("restored/keyring.amk").path))
        #expect(!FileManager.default.fileExists(atPath: dir.path("restored/vault.sqlite").path))
    }

    /// The witness withdraws consent at the origin after a first bundle was imported; a later bundle discloses the
    /// change. The import kept it only as custody: the lawyers' copy still said `consent: share` and `amanat export`
    /// passed the testimony on by default.
    @Test func consentWithdrawnAtTheOriginIsCarriedOverByALaterBundle() throws {
        let s = try ImportCustodyTests.Setting()
        let lawyer = s.cli(s.lawyers[0])
        _ = try lawyer.ok(["import", try s.export("first.age"), "--identity", s.key])
        let id = try #require(try lawyer.list().first?["id"] as? String)
        #expect(try lawyer.ok(["show", id]).contains("consent: share"))

        _ = try s.cli(s.field[0]).ok(["edit", s.testimony.hex, "--set", "consent=restricted"])
        let later = s.dir.path("second.age").path
        _ = try s.cli(s.field[0]).ok([
            "export", "--out", later, "--recipient", s.recipient, "--id", s.testimony.hex, "--include-restricted",
        ])
        let imported = try lawyer.run(["import", later, "--identity", s.key])
        #expect(imported.status == 0, "\(imported.stderr)")
        let shown = try lawyer.ok(["show", id])
        #expect(shown.contains("consent: restricted"), "\(shown)")
        let export = try lawyer.run(["export", "--out", s.dir.path("onwards.age").path, "--recipient", s.recipient])
        #expect(export.status != 0 || !export.stderr.contains("Exported 1 record"), "\(export.stderr)")
        #expect(export.stderr.contains("Left out"), "\(export.stderr)")
        // A third import of the same bundle changes nothing more.
        let digest = try lawyer.digest()
        _ = try lawyer.ok(["import", later, "--identity", s.key])
        #expect(try lawyer.digest() == digest)
        #expect(try lawyer.run(["verify"]).status == 0)
    }

    /// Two laptops of the lawyers' team import the same bundle before they sync: the team holds two copies of one
    /// origin (record ids derive from each importer's own log, so this cannot merge). A later bundle then extended
    /// only one of them, so a consent withdrawn at the origin stayed `share` on the other copy, exported by default.
    @Test func aLaterBundleReachesEveryCopyOfARacedImport() throws {
        let s = try ImportCustodyTests.Setting()
        let first = try s.export("first.age")
        let (a, b) = (s.cli(s.lawyers[0]), s.cli(s.lawyers[1]))
        _ = try a.ok(["import", first, "--identity", s.key])
        _ = try b.ok(["import", first, "--identity", s.key])
        try s.exchange(s.lawyers[0], s.lawyers[1])
        try s.exchange(s.lawyers[1], s.lawyers[0])
        let copies = try a.list().compactMap { $0["id"] as? String }
        #expect(copies.count == 2, "two copies of one origin: \(copies)")

        _ = try s.cli(s.field[0]).ok(["edit", s.testimony.hex, "--set", "consent=restricted"])
        let later = s.dir.path("second.age").path
        _ = try s.cli(s.field[0]).ok([
            "export", "--out", later, "--recipient", s.recipient, "--id", s.testimony.hex, "--include-restricted",
        ])
        _ = try a.ok(["import", later, "--identity", s.key])
        for copy in copies {
            let history = try a.ok(["history", copy])
            #expect(history.contains("3 signed changes kept with it"), "\(copy): \(history)")
            #expect(try a.ok(["show", copy]).contains("consent: restricted"), "\(copy)")
        }
        let export = try a.run(["export", "--out", s.dir.path("onwards.age").path, "--recipient", s.recipient])
        #expect(!export.stderr.contains("Exported"), "\(export.stderr)")
    }

    /// A member (a modified client) amends one testimony with a stamp of 2^53 ms. No bundle can hold that time
    /// exactly, so `amanat export` refused the whole vault: one hostile change stopped every record from leaving.
    @Test func aChangeStampedBeyondTwoToTheFiftyThreeBlocksOnlyItsOwnRecord() throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let target = try team[0].createRecord(
            kind: "testimony", fields: [("witness", "W-1"), ("consent", "share")], tags: [], seal: true)
        let other = try team[0].createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        try exchange(team[0], team[1])
        try exchange(team[1], team[0])
        let mole = team[1]
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let pred = (try mole.resolveRecord(target.hex).values["witness"] ?? []).map(\.op)
        let forged = try chain.change(
            target, key: writingKey(of: mole), at: HLCTimestamp(wallMillis: 1 << 53, counter: 0),
            [.set(field: "witness", value: "W-2", pred: pred)])
        try team[0].ingest([forged])

        var cli = CLIRunner(vault: team[0].directory)
        cli.passphrase = "test passphrase"
        let key = dir.path("k.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let all = try cli.run(["export", "--out", dir.path("all.age").path, "--recipient", recipient])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stderr.contains("Left out 1 record with a change stamped too far in the future"), "\(all.stderr)")
        #expect(all.stderr.contains(String(target.hex.prefix(12))))
        let opened = try cli.run(
            ["bundle", "verify", dir.path("all.age").path, "--identity", key], withVault: false)
        #expect(opened.status == 0 && opened.stdout.contains(String(other.hex.prefix(12))), "\(opened.stdout)")
        let named = try cli.run(
            ["export", "--out", dir.path("one.age").path, "--recipient", recipient, "--id", target.hex])
        #expect(named.status == 65 && named.stderr.contains("too far in the future"), "\(named.stderr)")
    }
}
