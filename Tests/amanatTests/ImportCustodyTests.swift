import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// Custody survives import: a lawyer's team imports a field team's bundle; `history` shows the original devices,
/// times and seal, verified from the envelopes kept with the record, on every replica of the lawyer's team; a second
/// import adds nothing, a later bundle adds only what is new, and a forged kept envelope is caught by `verify`.
@Suite struct ImportCustodyTests {
    struct Setting {
        let dir: TemporaryDirectory
        let field: [Vault]
        let lawyers: [Vault]
        let testimony: RecordID
        let key: String
        let recipient: String

        init() throws {
            dir = try TemporaryDirectory()
            field = try makeTeam(2, in: dir, prefix: "field")
            lawyers = try makeTeam(2, in: dir, prefix: "lawyer")
            // The coordinator records a sealed testimony; the member amends it.
            testimony = try field[0].createRecord(
                kind: "testimony",
                fields: [("witness", "W-7"), ("narrative", "شب آمدند. They came at night."), ("consent", "share")],
                tags: ["detention"], seal: true)
            try AmanatTestSupport.exchange(field[0], field[1])
            try field[1].commit(record: testimony) {
                [try #require($0).setOperation(field: "location", value: "Herat")]
            }
            try AmanatTestSupport.exchange(field[1], field[0])
            key = dir.path("lawyer.txt").path
            #expect(try shell("age-keygen -o '\(key)'").0 == 0)
            recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func exchange(_ from: Vault, _ to: Vault) throws { try AmanatTestSupport.exchange(from, to) }

        func cli(_ vault: Vault) -> CLIRunner {
            var runner = CLIRunner(vault: vault.directory)
            runner.passphrase = "test passphrase"
            return runner
        }

        /// Exports the testimony from the field coordinator with the command line.
        func export(_ name: String) throws -> String {
            let out = dir.path(name).path
            _ = try cli(field[0]).ok(["export", "--out", out, "--recipient", recipient, "--id", testimony.hex])
            return out
        }
    }

    @Test func historyShowsTheOriginalDevicesTimesAndSealVerifiedOnEveryReplica() throws {
        let s = try Setting()
        let bundle = try s.export("first.age")
        let lawyer = s.cli(s.lawyers[0])
        let first = try lawyer.run(["import", bundle, "--identity", s.key])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("imported 1 record with their original signed changes"), "\(first.stderr)")
        let records = try lawyer.list()
        #expect(records.count == 1)
        let id = try #require(records.first?["id"] as? String)

        let history = try lawyer.ok(["history", id])
        let lines = history.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("Original record \(s.testimony.hex)") == true, "\(history)")
        #expect(lines.first?.contains("2 signed changes kept with it: every signature, key and seal verified") == true)
        let coordinator = s.field[0].deviceID.hex.prefix(12)
        let member = s.field[1].deviceID.hex.prefix(12)
        let original = try #require(
            lines.firstIndex { $0.contains("device \(coordinator) (coordinator of the origin") })
        let amendment = try #require(lines.firstIndex { $0.contains("device \(member) (member of the origin vault)") })
        #expect(lines[original].hasSuffix("(original, sealed)"))
        #expect(lines[amendment].hasSuffix("(amendment)"))
        #expect(original < amendment)
        // The original time, exactly as the field coordinator's log has it.
        let stamp = try #require(try s.field[0].history(of: s.field[0].resolveRecord(s.testimony.hex)).first)
        let millis = stamp.change.change.timestamp.wallMillis
        let seconds = Date(timeIntervalSince1970: Double(millis / 1000)).ISO8601Format().dropLast()
        #expect(lines[original].hasPrefix("\(seconds).\(String(format: "%03d", Int(millis % 1000)))Z"))
        #expect(history.contains("set location = Herat"))
        let then = try #require(lines.firstIndex(of: "Then in this vault:"))
        #expect(then > amendment)
        #expect(lines[(then + 1)...].first?.hasSuffix("(import)") == true, "\(history)")
        #expect(try lawyer.run(["verify"]).status == 0)

