import Foundation
import Testing

@testable import AmanatCrypto

/// Interoperability with the reference `age` tool (Debian's age 1.1.1, `/usr/bin/age` and `/usr/bin/age-keygen`).
///
/// These tests fail, loudly, when the tool is missing: CI installs it. Passphrase prompts are answered through a
/// pseudo-terminal driven by a small python3 script, because age reads passphrases only from a terminal.
@Suite("age interoperability")
struct AgeInteropTests {
    static let age = "/usr/bin/age"
    static let ageKeygen = "/usr/bin/age-keygen"
    static let python = "/usr/bin/env"
    /// Empty, one byte, one chunk exactly, one byte more; and written in one call, several full chunks (sealed on the
    /// cores together, ``AgeEncryptor/parallelChunks`` at a time): 3 exactly (the last full chunk marked last), one
    /// more than a batch, and 2.5 batches ending on a chunk's edge.
    static let sizes = [0, 1, 65536, 65537, 200_000, 3 * 65536, 16 * 65536 + 1, 40 * 65536]
    static let passphrase = "correct horse battery staple"

    /// Answers every passphrase prompt of the command it runs, through a pseudo-terminal.
    static let ptyDriver = """
        import os, pty, signal, sys
        secret = sys.argv[1].encode()
        argv = sys.argv[2:]
        signal.alarm(120)
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(argv[0], argv)
        seen, answered = b"", 0
        while True:
            try:
                data = os.read(fd, 1024)
            except OSError:
                break
            if not data:
                break
            seen += data
            while seen.lower().count(b"passphrase") > answered:
                os.write(fd, secret + b"\\n")
                answered += 1
        _, status = os.waitpid(pid, 0)
        sys.stderr.write(seen.decode(errors="replace"))
        sys.exit(os.waitstatus_to_exitcode(status))
        """

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// A scratch directory for one test, removed when the test ends.
    final class Scratch {
        let url: URL

        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-age-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: url) }

        func path(_ name: String) -> String { url.appendingPathComponent(name).path }

        func write(_ name: String, _ bytes: [UInt8]) throws {
            try Data(bytes).write(to: url.appendingPathComponent(name))
        }

        func read(_ name: String) throws -> [UInt8] {
            [UInt8](try Data(contentsOf: url.appendingPathComponent(name)))
        }

        /// Reads an output file of age, which does not create `-o` files for empty plaintext.
        func readOutput(_ name: String) throws -> [UInt8] {
            FileManager.default.fileExists(atPath: path(name)) ? try read(name) : []
        }
    }

    static func requireTools() throws {
        for tool in [age, ageKeygen] {
            try #require(
                FileManager.default.isExecutableFile(atPath: tool),
                "\(tool) is missing: install the Debian 'age' package to run the age interoperability tests.")
        }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Runs an age command whose passphrase prompts get `secret`.
    static func runWithPassphrase(_ secret: String, _ arguments: [String], in scratch: Scratch) throws -> Result {
        let script = scratch.path("drive.py")
        try scratch.write("drive.py", Array(ptyDriver.utf8))
        return try run(python, ["python3", script, secret] + arguments)
    }

    /// Generates a key file with age-keygen and returns its identity as parsed by us.
    static func keygen(_ scratch: Scratch, name: String = "key.txt") throws -> AgeX25519Identity {
        let result = try run(ageKeygen, ["-o", scratch.path(name)])
        try #require(result.status == 0, "age-keygen failed: \(result.stderr)")
        let text = String(decoding: try scratch.read(name), as: UTF8.self)
        let identity = try AgeX25519Identity(parsing: text)
        let publicKey = try run(ageKeygen, ["-y", scratch.path(name)])
        #expect(publicKey.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == identity.recipient.stringValue)
        #expect(text.contains("# public key: \(identity.recipient.stringValue)"))
        return identity
    }

    @Test("age decrypts what we encrypt", arguments: sizes, [false, true])
    func ageDecryptsOurs(size: Int, armor: Bool) throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let identity = try Self.keygen(scratch)
        let plaintext = AgeTestSupport.plaintext(size, seed: 3)
        let others = [AgeX25519Identity.generate().recipient, AgeX25519Identity.generate().recipient]
        let recipients = [others[0], identity.recipient, others[1]]
        try scratch.write("file.age", try AgeEncryptor.encrypt(plaintext, to: recipients, armor: armor))
        let result = try Self.run(
            Self.age, ["-d", "-i", scratch.path("key.txt"), "-o", scratch.path("out"), scratch.path("file.age")])
        #expect(result.status == 0, "age -d failed: \(result.stderr)")
        let roundTripped = try scratch.readOutput("out") == plaintext
        #expect(roundTripped)
    }

    @Test("we decrypt what age encrypts", arguments: sizes, [false, true])
    func weDecryptAge(size: Int, armor: Bool) throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let identity = try Self.keygen(scratch)
        let other = try Self.keygen(scratch, name: "other.txt")
        let plaintext = AgeTestSupport.plaintext(size, seed: 5)
        try scratch.write("in", plaintext)
        let result = try Self.run(
            Self.age,
            ["-r", other.recipient.stringValue, "-r", identity.recipient.stringValue] + (armor ? ["-a"] : [])
                + ["-o", scratch.path("file.age"), scratch.path("in")])
        try #require(result.status == 0, "age -r failed: \(result.stderr)")
        let file = try scratch.read("file.age")
        let magic = armor ? "-----BEGIN AGE ENCRYPTED FILE-----" : "age-encryption.org/v1"
        #expect(file.starts(with: Array(magic.utf8)))
        let keyFile = String(decoding: try scratch.read("key.txt"), as: UTF8.self)
        let outcome = AgeTestSupport.decrypt(file, identities: [try AgeX25519Identity(parsing: keyFile)])
        #expect(outcome.code == nil)
        let roundTripped = outcome.released == plaintext
        #expect(roundTripped)
        #expect(AgeTestSupport.decrypt(file, identities: [AgeX25519Identity.generate()]).code == .noMatch)
    }

    @Test("we decrypt age's passphrase files", arguments: [false, true])
    func weDecryptAgePassphrase(armor: Bool) throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let plaintext = AgeTestSupport.plaintext(70000, seed: 9)
        try scratch.write("in", plaintext)
        let result = try Self.runWithPassphrase(
            Self.passphrase,
            [Self.age, "-p"] + (armor ? ["-a"] : []) + ["-o", scratch.path("file.age"), scratch.path("in")],
            in: scratch)
        try #require(result.status == 0, "age -p failed: \(result.stderr)")
        let file = try scratch.read("file.age")
        let outcome = AgeTestSupport.decrypt(file, identities: [try AgeTestSupport.scryptIdentity(Self.passphrase)])
        #expect(outcome.code == nil)
        let roundTripped = outcome.released == plaintext
        #expect(roundTripped)
        let wrong = AgeTestSupport.decrypt(file, identities: [try AgeTestSupport.scryptIdentity("not it")])
        #expect(wrong.code == .noMatch)
        // age's default work factor is 18; an identity capped below it refuses the file.
        let capped = try AgeScryptIdentity(passphrase: SecureBytes(Array(Self.passphrase.utf8)), maxWorkFactor: 17)
        #expect(AgeTestSupport.decrypt(file, identities: [capped]).code == .headerFailure)
    }

    @Test("age decrypts our passphrase files", arguments: [10, 18])
    func ageDecryptsOurPassphrase(workFactor: Int) throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let plaintext = AgeTestSupport.plaintext(1000, seed: 11)
        let recipient = try AgeScryptRecipient(
            passphrase: SecureBytes(Array(Self.passphrase.utf8)), workFactor: workFactor)
        try scratch.write("file.age", try AgeEncryptor.encrypt(plaintext, to: [recipient], armor: workFactor == 10))
        let result = try Self.runWithPassphrase(
            Self.passphrase, [Self.age, "-d", "-o", scratch.path("out"), scratch.path("file.age")], in: scratch)
        #expect(result.status == 0, "age -d failed: \(result.stderr)")
        let roundTripped = try scratch.readOutput("out") == plaintext
        #expect(roundTripped)
        let wrong = try Self.runWithPassphrase(
            "not it", [Self.age, "-d", "-o", scratch.path("wrong"), scratch.path("file.age")], in: scratch)
        #expect(wrong.status != 0)
    }

    @Test("age and we agree on the CCTV identity's recipient")
    func cctvIdentity() throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let key = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"
        try scratch.write("key.txt", Array((key + "\n").utf8))
        let result = try Self.run(Self.ageKeygen, ["-y", scratch.path("key.txt")])
        #expect(result.status == 0)
        let ours = try AgeX25519Identity(parsing: key).recipient.stringValue
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ours)
    }

    @Test("age rejects what we reject: a truncated file and a flipped payload byte")
    func ageAgreesOnDamage() throws {
        try Self.requireTools()
        let scratch = try Scratch()
        let identity = try Self.keygen(scratch)
        let file = try AgeEncryptor.encrypt(AgeTestSupport.plaintext(100_000), to: [identity.recipient])
        var flipped = file
        flipped[file.count - 100] ^= 1
        let oneChunk = Array(file[..<(AgeTestSupport.headerLength(file) + 16 + AgeStream.encryptedChunkSize)])
        for damaged in [Array(file.dropLast(1)), oneChunk, flipped] {
            try scratch.write("bad.age", damaged)
            let result = try Self.run(
                Self.age, ["-d", "-i", scratch.path("key.txt"), "-o", scratch.path("out"), scratch.path("bad.age")])
            #expect(result.status != 0)
            #expect(AgeTestSupport.decrypt(damaged, identities: [identity]).code == .payloadFailure)
        }
    }
}
