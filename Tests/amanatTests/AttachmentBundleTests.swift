import AmanatBundle
import AmanatCrypto
import AmanatStore
import Foundation
import Testing
import AmanatTestSupport

/// Evidence bundles with attached files: a recipient with only `age` and `tar` gets the original files, and both
/// verifiers tie each file to the SHA-256 its signed `attach` change states.
@Suite struct AttachmentBundleTests {
    /// The peak resident memory of `amanat ARGUMENTS` (no vault) in MiB and its exit status, read by a Python parent
    /// from the kernel's accounting of its only child (`getrusage(RUSAGE_CHILDREN)`).
    func peakMiB(_ arguments: [String], program: [String] = [CLIRunner.binary.path]) throws -> (
        status: Int, mib: Double
    ) {
        let script = """
            import resource, subprocess, sys
            r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """
        let (status, out) = try shell(
            "python3 -c '\(script)' " + (program + arguments).map { "'\($0)'" }.joined(separator: " "))
        let fields = out.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        guard status == 0, fields.count == 2, let code = Int(fields[0]), let kib = Double(fields[1]) else {
            throw CLIFailure(description: "could not measure \(arguments): \(out)")
        }
        return (code, kib / 1024)
    }

    /// A bundle holding a 192 MiB recording is verified, opened and verified again from its folder in bounded
    /// memory: the reader streams the age file and keeps an attachment as its SHA-256 and size, writing it to the
    /// folder in a second reading that must find the same bytes. Holding the bundle whole took 3 times its size.
    @Test func aLargeAttachmentIsVerifiedAndOpenedInBoundedMemory() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        let media = TestMedia.make(size: 192 * 1_048_576 + 77, seed: TestMedia.seed("largeBundle"))
        let recording = scratch.path("recording.bin")
        try TestMedia.write(media, to: recording)
        let attachment = try cli.ok(["attach", id, recording.path])
        try FileManager.default.removeItem(at: recording)
        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("evidence.age").path
        _ = try cli.ok(["export", "--out", bundle, "--recipient", recipient, "--id", id])

