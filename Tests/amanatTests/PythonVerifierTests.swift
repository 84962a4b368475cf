import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// The independent verifier, `Scripts/verify-bundle.py` (Python 3 and PyNaCl, written from `Protocol/` alone), run on
/// bundles the Swift code writes: whole teams' bundles verify byte for byte, every single-byte change is caught, an
/// undisclosed amendment is reported, and a fabricated bundle is refused or reported unproven.
///
/// CI runs these tests: `Scripts/setup.sh` installs `python3-nacl`. Only on a machine without python3 or PyNaCl are
/// they skipped, with that reason.
@Suite(.enabled(if: PythonVerifier.python != nil, "needs python3 with PyNaCl: run Scripts/setup.sh (CI does)"))
struct PythonVerifierTests {
    @Test func itsPrimitivesAgreeWithTheProtocolVectors() throws {
        let r = try PythonVerifier.run(script: "Scripts/verify-bundle-vectors.py", [])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("all vectors agree"), "\(r.stdout)")
        for group in ["jcs", "change", "envelope", "membership", "seal", "attachment", "strip"] {
            #expect(r.stdout.contains("\(group): "), "\(group) vectors were not checked: \(r.stdout)")
        }
    }

    @Test func aTeamsBundleVerifiesWithThePythonVerifier() throws {
        let team = try TeamBundle()
        let r = try PythonVerifier.verify([team.folder.path, "--expect-vault", team.fingerprint])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("VERIFIED: intact"), "\(r.stdout)")
        let devices = r.stdout.split(separator: "\n").filter { $0.hasPrefix("  ") && $0.count > 66 }
        #expect(
            devices.contains {
                $0.contains("\"Laila's laptop\" (named by the exporter): coordinator (admission proven")
                    && $0.contains("exported this bundle")
            }, "\(r.stdout)")
        #expect(devices.contains { $0.contains("\"لپ‌تاپ فریده\" (named by the exporter): member (admission") })
        #expect(devices.contains { $0.contains("\"reader desk\" (named by the exporter): reader (admission") })
        // Every record, by id, verified: the testimony with three amendments (one of them in conflict with
        // another), the other member's testimony, the restricted one, the statement.
        func line(_ id: String) -> String {
            r.stdout.split(separator: "\n").first { $0.contains(id) }.map(String.init) ?? ""
        }
        #expect(line(team.testimony).contains("consent at export: share: verified, 4 changes disclosed"), "\(r.stdout)")
        #expect(line(team.testimony).contains("(original, sealed; 3 amendments)"))
        #expect(line(team.faridasTestimony).contains("consent at export: anonymised: verified, 1 change disclosed"))
        #expect(line(team.restricted).contains("consent at export: restricted: verified"))
        #expect(line(team.statement).contains("statement: verified, 2 changes disclosed"))
        #expect(!r.stdout.contains(team.deleted), "export leaves deleted records out")
        #expect(!r.stdout.contains("not disclosed") && !r.stdout.contains("PROBLEM"))
        // The documents it re-rendered byte for byte hold what the team recorded.
        let testimony = try String(
            contentsOf: team.folder.appendingPathComponent("records/\(team.testimony).json"), encoding: .utf8)
        #expect(testimony.contains("\"conflicts\":{\"location\":[\""), "a conflict: \(testimony)")
        #expect(testimony.contains("شاهد گفت که در کابل بازداشت شد."))

        // The .age file itself, decrypted by the age tool inside the verifier.
        let age = try PythonVerifier.verify([team.bundle, "--identity", team.key])
        #expect(age.status == 0 && age.stdout.contains("VERIFIED"), "\(age.stdout)\(age.stderr)")
        let stranger = team.scratch.path("stranger.txt").path
        #expect(try shell("age-keygen -o '\(stranger)'").0 == 0)
        #expect(try PythonVerifier.verify([team.bundle, "--identity", stranger]).status == 77)
        // Another vault expected: intact, not proven (3); a malformed fingerprint is a usage error (64).
        let other = try PythonVerifier.verify([team.folder.path, "--expect-vault", String(repeating: "ab", count: 16)])
        #expect(other.status == 3 && other.stdout.contains("is not the expected vault"), "\(other.stdout)")
        #expect(try PythonVerifier.verify([team.folder.path, "--expect-vault", "xyz"]).status == 64)
        #expect(try PythonVerifier.verify([team.scratch.path("missing").path]).status == 66)
        // A format-1 manifest is not checked by it (69), and never reported as verified.
        let formatOne = team.scratch.path("format1")
        try FileManager.default.createDirectory(at: formatOne, withIntermediateDirectories: true)
        try Data("{\n  \"format\" : \"amanat-bundle/1\"\n}".utf8).write(
            to: formatOne.appendingPathComponent("manifest.json"))
        let old = try PythonVerifier.verify([formatOne.path])
        #expect(old.status == 69 && old.stdout.contains("NOT CHECKED") && !old.stdout.contains("VERIFIED"))

        // Every record of Laila's vault, the deleted statement included, archived by the exporter's code.
        let vault = try Vault.open(at: team.laila.vault, passphrase: SecureBytes(Array(team.laila.passphrase.utf8)))
        let everything = team.scratch.path("everything")
        try writeFolder(
            try BundleExporter.archive(from: vault, records: try vault.allStates(), now: Date()), to: everything)
        let all = try PythonVerifier.verify([everything.path])
        #expect(all.status == 0, "\(all.stdout)")
        #expect(
            all.stdout.contains("\(team.deleted) statement: verified, 2 changes disclosed, deleted"), "\(all.stdout)")
        #expect(all.stdout.contains(team.testimony) && all.stdout.contains(team.statement))
    }

    /// Every file of the bundle, at its first and last byte and at a seeded sample of positions, XORed with a random
    /// non-zero byte: the verifier must say NOT INTACT (exit 65) every time.
    @Test func everySingleByteChangeIsCaught() throws {
        let team = try TeamBundle()
        let seed =
            ProcessInfo.processInfo.environment["AMANAT_TEST_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 1...UInt64.max)
        print("PythonVerifierTests.everySingleByteChangeIsCaught seed \(seed) (AMANAT_TEST_SEED=\(seed) replays it)")
        var rng = SeededGenerator(seed: seed)
        let files = try bundleFiles(in: team.folder)
        #expect(
            Set(files.map { $0.split(separator: "/").first ?? "" }).isSuperset(of: ["records", "custody", "chains"]))
        #expect(files.contains("membership.json") && files.contains("manifest.json") && files.contains("manifest.sig"))
        var tried = 0
        for file in files {
            let url = team.folder.appendingPathComponent(file)
            let original = try Data(contentsOf: url)
            var positions: Set<Int> = [0, original.count - 1]
            for _ in 0..<4 { positions.insert(Int.random(in: 0..<original.count, using: &rng)) }
            for position in positions.sorted() {
                var changed = original
                changed[position] ^= UInt8.random(in: 1...255, using: &rng)
                try changed.write(to: url)
                let r = try PythonVerifier.verify([team.folder.path])
                #expect(
                    r.status == 65 && r.stdout.contains("NOT INTACT"),
                    "seed \(seed): a change of \(file) at byte \(position) was not caught: \(r.status) \(r.stdout)")
                tried += 1
            }
            try original.write(to: url)
        }
        #expect(tried >= 3 * files.count)
        #expect(try PythonVerifier.verify([team.folder.path]).status == 0, "the restored bundle verifies again")
    }

    /// A redactor withholds a later amendment and signs the bundle again (as `BundleCommandTests` does): intact and
    /// proven, but the record is reported with its undisclosed change, and the withheld value appears nowhere.
    @Test func anUndisclosedAmendmentIsReported() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize(name: "Laila's laptop")
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-1", "--location", "Kabul", "--consent", "share", "--allow-empty",
        ])
        _ = try cli.ok(["edit", String(id.prefix(8)), "--set", "location=Herat"])
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        let state = try #require(try vault.allStates().first { $0.id.hex == id })
        let archive = try BundleExporter.archive(from: vault, records: [state], now: Date())
        let amendment = try #require(state.changes.last)
        let redacted = try resignBundle(
            archive, signer: vault.keyring.device,
            replacing: try redactedRecord(archive, record: state.id) { $0 == amendment.author && $1 == amendment.seq })
        let complete = scratch.path("complete")
        let folder = scratch.path("redacted")
        try writeFolder(archive, to: complete)
        try writeFolder(redacted, to: folder)
        let whole = try PythonVerifier.verify([complete.path])
        #expect(whole.status == 0 && whole.stdout.contains("2 changes disclosed (original, sealed; 1 amendment)"))
        #expect(!whole.stdout.contains("not disclosed"), "\(whole.stdout)")
        let r = try PythonVerifier.verify([folder.path])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(
            r.stdout.contains("\(id) testimony, consent at export: share: verified, 1 change disclosed")
                && r.stdout.contains("; 1 change not disclosed"), "\(r.stdout)")
        #expect(!r.stdout.contains("Herat"))
    }

    /// The issue's fabricated bundle: an outsider's own `found` entry and an invented testimony under the team's
    /// public vault id, with the team's real membership entries and chains. Naming itself as exporter, it is intact but
    /// its signer is not proven (3); naming a real team device, the manifest signature fails (65); without the
    /// team's entries, the vault is not founded (3).
    @Test func theFabricatedBundleIsRefusedOrReportedUnproven() throws {
        let dir = try TemporaryDirectory(prefix: "py-fabricated")
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(
            kind: "testimony", fields: [("witness", "W-1"), ("consent", "share")], tags: [], seal: true)
        let outsider = try Vault.create(
            at: dir.path("outsider"), passphrase: passphrase, deviceName: "outsider", strength: .interactive)
        let cases: [(Vault?, DeviceID?, Int32, String)] = [
            (team[0], nil, 3, "not proven to be a member"),
            (team[0], team[0].deviceID, 65, "manifest.sig does not verify"),
            (nil, nil, 3, "the vault is not founded"),
        ]
        for (index, (withTeam, claimed, status, words)) in cases.enumerated() {
            let forged = try fabricate(
                vaultID: team[0].vaultID, outsider: outsider, team: withTeam, claimedExporter: claimed)
            let folder = dir.path("forged-\(index)")
            try writeFolder(forged, to: folder)
            let r = try PythonVerifier.verify([folder.path])
            #expect(r.status == status, "case \(index): \(r.stdout)\(r.stderr)")
            #expect(r.stdout.contains(words), "case \(index): \(r.stdout)")
            #expect(!r.stdout.contains("VERIFIED"), "case \(index): \(r.stdout)")
            if status == 3 {
                #expect(r.stdout.contains("testimony, consent at export: share: intact but NOT PROVEN"), "\(r.stdout)")
                #expect(
                    r.stdout.contains(
                        "\(outsider.deviceID.hex) \"Laila\" (named by the exporter): not proven to be a member"),
                    "case \(index): \(r.stdout)")
            }
        }
    }
}

