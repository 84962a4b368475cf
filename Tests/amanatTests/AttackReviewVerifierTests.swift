import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// Bundles crafted so that `amanat bundle verify` and `Scripts/verify-bundle.py` would disagree: each must get the
/// same verdict from both (any disagreement means one of them accepts what the protocol refuses).
@Suite(.enabled(if: PythonVerifier.python != nil, "needs python3 with PyNaCl: run Scripts/setup.sh (CI does)"))
struct AttackReviewVerifierTests {
    struct Setting {
        let dir: TemporaryDirectory
        let vault: Vault
        let archive: TarArchive
        let key: String
        let recipient: String

        init() throws {
            dir = try TemporaryDirectory(prefix: "attack-verifiers")
            vault = try makeTeam(1, in: dir)[0]
            let id = try vault.createRecord(
                kind: "testimony", fields: [("witness", "W-3"), ("consent", "share")], tags: [], seal: true)
            archive = try BundleExporter.archive(from: vault, records: [try vault.resolveRecord(id.hex)], now: Date())
            key = dir.path("lawyer.txt").path
            #expect(try shell("age-keygen -o '\(key)'").0 == 0)
            recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// `plaintext` (a ustar archive, as crafted) encrypted to the recipient, as an attacker who knows only the
        /// recipient's public key writes it.
        func bundle(_ name: String, plaintext: [UInt8]) throws -> String {
            let url = dir.path(name)
            try Data(try AgeEncryptor.encrypt(plaintext, to: [try AgeX25519Recipient(parsing: recipient)]))
                .write(to: url)
            return url.path
        }

        /// The exit status of `amanat bundle verify` and of the Python verifier on the bundle file.
        func verdicts(_ path: String) throws -> (swift: Int32, python: Int32, output: String) {
            let swift = try CLIRunner(vault: dir.path("unused")).run(
                ["bundle", "verify", path, "--identity", key], withVault: false)
            let python = try PythonVerifier.verify([path, "--identity", key])
            return (swift.status, python.status, "swift: \(swift.stdout)\(swift.stderr)\npython: \(python.stdout)")
        }
    }