        let verified = try peakMiB(["bundle", "verify", bundle, "--identity", key])
        #expect(verified.status == 0)
        #expect(verified.mib < 128, "bundle verify peaked at \(verified.mib) MiB")
        // The independent Python verifier streams it too: `age -d` into its own ustar reader, which hashes the
        // recording as it passes (it held the whole decrypted bundle, and then the recording again).
        let python = try #require(PythonVerifier.python, "python3 with PyNaCl (make setup installs it)")
        let script = repositoryRoot.appendingPathComponent("Scripts/verify-bundle.py").path
        let independent = try peakMiB([bundle, "--identity", key], program: [python, script])
        #expect(independent.status == 0)
        #expect(independent.mib < 128, "the Python verifier peaked at \(independent.mib) MiB")
        let folder = scratch.path("opened")
        let opened = try peakMiB(["bundle", "open", bundle, "--identity", key, "--out", folder.path])
        #expect(opened.status == 0)
        #expect(opened.mib < 128, "bundle open peaked at \(opened.mib) MiB")
        let file = folder.appendingPathComponent("attachments/\(id)/\(attachment.prefix(12)).bin")
        #expect(Bytes(try Data(contentsOf: file)) == Bytes(media))
        // Every file is readable by its owner alone: the documents hold the narratives, whatever the umask.
        for path in try FileManager.default.subpathsOfDirectory(atPath: folder.path) {
            let attributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(path).path)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(path)")
        }
        let fromFolder = try peakMiB(["bundle", "verify", folder.path])
        #expect(fromFolder.status == 0)
        #expect(fromFolder.mib < 128, "bundle verify of the folder peaked at \(fromFolder.mib) MiB")
        // An opened folder whose recording is a link to an endless device is refused unread, not read forever.
        try FileManager.default.removeItem(at: file)
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: "/dev/zero")
        let linked = try cli.run(["bundle", "verify", folder.path], withVault: false)
        #expect(linked.status == 65, "\(linked.stderr)")
        #expect(linked.stderr.contains("is not a regular file (a link, a pipe or a device)"), "\(linked.stderr)")
    }

    /// A crafted bundle whose README is 300 MiB, read by a process allowed 256 MiB of data (`ulimit -d`, as on a
    /// small laptop): the reader refuses it at the file's header, with one sentence and exit 74, instead of running out
    /// of memory (a crash) while it holds the file. The same for an opened folder holding such a file.
    @Test func aBundleWhoseDocumentsPassTheMemoryLimitIsRefusedAtTheirHeader() throws {
        let scratch = try Scratch()
        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        var archive = TarArchive()
        archive.add("README.txt", [UInt8](repeating: 0x61, count: 300 << 20))
        let bundle = scratch.path("crafted.age")
        try writeAgeBundle(archive, to: bundle, recipient: recipient)
        archive = TarArchive()
        let binary = CLIRunner.binary.path
        let refusal = "larger than the 64 MiB this machine lets amanat hold to check them"
        for command in ["bundle verify", "bundle open --out '\(scratch.path("out").path)'", "import"] {
            let (status, output) = try shell(
                "ulimit -d 262144; exec '\(binary)' \(command) '\(bundle.path)' --identity '\(key)' 2>&1",
                environment: ["AMANAT_VAULT": scratch.path("no-vault").path, "AMANAT_PASSPHRASE": "unused passphrase"])
            #expect(status == 74 && output.contains(refusal), "\(command): \(status) \(output)")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out").path))

        let folder = scratch.path("opened")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let readme = folder.appendingPathComponent("README.txt")
        _ = FileManager.default.createFile(atPath: readme.path, contents: nil)
        let handle = try FileHandle(forWritingTo: readme)
        try handle.truncate(atOffset: 300 << 20)
        try handle.close()
        let (status, output) = try shell("ulimit -d 262144; exec '\(binary)' bundle verify '\(folder.path)' 2>&1")
        #expect(status == 74 && output.contains(refusal), "\(status) \(output)")
    }

    /// `bundle open` into a disk that fills up while it writes an attachment: one sentence, exit 74, and nothing of
    /// the bundle stays in the output folder (no file, no folder), so no half-opened evidence is taken for whole.
    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func aBundleOpenThatRunsOutOfRoomLeavesNothing() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        let media = TestMedia.make(size: 3 * 1_048_576, seed: TestMedia.seed("fullOpen"))
        let recording = scratch.path("recording.bin")
        try TestMedia.write(media, to: recording)
        _ = try cli.ok(["attach", id, recording.path])
        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("evidence.age").path
        _ = try cli.ok(["export", "--out", bundle, "--recipient", recipient, "--id", id])
        let disk = try #require(TinyDisk(megabytes: 2))
        let out = disk.url.appendingPathComponent("opened")
        let opened = try cli.run(["bundle", "open", bundle, "--identity", key, "--out", out.path], withVault: false)
        #expect(opened.status == 74, "\(opened.stderr)")
        #expect(opened.stderr.hasPrefix("amanat: ") && opened.stderr.contains("cannot be written"), "\(opened.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "the new output folder was left behind")
    }

    @Test func aBundleWithAttachmentsOpensWithAgeAndTarAndItsSHA256IsTheOneInCustody() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/age"), "install Debian's age package")
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        let other = try cli.ok(["add", "statement", "--title", "Not exported"])
        let media = TestMedia.make(size: 2 * 1_048_576 + 999, seed: TestMedia.seed("bundle"))
        let recording = scratch.path("interview.bin")
        try TestMedia.write(media, to: recording)
        let audio = try cli.ok(["attach", id, recording.path, "--note", "second session"])
        let pdfBytes = Array("%PDF-1.7\nscan of a detention order\n".utf8)
        try Data(pdfBytes).write(to: scratch.path("order.pdf"))
        let pdf = try cli.ok(["attach", id, scratch.path("order.pdf").path])
        let gone = try cli.ok(["attach", id, scratch.path("order.pdf").path])
        _ = try cli.ok(["detach", id, gone])
        try Data("unrelated".utf8).write(to: scratch.path("other.bin"))
        _ = try cli.ok(["attach", other, scratch.path("other.bin").path])

        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("evidence.age").path
        let exported = try cli.run(["export", "--out", bundle, "--recipient", recipient, "--id", id])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stderr.contains("with 2 attached files"), "\(exported.stderr)")

        // Only age and tar.
        let folder = scratch.path("opened")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (status, _) = try shell("age -d -i '\(key)' '\(bundle)' | tar x -C '\(folder.path)'")
        #expect(status == 0)
        let audioFile = folder.appendingPathComponent("attachments/\(id)/\(audio.prefix(12)).bin")
        let pdfFile = folder.appendingPathComponent("attachments/\(id)/\(pdf.prefix(12)).pdf")
        #expect(Bytes(try Data(contentsOf: audioFile)) == Bytes(media))
        #expect(Bytes(try Data(contentsOf: pdfFile)) == Bytes(pdfBytes))
        let listed =
            (try FileManager.default.subpathsOfDirectory(atPath: folder.appendingPathComponent("attachments").path))
        #expect(listed.filter { !$0.hasSuffix("/") && $0.contains(".") }.count == 2, "\(listed)")
        // sha256sum agrees with the SHA-256 in the signed change (history) and in the manifest.
        let digest = try shell("sha256sum '\(audioFile.path)'").1.prefix(64)
        #expect(digest == Hex.encode(SHA256.hash(media)))
        #expect(try cli.ok(["history", id]).contains("SHA-256 \(digest)"))
        let manifest = try String(contentsOf: folder.appendingPathComponent("manifest.json"), encoding: .utf8)
        #expect(manifest.contains("\"sha256\":\"\(digest)\"") && manifest.contains("\"attachment\":\"\(audio)\""))
        let custody = try String(contentsOf: folder.appendingPathComponent("records/\(id).json"), encoding: .utf8)
        #expect(
            custody.contains(
                "attached interview.bin (application/octet-stream, \(media.count) bytes, SHA-256 \(digest))"))

        // Both verifiers accept it, from the age file and from the opened folder.
        let verified = try cli.run(["bundle", "verify", bundle, "--identity", key], withVault: false)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(try PythonVerifier.verify([bundle, "--identity", key]).status == 0)
        #expect(try PythonVerifier.verify([folder.path]).status == 0)

        // A changed byte of an attached file, or a file swapped for another, is named by both.
        var altered = media
        altered[1_000_000] ^= 0x01
        try Data(altered).write(to: audioFile)
        let swift = try cli.run(["bundle", "verify", folder.path], withVault: false)
        #expect(swift.status == 65 && swift.stderr.contains("attachments/\(id)/\(audio.prefix(12)).bin was altered"))
        let python = try PythonVerifier.verify([folder.path])
        #expect(python.status != 0 && python.stdout.contains("attachments/\(id)/\(audio.prefix(12)).bin"))
        try Data(pdfBytes).write(to: audioFile)
        #expect(try cli.run(["bundle", "verify", folder.path], withVault: false).status == 65)
        #expect(try PythonVerifier.verify([folder.path]).status != 0)

        // An incomplete attachment is not exported: export says so and writes nothing.
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        let info = try #require(try vault.resolveRecord(id).attachments.first { $0.id == audio })
        let chunk = vault.chunkStore.url(for: try vault.chunkAddresses(of: info)[1])
        try FileManager.default.moveItem(at: chunk, to: scratch.path("aside"))
        let refused = try cli.run([
            "export", "--out", scratch.path("b2.age").path, "--recipient", recipient, "--id", id,
        ])
        #expect(refused.status == 66 && refused.stderr.contains("fetch"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("b2.age").path))
    }
}
