import AmanatCrypto
import AmanatStore
import Foundation
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
    /// A vault with the sample statement and 30 testimonies (a bundle of several 64 KiB chunks), and an age key.
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
                    kind: "testimony", fields: [("witness", "W-\(i)"), ("narrative", narrative)], tags: ["detention"],
                    seal: true)
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
        let bundle = try f.export(["--recipient", f.recipient, "--kind", "testimony"])
        let verified = try f.cli.run(["bundle", "verify", bundle, "--identity", f.key], withVault: false)
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("ok: 30 records"))
        #expect(verified.stdout.contains("(original, sealed)"))
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

        // Import into another vault, with provenance; a second import adds nothing.
        let other = f.scratch.runner("receiver")
        try other.initialize()
        _ = try other.ok(["import", bundle, "--identity", f.key])
        _ = try other.ok(["import", bundle, "--identity", f.key])
        let imported = try other.list()
        #expect(imported.count == 30)
        let fields = try #require(imported.first?["fields"] as? [String: String])
        #expect(fields["provenance"]?.contains("Imported from an evidence bundle") == true)
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
