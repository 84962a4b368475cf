import Foundation
import Testing

/// Every bad input gets one clear sentence, its documented exit status, and changes nothing.
@Suite struct BadInputTests {
    /// A vault with two records, and its digest and file bytes, to check that nothing changed.
    struct Fixture {
        let scratch: Scratch
        let cli: CLIRunner
        let statement: String
        let testimony: String
        let digest: String

        init() throws {
            scratch = try Scratch()
            cli = scratch.runner()
            try cli.initialize()
            statement = try cli.ok(["add", "statement", "--title", "T", "--issued-on", "2025-07-13"])
            testimony = try cli.ok(["add", "testimony", "--witness", "W-2", "--allow-empty"])
            digest = try cli.digest()
        }

        /// Runs a bad command: checks its status, a one-line message on stderr, and an unchanged vault.
        func expectRefused(
            _ args: [String], status: Int32, mentioning words: String, passphrase: String? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws {
            var runner = cli
            if let passphrase { runner.passphrase = passphrase }
            let r = try runner.run(args)
            #expect(r.status == status, "\(args): \(r.stderr)", sourceLocation: sourceLocation)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "one sentence expected: \(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stderr.lowercased().contains(words.lowercased()), "\(r.stderr)", sourceLocation: sourceLocation)
            #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
            #expect(try cli.digest() == digest, "state changed after \(args)", sourceLocation: sourceLocation)
        }
    }

    @Test func wrongPassphrase() throws {
        let f = try Fixture()
        try f.expectRefused(["list"], status: 77, mentioning: "wrong passphrase", passphrase: "not it")
        try f.expectRefused(
            ["edit", f.testimony, "--set", "location=X"], status: 77, mentioning: "wrong passphrase",
            passphrase: "not it")
    }

    @Test func missingVaultAndExistingVault() throws {
        let f = try Fixture()
        let r = try f.scratch.runner("nowhere").run(["list"])
        #expect(r.status == 66)
        #expect(r.stderr.contains("no vault"))
        try f.expectRefused(["init", "--kdf", "interactive"], status: 73, mentioning: "already exists")
    }

    @Test func unknownAmbiguousAndShortIDs() throws {
        let f = try Fixture()
        try f.expectRefused(["show", "abcdef0123"], status: 67, mentioning: "no record")
        try f.expectRefused(["show", String(f.statement.prefix(5))], status: 67, mentioning: "at least 6")
        try f.expectRefused(["edit", "zzzzzzzz", "--set", "title=x"], status: 67, mentioning: "not a record id")
        try f.expectRefused(["delete", "0123456789abcdef0123456789abcdef"], status: 67, mentioning: "no record")
    }

    @Test func badFieldsDatesConsentAndFiles() throws {
        let f = try Fixture()
        try f.expectRefused(["edit", f.testimony, "--set", "colour=red"], status: 64, mentioning: "has no field")
        try f.expectRefused(
            ["edit", f.statement, "--set", "issued_on=2025-02-30"], status: 64, mentioning: "not a date")
        try f.expectRefused(
            ["edit", f.statement, "--set", "issued_on=13/07/2025"], status: 64, mentioning: "not a date")
        try f.expectRefused(
            ["edit", f.testimony, "--set", "consent=maybe"], status: 64, mentioning: "share, anonymised")
        try f.expectRefused(
            ["add", "testimony", "--witness", "W", "--consent", "yes"], status: 64, mentioning: "consent")
        try f.expectRefused(
            ["add", "testimony", "--witness", "W", "--incident-date", "2024-13-01"], status: 64,
            mentioning: "not a date")
        try f.expectRefused(
            ["add", "statement", "--title", "x", "--body-file", "/nonexistent/file.txt"], status: 66,
            mentioning: "cannot be read")
        try f.expectRefused(
            ["add", "testimony", "--witness", "W", "--narrative-file", f.scratch.url.path], status: 66,
            mentioning: "cannot be read")
        try f.expectRefused(["list", "--kind", "poem"], status: 64, mentioning: "not a kind")
        try f.expectRefused(["wipe"], status: 64, mentioning: "--yes")
    }

    @Test func aFlippedKeyringByteIsReportedAsDamage() throws {
        let f = try Fixture()
        let url = f.cli.vault.appendingPathComponent("keyring.amk")
        let original = try Data(contentsOf: url)
        for position in [0, 5, 30, original.count / 2, original.count - 40, original.count - 1] {
            var bytes = original
            bytes[position] ^= 0x20
            try bytes.write(to: url)
            let r = try f.cli.run(["list"])
            #expect(r.status == 65, "byte \(position): \(r.stderr)")
            #expect(r.stderr.contains("damaged"))
        }
        try original.write(to: url)
        #expect(try f.cli.digest() == f.digest)
    }

    @Test func aFlippedDatabaseByteIsReportedAsDamageNeverAWrongAnswer() throws {
        let f = try Fixture()
        let url = f.cli.vault.appendingPathComponent("vault.sqlite")
        let original = try Data(contentsOf: url)
        // The SQLite header: the file is no longer a database.
        var header = original
        header[0] ^= 0xff
        try header.write(to: url)
        let r1 = try f.cli.run(["list"])
        #expect(r1.status == 65 && r1.stderr.contains("damaged"), "\(r1.status) \(r1.stderr)")
        // Inside an envelope's ciphertext: verify names the damaged change, history refuses to show it.
        let magic = Data("AMNE".utf8) + Data([1])
        let start = try #require(original.range(of: magic)?.lowerBound)
        var inside = original
        inside[start + 125 + 3] ^= 0x01
        try inside.write(to: url)
        let r2 = try f.cli.run(["verify"])
        #expect(r2.status == 65, "\(r2.stderr)")
        #expect(r2.stderr.contains("damaged") || r2.stderr.contains("forged") || r2.stderr.contains("altered"))
        try original.write(to: url)
        #expect(try f.cli.ok(["verify"]).hasPrefix("ok:"))
    }
}