/// Random edits by a team of three (sets, resolves of conflicts, tags added and removed concurrently, deletes racing
/// edits; values with quotes, backslashes, control characters, emoji and Dari), synced in random partial ways; then
/// every record each replica holds, deleted ones included, is archived by the exporter's code, and the Python
/// verifier must re-render every document byte for byte.
@Suite(.enabled(if: PythonVerifier.python != nil, "needs python3 with PyNaCl: run Scripts/setup.sh (CI does)"))
struct PythonVerifierRandomizedTests {
    static let seeds: [UInt64] = [
        13, 23,  // their documents hold conflicts and resolves as well as changes, untaggings and deletes
        ProcessInfo.processInfo.environment["AMANAT_TEST_SEED"].flatMap(UInt64.init)
            ?? UInt64.random(in: 100...UInt64.max),
    ]
    static let values = [
        "Kabul", "کابل", "مزار شریف", "quote \" and backslash \\", "line\nbreak\ttab",
        "nul \u{0} and \u{1f} and \u{7f}",
        "😀 emoji", "\u{2028}separator", "",
    ]

    @Test(arguments: seeds)
    func randomTeamEditsReRenderByteForByte(seed: UInt64) async throws {
        print("PythonVerifierRandomizedTests seed \(seed) (AMANAT_TEST_SEED=\(seed) replays the random one)")
        let dir = try TemporaryDirectory(prefix: "py-random")
        let team = try makeTeam(3, in: dir)
        var rng = SeededGenerator(seed: seed)
        let sticks = (0..<2).map { dir.path("stick\($0).sync") }
        var created: [RecordID] = []
        // Each replica syncs once, so that each holds the founder's entries and can prove its signers.
        for vault in team { try await fileSync(vault, sticks[0]) }
        for _ in 0..<40 {
            let vault = team[Int.random(in: 0..<3, using: &rng)]
            let states = Dictionary(uniqueKeysWithValues: try vault.allStates().map { ($0.id, $0) })
            let visible = created.compactMap { states[$0] }.filter(\.isVisible)
            let value = Self.values.randomElement(using: &rng)!
            switch Int.random(in: 0..<11, using: &rng) {
            case 0, 1:
                let kind = Bool.random(using: &rng) ? "testimony" : "statement"
                created.append(
                    try vault.createRecord(
                        kind: kind, fields: [("witness", "W-\(rng.next() % 100)"), ("location", value)],
                        tags: ["t\(rng.next() % 3)", "بازداشت"], seal: kind == "testimony"))
            case 2, 3, 4:
                // A set over every visible value: with a conflict visible, this is a resolve.
                guard let state = visible.randomElement(using: &rng) else { continue }
                let field = ["location", "narrative", "یادداشت"].randomElement(using: &rng)!
                try vault.commit(record: state.id) { s in [s!.setOperation(field: field, value: value)] }
            case 5:
                guard let state = visible.randomElement(using: &rng) else { continue }
                try vault.commit(record: state.id) { s in
                    [s!.addTagOperation(["t1", "بازداشت", value].randomElement(using: &rng)!)]
                }
            case 6:
                guard let state = visible.randomElement(using: &rng), let tag = state.tags.randomElement(using: &rng)
                else { continue }
                try vault.commit(record: state.id) { s in [s!.removeTagOperation(tag)].compactMap { $0 } }
            case 7:
                guard let state = visible.randomElement(using: &rng) else { continue }
                try vault.commit(record: state.id) { s in [s!.deleteOperation()] }
            case 8:
                // Two replicas set one field of the same record without seeing each other (a conflict that a
                // later set resolves), then one of them syncs.
                guard let state = visible.randomElement(using: &rng) else { continue }
                let other = team.first { $0 !== vault && (try? $0.allStates().contains { $0.id == state.id }) == true }
                guard let other else { continue }
                try vault.commit(record: state.id) { s in [s!.setOperation(field: "location", value: value)] }
                try other.commit(record: state.id) { s in [s!.setOperation(field: "location", value: "elsewhere")] }
                try await fileSync(vault, sticks[1])
                try await fileSync(other, sticks[1])
            default:
                try await fileSync(vault, sticks[Int.random(in: 0..<2, using: &rng)])
            }
        }
        var wordings: Set<String> = []
        for (index, vault) in team.enumerated() {
            let states = try vault.allStates()
            guard !states.isEmpty else { continue }
            let folder = dir.path("bundle-\(index)")
            try writeFolder(try BundleExporter.archive(from: vault, records: states, now: Date()), to: folder)
            let r = try PythonVerifier.verify([folder.path])
            #expect(r.status == 0, "seed \(seed), replica \(index): \(r.stdout)")
            let lines = r.stdout.split(separator: "\n").filter { $0.contains(": verified, ") }
            #expect(lines.count == states.count, "seed \(seed), replica \(index): \(r.stdout)")
            for path in try bundleFiles(in: folder) where path.hasPrefix("records/") {
                let text = try String(contentsOf: folder.appendingPathComponent(path), encoding: .utf8)
                for word in ["\"changed ", "\"resolved ", "\"untagged ", "\"deleted\"", "\"conflicts\":{\""]
                where text.contains(word) {
                    wordings.insert(word)
                }
            }
        }
        print("seed \(seed): documents held \(wordings.sorted())")
    }
}