        // The kept custody travels with the record: the lawyer team's second laptop shows and verifies it too.
        try s.exchange(s.lawyers[0], s.lawyers[1])
        let colleague = s.cli(s.lawyers[1])
        let theirs = try colleague.ok(["history", id])
        #expect(theirs.contains("every signature, key and seal verified"))
        #expect(theirs.contains("device \(member) (member of the origin vault)"))
        #expect(try colleague.run(["verify"]).status == 0)

        // What the import recorded cannot be rewritten with `edit` (a protected field), and a second import of the
        // same bundle changes nothing: whether a record was imported is decided by its origin, not by a field.
        let rewrite = try lawyer.run(["edit", id, "--set", "provenance=checked by the legal team"])
        #expect(rewrite.status == 64 && rewrite.stderr.contains("cannot be edited"), "\(rewrite.stderr)")
        let digest = try lawyer.digest()
        let again = try lawyer.run(["import", bundle, "--identity", s.key])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("imported 0 records") && again.stderr.contains("1 already imported"))
        #expect(try lawyer.digest() == digest)
        #expect(try lawyer.list().count == 1)
    }

    @Test func aLaterBundleAddsOnlyTheNewlyDisclosedChanges() throws {
        let s = try Setting()
        let lawyer = s.cli(s.lawyers[0])
        _ = try lawyer.ok(["import", try s.export("first.age"), "--identity", s.key])
        let id = try #require(try lawyer.list().first?["id"] as? String)

        try s.field[1].commit(record: s.testimony) {
            [try #require($0).setOperation(field: "location", value: "Kabul")]
        }
        try s.exchange(s.field[1], s.field[0])
        let later = try lawyer.run(["import", try s.export("second.age"), "--identity", s.key])
        #expect(later.status == 0, "\(later.stderr)")
        #expect(later.stderr.contains("kept the newly disclosed original changes of 1 record"), "\(later.stderr)")
        #expect(try lawyer.list().count == 1)
        let history = try lawyer.ok(["history", id])
        #expect(history.contains("3 signed changes kept with it: every signature, key and seal verified"), "\(history)")
        #expect(history.contains("changed location = Kabul"))
        #expect(try lawyer.run(["verify"]).status == 0)
    }

    @Test func aForgedKeptEnvelopeIsCaughtByVerifyAndHistory() throws {
        let s = try Setting()
        let lawyer = s.cli(s.lawyers[0])
        _ = try lawyer.ok(["import", try s.export("first.age"), "--identity", s.key])
        try s.exchange(s.lawyers[0], s.lawyers[1])
        let imported = try #require(try s.lawyers[1].allStates().first { $0.origin != nil })
        let genuine = try #require(imported.custody.first { !$0.key.isEmpty })

        // A member of the lawyer team adds a "kept original" whose text it changed: it cannot re-sign it.
        let original = try Envelope(decoding: genuine.envelope)
        var altered = original.ciphertext
        altered[altered.count / 2] ^= 0x01
        let envelope = Envelope(header: original.header, ciphertext: altered, signature: original.signature)
        let mole = s.lawyers[1]
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let forged = try chain.change(
            imported.id, key: writingKey(of: mole), at: stampNow(),
            [.custody(envelope: envelope.encoded(), key: genuine.key)])
        try s.exchange(s.lawyers[1], s.lawyers[0])
        try s.lawyers[0].ingest([forged])

        let verify = try lawyer.run(["verify"])
        #expect(verify.status != 0)
        #expect(verify.stdout.contains("imported: Kept envelope") || verify.stderr.contains("imported: Kept envelope"))
        let history = try lawyer.ok(["history", imported.id.hex])
        #expect(history.contains("NOT VERIFIED: Kept envelope"), "\(history)")
    }
}
