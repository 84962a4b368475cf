import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import GRDB
import Testing

/// Runs a shell pipeline (for the real `age` and `tar` tools) and returns status and stdout.
func shell(_ command: String, environment: [String: String] = [:]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite struct BundleCommandTests {
    /// A vault with the sample statement and 30 testimonies (a bundle of several 64 KiB chunks): 28 with consent
    /// `share`, 2 `restricted`; and an age key.
    struct Fixture {
        let scratch: Scratch
        let cli: CLIRunner
        let statement: String
        let key: String
        let recipient: String

        init() throws {
            #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/age"), "install Debian's age package")
            scratch = try Scratch()
            cli = scratch.runner()
            try cli.initialize()
            statement = try cli.ok([
                "add", "statement", "--title", "Coalition statement", "--body-file", samplePath, "--tag", "women",
            ])
            let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
            let narrative = try String(contentsOfFile: samplePath, encoding: .utf8)
            for i in 0..<30 {
                _ = try vault.createRecord(
                    kind: "testimony",
                    fields: [
                        ("witness", "W-\(i)"), ("narrative", narrative), ("consent", i < 28 ? "share" : "restricted"),
                    ],
                    tags: ["detention"], seal: true)
            }
            key = scratch.path("lawyer.txt").path
            let (status, _) = try shell("age-keygen -o '\(key)'")
            #expect(status == 0)
            recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func export(_ extra: [String]) throws -> String {
            let out = scratch.path("bundle-\(UUID().uuidString).age").path
            _ = try cli.ok(["export", "--out", out] + extra)
            return out
        }
    }

    /// A file of 8 GiB or more gets a size field of twelve octal digits (no terminator), which GNU tar, Python's
    /// tarfile and Amanat's reader take for its exact size, up to 64 GiB − 1; smaller files keep eleven digits and a
    /// NUL. (The headers alone: the files themselves would take gigabytes of disk.)
    @Test(arguments: [0o77777777777, 0o77777777777 + 1, 10 * (1 << 30) + 3, 0o777777777777])
    func largeFilesGetSizesThatTarAndPythonRead(size: Int) throws {
        let scratch = try Scratch()
        let header = TarArchive.header(path: "attachments/r/big.mp4", size: size)
        let digits = header[124..<136].prefix { (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }.count
        #expect(digits == (size <= TarArchive.largestTerminatedSize ? 11 : 12))
        let file = scratch.path("big.tar")
        try Data(header + [UInt8](repeating: 0, count: 4096)).write(to: file)
        var parsed: Int?
        var decoder = TarArchive.Decoder(summarising: { _ in true }) { event in
            if case .start(_, let size) = event { parsed = size }
        }
        try decoder.feed(header[...])
        #expect(parsed == size)
        let python = try shell(
            "python3 -c 'import sys, tarfile; print(tarfile.TarInfo.frombuf(open(sys.argv[1], \"rb\").read(512), \"utf-8\", \"strict\").size)' '\(file.path)'"
        )
        #expect(
            python.0 == 0 && python.1.trimmingCharacters(in: .whitespacesAndNewlines) == String(size), "\(python.1)")
        // GNU tar lists the file with its size before it finds the archive cut short.
        let listed = try shell("tar tvf '\(file.path)' 2>/dev/null; true")
        #expect(listed.1.contains(" \(size) ") && listed.1.contains("attachments/r/big.mp4"), "\(listed.1)")
    }

    @Test func theStandardAgeToolOpensAnExportedBundle() throws {
        let f = try Fixture()
        let bundle = try f.export(["--recipient", f.recipient, "--tag", "women"])
        let (status, listing) = try shell("age -d -i '\(f.key)' '\(bundle)' | tar t")
        #expect(status == 0)
        let files = Set(listing.split(separator: "\n").map(String.init))
        #expect(files.contains("manifest.json") && files.contains("README.txt"))
        #expect(files.contains("records/\(f.statement).json") && files.contains("custody/\(f.statement).json"))
        #expect(files.filter { $0.hasPrefix("records/") }.count == 1, "only the selected record: \(files)")
        // Armored too.
        let armored = try f.export(["--recipient", f.recipient, "--id", String(f.statement.prefix(8)), "--armor"])
        #expect(try String(contentsOfFile: armored, encoding: .utf8).hasPrefix("-----BEGIN AGE ENCRYPTED FILE-----"))
        #expect(try shell("age -d -i '\(f.key)' '\(armored)' | tar t").0 == 0)
        // No plaintext in the bundle file.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: bundle))
        #expect(bytes.range(of: Data("bloody hands".utf8)) == nil)
    }

    @Test func verifyOpenAndImportABundle() throws {
        let f = try Fixture()
        let bundle = try f.export(["--recipient", f.recipient, "--kind", "testimony", "--include-restricted"])
        let fingerprint = try #require(
            try f.cli.ok(["status"]).split(separator: "\n").first { $0.hasPrefix("vault: ") }?.split(separator: " ")
                .last)
        let verified = try f.cli.run(
            ["bundle", "verify", bundle, "--identity", f.key, "--expect-vault", String(fingerprint)], withVault: false)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("ok: 30 records"))
        #expect(verified.stdout.contains("(original, sealed)"))
        #expect(
            verified.stdout.contains("coordinator (admission proven back to the vault's founder), exported this bundle")
        )
        #expect(verified.stdout.contains("consent at export: restricted"))
        // Another fingerprint: intact but not the expected vault (exit 3).
        let other = try f.cli.run(
            ["bundle", "verify", bundle, "--identity", f.key, "--expect-vault", String(repeating: "ab", count: 16)],
            withVault: false)
        #expect(other.status == 3, "\(other.stderr)")
        #expect(other.stderr.contains("not the expected"))
        let malformed = try f.cli.run(
            ["bundle", "verify", bundle, "--identity", f.key, "--expect-vault", "xyz"], withVault: false)
        #expect(malformed.status == 64)
        let out = f.scratch.path("opened").path
        _ = try f.cli.ok(["bundle", "open", bundle, "--identity", f.key, "--out", out])
        #expect(FileManager.default.fileExists(atPath: out + "/manifest.json"))
        #expect(try f.cli.run(["bundle", "verify", out], withVault: false).status == 0)

        // An edited record in the opened bundle fails and is named.
        let records = try FileManager.default.contentsOfDirectory(atPath: out + "/records").sorted()
        let victim = out + "/records/" + records[3]
        let text = try String(contentsOfFile: victim, encoding: .utf8)
        try text.replacingOccurrences(of: "\"W-", with: "\"X-").write(toFile: victim, atomically: true, encoding: .utf8)
        let tampered = try f.cli.run(["bundle", "verify", out], withVault: false)
        #expect(tampered.status == 65)
        #expect(tampered.stderr.contains(String(records[3].prefix(12))), "\(tampered.stderr)")
        #expect(tampered.stdout.isEmpty, "nothing of an altered bundle is shown as if verified")

        // Import into another vault, with provenance; a second import adds nothing.
        let receiver = f.scratch.runner("receiver")
        try receiver.initialize()
        _ = try receiver.ok(["import", bundle, "--identity", f.key, "--expect-vault", String(fingerprint)])
        _ = try receiver.ok(["import", bundle, "--identity", f.key])
        let imported = try receiver.list()
        #expect(imported.count == 30)
        let fields = try #require(imported.first?["fields"] as? [String: String])
        #expect(fields["provenance"]?.contains("Imported from an evidence bundle") == true)
    }

    @Test func restrictedTestimoniesAreLeftOutUnlessAskedFor() throws {
        let f = try Fixture()
        let out = f.scratch.path("default.age").path
        let r = try f.cli.run(["export", "--out", out, "--recipient", f.recipient, "--kind", "testimony"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("Left out 2 testimonies with consent restricted"), "\(r.stderr)")
        #expect(r.stderr.contains("Exported 28 records"), "\(r.stderr)")
        let verified = try f.cli.run(["bundle", "verify", out, "--identity", f.key], withVault: false)
        #expect(verified.stdout.contains("ok: 28 records"), "\(verified.stdout)")
        #expect(!verified.stdout.contains("consent at export: restricted"))
        let all = f.scratch.path("all.age").path
        let included = try f.cli.run(
            ["export", "--out", all, "--recipient", f.recipient, "--kind", "testimony", "--include-restricted"])
        #expect(included.status == 0 && !included.stderr.contains("Left out"), "\(included.stderr)")
        #expect(included.stderr.contains("Exported 30 records"))
        // A selection of restricted testimonies only: left out, nothing to export (exit 2, as a selection that matches nothing), nothing written.
        let restricted = try f.cli.run(["list", "--json"])
        #expect(restricted.status == 0)
        let none = f.scratch.path("none.age").path
        let ids = try f.cli.list().filter { ($0["fields"] as? [String: String])?["consent"] == "restricted" }
            .compactMap { $0["id"] as? String }
        #expect(ids.count == 2)
        let empty = try f.cli.run(
            ["export", "--out", none, "--recipient", f.recipient] + ids.flatMap { ["--id", $0] })
        #expect(empty.status == 2, "\(empty.stderr)")
        #expect(empty.stderr.contains("Left out 2 testimonies"))
        #expect(!FileManager.default.fileExists(atPath: none))
    }

    /// The change that created the fixture's statement.
    func statementsFirstChange(_ f: Fixture) throws -> ChangeRef {
        let vault = try Vault.open(at: f.cli.vault, passphrase: SecureBytes(Array(f.cli.passphrase.utf8)))
        return try #require(try vault.allStates().first { $0.id.hex == f.statement }?.changes.first)
    }

    /// Deletes `change`'s envelope from the vault's database with plain SQLite, as someone with the disk could.
    func deleteEnvelope(of change: ChangeRef, in f: Fixture) throws {
        let database = try DatabaseQueue(path: f.cli.vault.appendingPathComponent(Vault.databaseFileName).path)
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM envelope WHERE author = ? AND seq = ?",
                arguments: [Data(change.author.bytes), Int64(change.seq)])
            #expect(db.changesCount == 1)
        }
        try database.close()
    }

    /// The chain files hold every link of each device's log. Export reads the links of the exported records' envelopes
    /// once, with their histories, and the others from the log: one missing there (the statement's envelope, deleted
    /// from the vault's database with plain SQLite) refuses the export, and no bundle is left.
    @Test func aGapInTheLogBetweenExportedRecordsRefusesTheExport() throws {
        let f = try Fixture()
        try deleteEnvelope(of: try statementsFirstChange(f), in: f)
        let out = f.scratch.path("gap.age").path
        let r = try f.cli.run(["export", "--out", out, "--recipient", f.recipient, "--kind", "testimony"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("has a gap"), "\(r.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: out) && !FileManager.default.fileExists(atPath: out + ".partial"))
    }

    /// The change that made an exported record, deleted from the vault's database: the refusal names the change and
    /// the record, so the person knows which record to check, and no bundle is left.
    @Test func aMissingChangeOfAnExportedRecordIsNamedWithItsRecord() throws {
        let f = try Fixture()
        let change = try statementsFirstChange(f)
        try deleteEnvelope(of: change, in: f)
        let out = f.scratch.path("missing.age").path
        let r = try f.cli.run(["export", "--out", out, "--recipient", f.recipient, "--id", f.statement])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "change \(change.seq) of device \(change.author.hex.prefix(12)), which made record \(f.statement.prefix(12)), is missing from the log"
            ), "\(r.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: out) && !FileManager.default.fileExists(atPath: out + ".partial"))
    }

    /// A stored envelope altered on the disk, of a record that is not exported, is still a link of its device's chain
    /// file: export refuses it (the next link no longer names its hash) rather than writing a bundle that fails
    /// `bundle verify`.
    @Test func anAlteredEnvelopeOutsideTheSelectionRefusesTheExport() throws {
        let f = try Fixture()
        let seq = try statementsFirstChange(f).seq
        let database = try DatabaseQueue(path: f.cli.vault.appendingPathComponent(Vault.databaseFileName).path)
        try database.write { db in
            var body = try #require(
                try Data.fetchOne(db, sql: "SELECT body FROM envelope WHERE seq = ?", arguments: [Int64(seq)]))
            body[body.count - 100] ^= 0x01  // a byte of the ciphertext, before the 64-byte signature
            try db.execute(sql: "UPDATE envelope SET body = ? WHERE seq = ?", arguments: [body, Int64(seq)])
        }
        try database.close()
        let out = f.scratch.path("altered.age").path
        let r = try f.cli.run(["export", "--out", out, "--recipient", f.recipient, "--kind", "testimony"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("is not the one its device signed"), "\(r.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: out) && !FileManager.default.fileExists(atPath: out + ".partial"))
    }

    /// The fabricated bundle of an outsider who knows the team's vault id, built end to end and encrypted with age:
    /// `bundle verify` reports it unproven (or refuses it when it names a team device as exporter), and `import`
    /// refuses it and leaves the receiving vault exactly as it was.
    @Test func aFabricatedBundleIsReportedUnprovenAndImportRefusesIt() throws {
        let f = try Fixture()
        let dir = try TemporaryDirectory(prefix: "fabricated")
        let team = try Vault.open(at: f.cli.vault, passphrase: SecureBytes(Array(f.cli.passphrase.utf8)))
        let outsider = try Vault.create(
            at: dir.path("outsider"), passphrase: passphrase, deviceName: "outsider", strength: .interactive)
        let receiver = f.scratch.runner("receiver")
        try receiver.initialize()
        let digest = {
            try receiver.ok(["status", "--json"]).split(separator: "\n").first { $0.contains("state_digest") }
        }
        let before = try digest()
        for (claimed, status) in [(nil, Int32(3)), (Optional(team.deviceID), Int32(65))] {
            let forged = try fabricate(vaultID: team.vaultID, outsider: outsider, team: team, claimedExporter: claimed)
            let path = f.scratch.path("forged-\(status).age")
            try writeAgeBundle(forged, to: path, recipient: f.recipient)
            let verified = try f.cli.run(["bundle", "verify", path.path, "--identity", f.key], withVault: false)
            #expect(verified.status == status, "\(verified.stdout) \(verified.stderr)")
            if status == 3 {
                #expect(verified.stdout.contains("not proven to be a member"), "\(verified.stdout)")
                #expect(verified.stderr.contains("NOT PROVEN"))
            } else {
                #expect(verified.stderr.contains("manifest.sig does not verify"), "\(verified.stderr)")
            }
            #expect(!verified.stdout.contains("ok:"))
            let imported = try receiver.run(["import", path.path, "--identity", f.key])
            #expect(imported.status == status, "\(imported.stderr)")
            #expect(imported.stderr.contains("nothing was imported"))
            #expect(try digest() == before, "the receiving vault is unchanged")
            let opened = try f.cli.run(
                ["bundle", "open", path.path, "--identity", f.key, "--out", f.scratch.path("o\(status)").path],
                withVault: false)
            #expect(opened.status == status)
            #expect(!FileManager.default.fileExists(atPath: f.scratch.path("o\(status)").path))
            // Only an intact bundle can be extracted on purpose, still reported as unproven.
            let accepted = try f.cli.run(
                [
                    "bundle", "open", path.path, "--identity", f.key, "--out", f.scratch.path("a\(status)").path,
                    "--accept-unproven",
                ], withVault: false)
            #expect(accepted.status == (status == 3 ? 0 : 65), "\(accepted.stderr)")
            #expect(
                FileManager.default.fileExists(atPath: f.scratch.path("a\(status)/manifest.json").path) == (status == 3)
            )
            if status == 3 { #expect(accepted.stderr.contains("NOT PROVEN")) }
        }
    }

    @Test func anUndisclosedAmendmentIsReportedByBundleVerify() throws {
        let f = try Fixture()
        let id = String(
            try f.cli.list().first { ($0["fields"] as? [String: String])?["witness"] == "W-0" }!["id"] as! String)
        _ = try f.cli.ok(["edit", String(id.prefix(8)), "--set", "location=Herat"])
        let vault = try Vault.open(at: f.cli.vault, passphrase: SecureBytes(Array(f.cli.passphrase.utf8)))
        let state = try #require(try vault.allStates().first { $0.id.hex == id })
        let archive = try BundleExporter.archive(from: vault, records: [state], now: Date())
        let amendment = try #require(state.changes.last)
        let redacted = try resignBundle(
            archive, signer: vault.keyring.device,
            replacing: try redactedRecord(archive, record: state.id) { $0 == amendment.author && $1 == amendment.seq })
        let path = f.scratch.path("redacted.age")
        try writeAgeBundle(redacted, to: path, recipient: f.recipient)
        let verified = try f.cli.run(["bundle", "verify", path.path, "--identity", f.key], withVault: false)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("1 change not disclosed"), "\(verified.stdout)")
        #expect(!verified.stdout.contains("Herat"))
    }

    @Test func passphraseBundlesWork() throws {
        let f = try Fixture()
        var runner = f.cli
        runner.environment["AMANAT_BUNDLE_PASSPHRASE"] = "bundle secret"
        let out = f.scratch.path("p.age").path
        _ = try runner.ok(["export", "--out", out, "--passphrase", "--id", f.statement])
        #expect(try runner.run(["bundle", "verify", out, "--passphrase"], withVault: false).status == 0)
        runner.environment["AMANAT_BUNDLE_PASSPHRASE"] = "wrong"
        let wrong = try runner.run(["bundle", "verify", out, "--passphrase"], withVault: false)
        #expect(wrong.status == 77, "\(wrong.stderr)")
        #expect(try f.cli.run(["export", "--out", out, "--passphrase", "--recipient", f.recipient]).status == 64)
        // With no terminal to ask at and no AMANAT_BUNDLE_PASSPHRASE, the sentence names only what can be given:
        // neither command reads the bundle's passphrase from a file.
        let other = f.scratch.path("q.age").path
        for (args, vault) in [
            (["export", "--out", other, "--passphrase", "--id", f.statement], true),
            (["bundle", "verify", out, "--passphrase"], false),
        ] {
            let none = try f.cli.run(args, withVault: vault)
            #expect(none.status == 64, "\(none.stderr)")
            #expect(
                none.stderr.hasSuffix("no terminal to ask at; set AMANAT_BUNDLE_PASSPHRASE.\n"), "\(none.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: other))
    }

    @Test func damagedBundlesAreRefusedAndNothingIsExtracted() throws {
        let f = try Fixture()
        let bundle = try f.export(["--recipient", f.recipient])
        let original = try Data(contentsOf: URL(fileURLWithPath: bundle))
        #expect(original.count > 3 * 65_536, "the bundle must span several chunks for this test")
        let headerEnd = try #require(original.range(of: Data("\n--- ".utf8))?.upperBound) + 44
        let payloadStart = headerEnd + 16
        let chunk = 65_536 + 16
        var cases: [(String, Data)] = []
        cases.append(("truncated at a chunk boundary", original.prefix(payloadStart + chunk)))
        cases.append(("truncated inside a chunk", original.prefix(payloadStart + chunk + 1000)))
        cases.append(("truncated in the header", original.prefix(headerEnd - 10)))
        var header = original
        header[20] ^= 1
        cases.append(("flipped header byte", header))
        var payload = original
        payload[payloadStart + chunk + 5] ^= 1
        cases.append(("flipped payload byte", payload))
        var swapped = original
        let first = original.subdata(in: payloadStart..<payloadStart + chunk)
        let second = original.subdata(in: payloadStart + chunk..<payloadStart + 2 * chunk)
        swapped.replaceSubrange(payloadStart..<payloadStart + chunk, with: second)
        swapped.replaceSubrange(payloadStart + chunk..<payloadStart + 2 * chunk, with: first)
        cases.append(("swapped chunks", swapped))
        for (name, bytes) in cases {
            let path = f.scratch.path("damaged.age").path
            try bytes.write(to: URL(fileURLWithPath: path))
            let out = f.scratch.path("out-\(UUID().uuidString)").path
            let r = try f.cli.run(["bundle", "open", path, "--identity", f.key, "--out", out], withVault: false)
            #expect(r.status == 65, "\(name): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(name): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(name): something was written")
        }
        // The wrong identity.
        let other = f.scratch.path("other.txt").path
        _ = try shell("age-keygen -o '\(other)'")
        let wrong = try f.cli.run(
            ["bundle", "open", bundle, "--identity", other, "--out", f.scratch.path("w").path], withVault: false)
        #expect(wrong.status == 77)
        #expect(wrong.stderr.contains("not encrypted to that identity"))
    }
}