/// change.md §5: field names and tags are identified up to canonical equivalence and written in NFC, sorted by the
/// UTF-8 bytes of that form, so "é" (U+00E9) and "e" + U+0301 are one tag and one field name, whichever arrived
/// first. The Swift exporter and the Python verifier must agree on the bytes.
@Suite(.enabled(if: PythonVerifier.python != nil, "needs python3 with PyNaCl: run Scripts/setup.sh (CI does)"))
struct PythonVerifierNormalisationTests {
    @Test func canonicallyEquivalentTagsAndFieldsAreOneInNFC() throws {
        let dir = try TemporaryDirectory(prefix: "py-normalisation")
        let vault = try makeTeam(1, in: dir)[0]
        let id = try vault.createRecord(
            kind: "statement", fields: [("title", "cafe\u{301}"), ("note", "one")], tags: ["t2", "e\u{301}"],
            seal: false)
        try vault.commit(record: id) { s in [s!.addTagOperation("\u{e9}")] }
        try vault.commit(record: id) { s in
            [.set(field: "not\u{e9}", value: "two", pred: []), .set(field: "note\u{301}", value: "three", pred: [])]
        }
        let folder = dir.path("bundle")
        try writeFolder(
            try BundleExporter.archive(from: vault, records: try vault.allStates(), now: Date()), to: folder)
        let document = try String(contentsOf: folder.appendingPathComponent("records/\(id.hex).json"), encoding: .utf8)
        let r = try PythonVerifier.verify([folder.path])
        #expect(r.status == 0, "\(r.stdout)\n\(document)")
        // String comparison in Swift is canonical equivalence too: the bytes are compared as bytes.
        func holds(_ text: String) -> Bool { Data(document.utf8).range(of: Data(text.utf8)) != nil }
        #expect(holds("\"tags\":[\"t2\",\"\u{e9}\"]"), "\(document)")
        // Both spellings of "noté" are one field in NFC, with a conflict; the value keeps its decomposed bytes.
        #expect(holds("\"not\u{e9}\":"), "\(document)")
        #expect(!holds("\"note\u{301}\":"), "\(document)")
        #expect(holds("\"title\":\"cafe\u{301}\""), "\(document)")
    }
}