    /// Rewrites the header of the archive's first file and fixes its checksum, as a hand-made tar would be.
    static func withFirstHeader(_ tar: [UInt8], _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var bytes = tar
        var header = Array(bytes[0..<512])
        edit(&header)
        for i in 148..<156 { header[i] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        for i in 148..<156 { header[i] = 0 }
        for (i, d) in (Array(repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits).enumerated() {
            header[148 + i] = d
        }
        header[155] = UInt8(ascii: " ")
        bytes.replaceSubrange(0..<512, with: header)
        return bytes
    }

    /// Tar headers in forms one reader took and the other refused: an old-style NUL type and a GNU magic (Swift took
    /// them, Python refused), a size written `0o…` (Python's int() took it, Swift refused), bytes after the end of
    /// a name or of the checksum (Swift stopped at the NUL and ignored them, Python refused).
    @Test func craftedTarHeadersGetTheSameVerdictFromBothVerifiers() throws {
        let s = try Setting()
        let tar = BundleExporter.padded(s.archive.encoded())
        let intact = try s.verdicts(try s.bundle("intact.age", plaintext: tar))
        #expect(intact.swift == 0 && intact.python == 0, "\(intact.output)")
        func put(_ text: String, at offset: Int, _ header: inout [UInt8]) {
            for (i, b) in text.utf8.enumerated() { header[offset + i] = b }
        }
        let readmeSize = String(String(Array(s.archive.file("README.txt") ?? []).count, radix: 8))
        let cases: [(String, [UInt8])] = [
            ("nul-type", Self.withFirstHeader(tar) { $0[156] = 0 }),
            ("gnu-magic", Self.withFirstHeader(tar) { put("ustar  \u{0}", at: 257, &$0) }),
            (
                "python-int-size",
                Self.withFirstHeader(tar) {
                    let field = "0o" + String(repeating: "0", count: 9 - readmeSize.count) + readmeSize
                    put(field, at: 124, &$0)
                    $0[135] = 0
                }
            ),
            ("name-tail", Self.withFirstHeader(tar) { put("README.txt\u{0}junk", at: 0, &$0) }),
        ]
        for (name, bytes) in cases {
            let v = try s.verdicts(try s.bundle("\(name).age", plaintext: bytes))
            #expect(v.swift == v.python, "\(name): the verifiers disagree: \(v.output)")
            #expect(v.swift == 65, "\(name): \(v.output)")
        }
        // A checksum field with bytes after its terminator: written by hand (its value is still right).
        var tail = tar
        tail[154] = 0
        tail[155] = UInt8(ascii: "X")
        // The stored sum covers the field as spaces, so the digits stay valid; only the trailing byte differs.
        let v = try s.verdicts(try s.bundle("checksum-tail.age", plaintext: tail))
        #expect(v.swift == v.python, "checksum-tail: the verifiers disagree: \(v.output)")
        #expect(v.swift == 65, "checksum-tail: \(v.output)")
    }

    /// A tiny crafted bundle whose README header declares 64 GiB − 1 bytes: both verifiers refuse it at the header
    /// with exit 74 (the Python one asked for the whole size in one read and died with a traceback). An archive that
    /// ends after the first of its two zero blocks is refused by both (Swift took it, Python refused it).
    @Test func aHugeDeclaredDocumentAndAHalfEndMarkerGetTheSameVerdictFromBothVerifiers() throws {
        let s = try Setting()
        let plain = s.archive.encoded()
        let huge = Self.withFirstHeader(plain) { header in
            for (i, b) in "777777777777".utf8.enumerated() { header[124 + i] = b }
        }
        let v = try s.verdicts(try s.bundle("huge.age", plaintext: Array(huge.prefix(4096))))
        #expect(v.swift == 74 && v.python == 74, "\(v.output)")
        #expect(!v.output.contains("Traceback"), "\(v.output)")
        // The archive with its second zero block cut off, and no padding after it.
        #expect(plain.suffix(1024).allSatisfy { $0 == 0 })
        let half = try s.verdicts(try s.bundle("half-marker.age", plaintext: Array(plain.dropLast(512))))
        #expect(half.swift == half.python, "the verifiers disagree: \(half.output)")
        #expect(half.swift == 65, "\(half.output)")
    }

    /// A signed manifest lists `notes/é.txt` (U+00E9) while the archive holds `notes/é.txt` spelled e + U+0301:
    /// two different paths as bytes, on disk and to Python, but one path to Swift's `==` on strings, so the Swift
    /// verifier found the "listed" file, and the Python verifier found it missing.
    @Test func aPathThatIsOnlyCanonicallyEquivalentToTheListedOneIsNotTheListedFile() throws {
        let s = try Setting()
        let decomposed = "notes/e\u{301}.txt"
        let composed = "notes/\u{e9}.txt"
        let forged = try resignBundle(
            s.archive, signer: s.vault.keyring.device, replacing: [decomposed: Array("a note".utf8)]
        ) { manifest in
            let files = (manifest["files"]?.arrayValue ?? []).map { item -> JSONValue in
                item["path"]?.stringValue.map { Array($0.utf8) == Array(decomposed.utf8) } == true
                    ? item.setting("path", to: .string(composed)) : item
            }
            return manifest.setting("files", to: .array(files))
        }
        #expect(forged.entries.contains { Array($0.path.utf8) == Array(decomposed.utf8) })
        let path = s.dir.path("equivalent.age").path
        try writeAgeBundle(forged, to: URL(fileURLWithPath: path), recipient: s.recipient)
        let v = try s.verdicts(path)
        #expect(v.swift == v.python, "the verifiers disagree: \(v.output)")
        #expect(v.swift == 65, "\(v.output)")
    }

    /// The exporter signs "consent at export: share" over a testimony whose every change is disclosed and whose
    /// signed consent is "restricted": both verifiers printed "consent at export: share: verified", a checkable lie.
    @Test func aManifestConsentThatTheDisclosedChangesContradictIsCaught() throws {
        let s = try Setting()
        let id = try s.vault.createRecord(
            kind: "testimony", fields: [("witness", "W-9"), ("consent", "restricted")], tags: [], seal: true)
        let archive = try BundleExporter.archive(
            from: s.vault, records: [try s.vault.resolveRecord(id.hex)], now: Date())
        let honest = s.dir.path("honest.age").path
        try writeAgeBundle(archive, to: URL(fileURLWithPath: honest), recipient: s.recipient)
        let fine = try s.verdicts(honest)
        #expect(fine.swift == 0 && fine.python == 0, "\(fine.output)")

        let lying = try resignBundle(archive, signer: s.vault.keyring.device) { manifest in
            let records = (manifest["records"]?.arrayValue ?? []).map { $0.setting("consent", to: .string("share")) }
            return manifest.setting("records", to: .array(records))
        }
        let path = s.dir.path("lying.age").path
        try writeAgeBundle(lying, to: URL(fileURLWithPath: path), recipient: s.recipient)
        let v = try s.verdicts(path)
        #expect(v.swift == 65 && v.python == 65, "\(v.output)")
        #expect(v.output.contains("consent"), "\(v.output)")
    }

    /// A device name in the manifest (the exporter's statement) with invisible characters: a zero-width space and
    /// Unicode tag characters make "Laila's laptop" look like another device's name. Amanat escapes them; the
    /// Python verifier printed them raw.
    @Test func invisibleCharactersInANameAreShownEscapedByThePythonVerifier() throws {
        let s = try Setting()
        let disguised = "Laila\u{200B}'s laptop\u{E0041}\u{FEFF}"
        let renamed = try resignBundle(s.archive, signer: s.vault.keyring.device) { manifest in
            let devices = (manifest["devices"]?.arrayValue ?? []).map { $0.setting("name", to: .string(disguised)) }
            return manifest.setting("devices", to: .array(devices))
        }
        let path = s.dir.path("renamed.age").path
        try writeAgeBundle(renamed, to: URL(fileURLWithPath: path), recipient: s.recipient)
        let python = try PythonVerifier.verify([path, "--identity", s.key])
        #expect(python.status == 0, "\(python.stdout)")
        for invisible in ["\u{200B}", "\u{E0041}", "\u{FEFF}"] {
            #expect(!python.stdout.unicodeScalars.contains(invisible.unicodeScalars.first!), "\(python.stdout)")
        }
        #expect(python.stdout.contains("Laila\\u200b's laptop"), "\(python.stdout)")
    }
}