/// Runs the Python verifier with a deadline.
enum PythonVerifier {
    /// The first `python3` (on PATH, then Debian's /usr/bin/python3) that imports PyNaCl, or nil.
    static let python: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { "\($0)/python3" } + ["/usr/bin/python3"]
        return candidates.first {
            FileManager.default.isExecutableFile(atPath: $0)
                && (try? runProcess($0, ["-c", "import nacl.bindings"], timeout: 60).status) == 0
        }
    }()

    /// `python3 Scripts/verify-bundle.py arguments…`.
    static func verify(_ arguments: [String]) throws -> CLIRunner.Result {
        try run(script: "Scripts/verify-bundle.py", arguments)
    }

    static func run(script: String, _ arguments: [String]) throws -> CLIRunner.Result {
        let python = try #require(python)
        return try runProcess(python, [repositoryRoot.appendingPathComponent(script).path] + arguments, timeout: 300)
    }

    /// Runs a process with output to files (no pipe can fill up) and kills it after `timeout` seconds.
    static func runProcess(_ executable: String, _ arguments: [String], timeout: TimeInterval) throws
        -> CLIRunner.Result
    {
        let dir = try TemporaryDirectory(prefix: "python-run")
        let out = dir.path("stdout")
        let err = dir.path("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + 10)
            throw CLIFailure(description: "\(executable) \(arguments.joined(separator: " ")) ran over \(timeout) s")
        }
        return CLIRunner.Result(
            status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
            stderr: try String(contentsOf: err, encoding: .utf8))
    }
}

/// A team's bundle written by the Swift code, through the command line as people use it: Laila founds the vault and
/// invites a member with a Dari device name and a reader; they sync by a file. The bundle holds a statement with an
/// untagging, a deleted statement, Laila's sealed Dari testimony amended by both (concurrently, a conflict) and by the
/// member, the member's own testimony, and a restricted testimony (exported with --include-restricted).
struct TeamBundle {
    let scratch: Scratch
    let laila: CLIRunner
    let bundle: String
    let key: String
    let folder: URL
    let fingerprint: String
    let statement: String
    let deleted: String
    let testimony: String
    let faridasTestimony: String
    let restricted: String

    init() throws {
        scratch = try Scratch()
        laila = scratch.runner("laila")
        let farida = scratch.runner("farida")
        let reader = scratch.runner("reader")
        try laila.initialize(name: "Laila's laptop")
        for (runner, name, role) in [(farida, "لپ‌تاپ فریده", "member"), (reader, "reader desk", "reader")] {
            let invitation = scratch.path("invite-\(role).amanat").path
            let code = try laila.ok(["invite", "--out", invitation, "--role", role])
            _ = try runner.ok(["join", invitation, "--code", code, "--device-name", name, "--kdf", "interactive"])
        }
        let usb = scratch.path("usb.amanat").path
        func sync(_ runners: CLIRunner...) throws { for r in runners { _ = try r.ok(["sync", "--create", usb]) } }
        try sync(laila, farida, reader, laila)
        statement = try laila.ok([
            "add", "statement", "--title", "Coalition statement", "--body-file", samplePath, "--tag", "women",
        ])
        _ = try laila.ok(["tag", statement, "--remove", "women"])
        deleted = try laila.ok(["add", "statement", "--title", "Draft"])
        _ = try laila.ok(["delete", deleted])
        testimony = try laila.ok([
            "add", "testimony", "--witness", "W-017", "--narrative", "شاهد گفت که در کابل بازداشت شد.", "--location",
            "کابل", "--consent", "share", "--tag", "detention", "--tag", "بازداشت",
        ])
        restricted = try laila.ok(["add", "testimony", "--witness", "W-020", "--narrative", "Not for now."])
        try sync(laila, farida)
        _ = try laila.ok(["edit", testimony, "--set", "location=Herat"])
        _ = try farida.ok(["edit", testimony, "--set", "location=مزار شریف"])
        _ = try farida.ok(["edit", testimony, "--set", "incident_date=2024-03-05"])
        faridasTestimony = try farida.ok([
            "add", "testimony", "--witness", "W-018", "--narrative", "Taken at night.", "--consent", "anonymised",
        ])
        try sync(farida, laila)
        key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        bundle = scratch.path("evidence.age").path
        _ = try laila.ok(["export", "--out", bundle, "--recipient", recipient, "--include-restricted"])
        folder = scratch.path("opened")
        _ = try laila.run(["bundle", "open", bundle, "--identity", key, "--out", folder.path], withVault: false)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("manifest.json").path))
        fingerprint = try #require(
            try laila.ok(["status"]).split(separator: "\n").first { $0.hasPrefix("vault: ") }?.split(separator: " ")
                .last
                .map(String.init))
    }
}

/// Writes an archive's files into a folder, as `bundle open` or `tar x` would.
func writeFolder(_ archive: TarArchive, to folder: URL) throws {
    for entry in archive.entries {
        let url = folder.appendingPathComponent(entry.path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(entry.contents).write(to: url)
    }
}

/// The relative paths of every file in an opened bundle, sorted.
func bundleFiles(in folder: URL) throws -> [String] {
    let enumerator = try #require(
        FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]))
    var paths: [String] = []
    for case let url as URL in enumerator
    where try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
        paths.append(String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1)))
    }
    return paths.sorted()
}
