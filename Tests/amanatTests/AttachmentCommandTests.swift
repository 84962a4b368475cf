import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import Testing
import AmanatTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Reproducible test media: seeded random bytes in which every 32-byte block starts with an 8-byte marker. Any
/// 64-byte run of the plaintext therefore holds the marker whole, so "no file of the vault, sync file or relay holds
/// the marker" proves that no 64-byte run of the plaintext is stored there — with one fast search per file.
enum TestMedia {
    static let marker: [UInt8] = [0x01] + Array("AMNPLN".utf8) + [0x02]

    /// The seed: `AMANAT_TEST_SEED` to replay, else random; printed so a failure can be replayed.
    static func seed(_ test: String) -> UInt64 {
        let seed =
            ProcessInfo.processInfo.environment["AMANAT_TEST_SEED"].flatMap(UInt64.init) ?? .random(in: 1...UInt64.max)
        print("\(test): AMANAT_TEST_SEED=\(seed)")
        return seed
    }

    static func make(size: Int, seed: UInt64) -> [UInt8] {
        var seedBytes = [UInt8](repeating: 0, count: 32)
        for i in 0..<8 { seedBytes[i] = UInt8(truncatingIfNeeded: seed >> (8 * UInt64(i))) }
        var bytes = Sodium.deterministicBytes(size, seed: seedBytes)
        bytes.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i + 8 <= p.count {
                for j in 0..<8 { p[i + j] = marker[j] }
                i += 32
            }
        }
        return bytes
    }

    static func write(_ bytes: [UInt8], to url: URL) throws { try Data(bytes).write(to: url) }

    /// Every regular file under `roots` that holds the marker.
    static func leaks(in roots: [URL]) -> [String] {
        var found: [String] = []
        let needle = Data(marker)
        for root in roots {
            // A plain file is scanned itself (on Linux, `enumerator(at:)` gives an empty listing for one).
            var isFolder: ObjCBool = false
            let files =
                FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder) && isFolder.boolValue
                ? FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }
                    ?? [] : [root]
            for file in files {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory),
                    !isDirectory.boolValue, let data = try? Data(contentsOf: file, options: .alwaysMapped)
                else { continue }
                if data.range(of: needle) != nil { found.append(file.path) }
            }
        }
        return found
    }

    /// The number of chunk files in a chunk folder.
    static func chunkFiles(_ root: URL) -> Int { ChunkStore(root: root).addresses().count }
}

/// A command started in the background (to be killed mid-way).
final class Background {
    let process = Process()

    init(_ cli: CLIRunner, _ args: [String], stdin: FileHandle? = nil) throws {
        process.executableURL = CLIRunner.binary
        process.arguments = ["--vault", cli.vault.path] + args
        var env = ProcessInfo.processInfo.environment
        env["AMANAT_PASSPHRASE"] = cli.passphrase
        env.removeValue(forKey: "AMANAT_VAULT")
        process.environment = env
        process.standardInput = stdin ?? FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits at most `seconds` for the process to end (killing it then) and returns its exit status.
    func wait(within seconds: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10000) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits (at most `seconds`) until `condition` holds, then kills the process with SIGKILL. Returns whether the
    /// condition was seen while the process still ran.
    func kill(when condition: () -> Bool, within seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = false
        while Date() < deadline {
            if condition() {
                seen = process.isRunning
                break
            }
            if !process.isRunning { break }
            usleep(2000)
        }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return seen
    }
}

@Suite struct AttachmentCommandTests {
    /// A vault with one testimony; returns the runner and the record id.
    func vaultWithTestimony(_ scratch: Scratch, name: String = "a") throws -> (CLIRunner, String) {
        let cli = scratch.runner(name)
        try cli.initialize(name: "field laptop")
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        return (cli, id)
    }

    /// A vault with one testimony and `size` bytes of media attached as video.bin, opened here to reach its chunks.
    func vaultWithVideo(_ scratch: Scratch, size: Int, seed: String) throws -> (
        cli: CLIRunner, id: String, media: [UInt8], attachment: String, vault: Vault, info: AttachmentInfo
    ) {
        let (cli, id) = try vaultWithTestimony(scratch)
        let media = TestMedia.make(size: size, seed: TestMedia.seed(seed))
        let file = scratch.path("video.bin")
        try TestMedia.write(media, to: file)
        let attachment = try cli.ok(["attach", id, file.path])
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        let info = try #require(try vault.resolveRecord(id).attachments.first)
        return (cli, id, media, attachment, vault, info)
    }

    func attachments(_ cli: CLIRunner, _ id: String, _ extra: [String] = []) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: Data(try cli.ok(["attachments", id, "--json"] + extra).utf8))
            as? [[String: Any]] ?? []
    }

    /// A vault, its invitation and a second device joined to it.
    func pair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner, String) {
        let (a, id) = try vaultWithTestimony(scratch)
        return (a, try scratch.join("b", invitedBy: a, deviceName: "office laptop"), id)
    }

    @Test func attachListExtractShowHistoryAndDetach() throws {
        let scratch = try Scratch()
        let (cli, id) = try vaultWithTestimony(scratch)
        let media = TestMedia.make(size: 2 * 1_048_576 + 12_345, seed: TestMedia.seed("attachListExtract"))
        let file = scratch.path("interview.bin")
        try TestMedia.write(media, to: file)

        let attached = try cli.run(["attach", id, file.path, "--note", "second session"])
        #expect(attached.status == 0, "\(attached.stderr)")
        let attachment = attached.stdout.trimmingCharacters(in: .newlines)
        #expect(attachment.count == 32 && attachment.allSatisfy(\.isHexDigit), "\(attached.stdout)")
        #expect(attached.stderr.contains("3 chunks written"), "\(attached.stderr)")
        #expect(attached.stderr.contains(Hex.encode(SHA256.hash(media))))

        let listed = try attachments(cli, id)
        #expect(listed.count == 1)
        let item = try #require(listed.first)
        #expect(item["id"] as? String == attachment)
        #expect(item["state"] as? String == "complete")
        #expect(item["size"] as? Int == media.count)
        #expect(item["chunks"] as? Int == 3 && item["chunks_present"] as? Int == 3)
        #expect(item["sha256"] as? String == Hex.encode(SHA256.hash(media)))
        #expect(item["media_type"] as? String == "application/octet-stream")
        #expect(item["name"] as? String == "interview.bin" && item["note"] as? String == "second session")

        let out = scratch.path("out.bin")
        _ = try cli.ok(["extract", id, String(attachment.prefix(8)), "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        let again = try cli.run(["extract", id, String(attachment.prefix(8)), "--out", out.path])
        #expect(again.status == 73 && again.stderr.hasPrefix("amanat: ") && again.stderr.contains("--force"))
        try Data("other".utf8).write(to: out)
        _ = try cli.ok(["extract", id, String(attachment.prefix(8)), "--out", out.path, "--force"])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        // A write that fails (a full disk; /dev/full refuses every byte) stops the extract with one sentence.
        let full = try cli.run(["extract", id, String(attachment.prefix(8)), "--out", "/dev/full", "--force"])
        #expect(full.status == 74 && full.stderr.hasPrefix("amanat: "), "\(full.status) \(full.stderr)")
        #expect(full.stderr.contains("/dev/full") && !full.stderr.contains("Wrote"), "\(full.stderr)")

        #expect(try cli.ok(["show", id]).contains("attachment: \(attachment.prefix(12))  complete"))
        #expect(try cli.ok(["history", id]).contains("attached interview.bin"))
        let verified = try cli.run(["verify"])
        #expect(verified.status == 0 && verified.stdout.contains("1 attachments verified"), "\(verified.stderr)")

        // The same content again is stored once: nothing new is written.
        let twice = try cli.run(["attach", id, file.path])
        #expect(twice.status == 0 && twice.stderr.contains("0 chunks written, 3 already stored"), "\(twice.stderr)")
        #expect(TestMedia.chunkFiles(cli.vault.appendingPathComponent("chunks")) == 3)

        // Detach: no longer listed, still kept as evidence.
        _ = try cli.ok(["detach", id, String(attachment.prefix(10))])
        #expect(try attachments(cli, id).count == 1)
        let all = try attachments(cli, id, ["--detached"])
        #expect(all.count == 2 && all.contains { $0["id"] as? String == attachment && $0["detached"] as? Bool == true })
        #expect(TestMedia.chunkFiles(cli.vault.appendingPathComponent("chunks")) == 3)
        #expect(try cli.ok(["history", id]).contains("detached attachment \(attachment.prefix(12))"))

        #expect(TestMedia.leaks(in: [cli.vault]).isEmpty, "plaintext in \(TestMedia.leaks(in: [cli.vault]))")
    }

    @Test func mediaTypeAndLocationMetadataAreFoundInTheContent() throws {
        let scratch = try Scratch()
        let (cli, id) = try vaultWithTestimony(scratch)
        // A JPEG whose APP1 Exif block names the camera (Make) and points to a GPS IFD, saved under a harmless name.
        var tiff: [UInt8] = Array("II".utf8) + [42, 0, 8, 0, 0, 0]  // little endian, IFD0 at 8
        tiff += [2, 0]  // two entries
        tiff += [0x0F, 0x01, 2, 0, 6, 0, 0, 0, 38, 0, 0, 0]  // Make, ASCII, 6 bytes at 38
        tiff += [0x25, 0x88, 4, 0, 1, 0, 0, 0, 44, 0, 0, 0]  // GPSInfo IFD at 44
        tiff += [0, 0, 0, 0] + Array("Canon\0".utf8) + [0, 0]
        let app1: [UInt8] = Array("Exif".utf8) + [0, 0] + tiff
        let length = app1.count + 2
        let jpeg: [UInt8] =
            [0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + app1 + [0xFF, 0xD9]
        let photo = scratch.path("notes.txt")
        try Data(jpeg).write(to: photo)
        let r = try cli.run(["attach", id, photo.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: this file carries GPS location and the camera or phone"), "\(r.stderr)")
        let item = try #require(try attachments(cli, id).first)
        #expect(item["media_type"] as? String == "image/jpeg")
        #expect(item["location_metadata"] as? Bool == true && item["device_metadata"] as? Bool == true)
        #expect(try cli.ok(["show", id]).contains("! GPS location in metadata"))

        // A PDF with "GPSLatitude" in it is a document, not a photo: no warning.
        let pdf = scratch.path("scan.bin")
        try Data(Array("%PDF-1.7\nGPSLatitude tiff:Make\n".utf8)).write(to: pdf)
        let p = try cli.run(["attach", id, pdf.path])
        #expect(p.status == 0 && !p.stderr.contains("warning"), "\(p.stderr)")
        #expect(try attachments(cli, id).contains { $0["media_type"] as? String == "application/pdf" })
        // Standard input, and the magic numbers of the other types.
        let ftyp: [UInt8] = [0, 0, 0, 24] + Array("ftyp".utf8)
        let magic: [([UInt8], String)] = [
            ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "image/png"),
            (ftyp + Array("heic".utf8), "image/heic"),
            (ftyp + Array("isom".utf8), "video/mp4"),
            (ftyp + Array("qt  ".utf8), "video/quicktime"),
            (ftyp + Array("M4A ".utf8), "audio/mp4"),
            (Array("ID3".utf8), "audio/mpeg"),
            (Array("OggS".utf8), "audio/ogg"),
            (Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WAVE".utf8), "audio/wav"),
        ]
        for (head, type) in magic {
            let f = scratch.path("x-\(type.replacingOccurrences(of: "/", with: "-"))")
            try Data(head + Array(repeating: 0x20, count: 40)).write(to: f)
            _ = try cli.ok(["attach", id, f.path])
            #expect(try attachments(cli, id).contains { $0["media_type"] as? String == type }, "\(type)")
        }
        let stdinAttach = try cli.run(["attach", id, "-"], stdin: "typed notes\n")
        #expect(stdinAttach.status == 0, "\(stdinAttach.stderr)")
        #expect(try attachments(cli, id).contains { $0["name"] as? String == "" && $0["size"] as? Int == 12 })
    }

    @Test func badInputIsRefusedWithOneSentenceAndChangesNothing() throws {
        let scratch = try Scratch()
        let (cli, id) = try vaultWithTestimony(scratch)
        let file = scratch.path("a.bin")
        try Data(repeating: 7, count: 5000).write(to: file)
        let attachment = try cli.ok(["attach", id, file.path])
        let digest = try cli.digest()
        let chunks = TestMedia.chunkFiles(cli.vault.appendingPathComponent("chunks"))
        let cases: [([String], Int32, String)] = [
            (["attach", id, scratch.path("missing.m4a").path], 66, "Cannot read"),
            (["attach", id, scratch.url.path], 66, "is a folder"),
            (["attach", "ffffffffffff", file.path], 67, "No record has the id"),
            (["attach", id, "-", "--passphrase-file", "-"], 64, "Standard input cannot carry both"),
            (["extract", id, "zz", "--out", scratch.path("o").path], 67, "is not an attachment id"),
            (["extract", id, "abcdef", "--out", scratch.path("o").path], 67, "has no attachment abcdef"),
            (["extract", id, attachment, "--out", scratch.path("nofolder/o").path], 66, "does not exist"),
            (["detach", id, "0123456789"], 67, "has no attachment"),
            (
                ["sync", scratch.path("s").path, "--create", "--max-attachment-size", "12Q"], 64,
                "--max-attachment-size"
            ),
            (
                ["sync", scratch.path("s").path, "--create", "--max-attachment-size", "99999999999999999999G"], 64,
                "--max-attachment-size"
            ),
            (["fetch", id, scratch.path("nothing.amanat-sync").path], 66, "There is no sync file at"),
        ]
        for (args, status, phrase) in cases {
            let r = try cli.run(args)
            #expect(r.status == status, "\(args): \(r.status) \(r.stderr)")
            #expect(r.stderr.hasPrefix("amanat: ") && r.stderr.contains(phrase), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        #expect(try cli.digest() == digest)
        #expect(TestMedia.chunkFiles(cli.vault.appendingPathComponent("chunks")) == chunks)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("o").path))
    }

    @Test func tamperedSwappedTruncatedAndMissingChunksAreReportedAsSuch() throws {
        let scratch = try Scratch()
        let (cli, id, media, attachment, vault, info) = try vaultWithVideo(
            scratch, size: 4 * 1_048_576 + 10, seed: "damagedChunks")
        // The chunk files in file order, as the signed change lists them.
        let urls = try vault.chunkAddresses(of: info).map { vault.chunkStore.url(for: $0) }
        #expect(urls.count == 5)
        let originals = try urls.map { try Data(contentsOf: $0) }

        var tampered = originals[0]
        tampered[tampered.count / 2] ^= 0x01
        try tampered.write(to: urls[0])  // one bit flipped
        try originals[2].write(to: urls[1])  // chunk 3's bytes where chunk 2 belongs
        try originals[2].prefix(originals[2].count - 100).write(to: urls[2])  // cut short
        try FileManager.default.removeItem(at: urls[4])  // gone
        // Larger than any chunk: it cannot be read as one, and it is no chunk of any address (not a missing one).
        try Data(count: 5 * 1_048_576).write(to: urls[3])

        let r = try cli.run(["verify"])
        #expect(r.status == 65, "\(r.stdout) \(r.stderr)")
        for phrase in [
            "chunk 1 of 5 is tampered; it was set aside", "chunk 2 of 5 is swapped; it was set aside",
            "chunk 3 of 5 is truncated; it was set aside", "chunk 4 of 5 is tampered; it was set aside",
            "is missing 1 of 5 chunks here",
        ] {
            #expect(r.stderr.contains(phrase), "\(phrase): \(r.stderr)")
        }
        #expect(r.stderr.contains("attachment \(attachment.prefix(12))"))
        // Set aside, the four count as missing, with the fifth: the next verify says so, and a sync or fetch would
        // bring them.
        #expect(try attachments(cli, id).first?["state"] as? String == "missing")
        let again = try cli.run(["verify"])
        #expect(again.stderr.contains("is missing 5 of 5 chunks here") && !again.stderr.contains("tampered"))
        #expect(again.stderr.contains("set aside: 4 damaged attachment chunks"), "\(again.stderr)")
        for url in urls[0..<4] {
            #expect(
                FileManager.default.fileExists(atPath: url.path + ".damaged")
                    && !FileManager.default.fileExists(atPath: url.path))
        }
        // The same damage again, in place, for extract to meet (the fourth chunk put right).
        try originals[3].write(to: urls[3])
        try tampered.write(to: urls[0])
        try originals[2].write(to: urls[1])
        try originals[2].prefix(originals[2].count - 100).write(to: urls[2])

        // Incomplete (a truncated chunk is not there for use either): extract refuses and writes nothing.
        let out = scratch.path("out.bin")
        let missing = try cli.run(["extract", id, attachment, "--out", out.path])
        #expect(missing.status == 66 && missing.stderr.contains("3 of 5 chunks"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
        // Complete but wrong (a flipped bit, a swapped chunk): extract refuses and removes what it began to write.
        try originals[4].write(to: urls[4])
        try originals[2].write(to: urls[2])
        let wrong = try cli.run(["extract", id, attachment, "--out", out.path])
        #expect(wrong.status == 65 && wrong.stderr.contains("Chunk 1 of 5") && wrong.stderr.contains("tampered"))
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // Put right, the same attachment verifies and extracts byte for byte.
        for (url, data) in zip(urls, originals) { try data.write(to: url) }
        #expect(try cli.run(["verify"]).status == 0)
        _ = try cli.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
    }

    /// A holder of the vault key can seal other content under an address the signed change lists: the AEAD opens.
    /// `extract` into a file skips each chunk's keyed hash (Protocol/attachments.md §2, "Readers of a whole
    /// attachment"), so the SHA-256 of the whole must refuse it; into a pipe, and in a bundle, the chunk itself is
    /// refused before any of it is handed on; `verify` names it.
    @Test func aChunkResealedOverOtherContentByAKeyHolderIsNeverExtracted() throws {
        let scratch = try Scratch()
        let (cli, id, media, attachment, vault, info) = try vaultWithVideo(
            scratch, size: 3 * 1_048_576 + 5, seed: "resealedChunk")
        let addresses = try vault.chunkAddresses(of: info)
        let keys = try #require(vault.chunkKeys(epoch: info.epoch))
        // Chunk 2's place, its length, other bytes: sealed with the vault's own chunk keys under chunk 2's address.
        var other = Array(media[1_048_576..<2 * 1_048_576])
        other[12345] ^= 0x40
        let forged = try other.withUnsafeBytes { try keys.seal($0, address: addresses[1]) }
        let original = try Data(contentsOf: vault.chunkStore.url(for: addresses[1]))
        try Data(forged).write(to: vault.chunkStore.url(for: addresses[1]))

        let out = scratch.path("out.bin")
        let wrong = try cli.run(["extract", id, attachment, "--out", out.path])
        #expect(wrong.status == 65, "\(wrong.stderr)")
        #expect(wrong.stderr.contains("does not match its signed SHA-256"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
        let verify = try cli.run(["verify"])
        #expect(verify.status == 65 && verify.stderr.contains("chunk 2 of 4 is tampered"), "\(verify.stderr)")
        // verify set the forged chunk aside (it counts as missing now); the key holder puts it back in its place.
        #expect(FileManager.default.fileExists(atPath: vault.chunkStore.damagedURL(for: addresses[1]).path))
        try Data(forged).write(to: vault.chunkStore.url(for: addresses[1]))

        // Into a pipe nothing written can be taken back: every chunk is checked in full before it is written, so
        // the reader gets chunk 1 and no byte of the forged chunk 2, and the pipe itself is left where it was.
        let fifo = scratch.path("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let received = PipedBytes()
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            if let reader = FileHandle(forReadingAtPath: fifo) {
                while let piece = try? reader.read(upToCount: 1 << 16), !piece.isEmpty {
                    received.append(Array(piece))
                }
            }
            drained.signal()
        }
        let piped = try cli.run(["extract", id, attachment, "--out", fifo, "--force"])
        #expect(drained.wait(timeout: .now() + 60) == .success)
        #expect(piped.status == 65 && piped.stderr.contains("Chunk 2 of 4"), "\(piped.stderr)")
        #expect(piped.stderr.contains("tampered"), "\(piped.stderr)")
        #expect(Bytes(received.bytes) == Bytes(media[0..<1_048_576]), "the pipe got \(received.bytes.count) bytes")
        #expect(FileManager.default.fileExists(atPath: fifo))

        // A bundle is checked chunk by chunk too, and none is left, not even a partial one.
        let key = scratch.path("age.key").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("case.amanat-bundle").path
        let exported = try cli.run(["export", "--out", bundle, "--recipient", recipient, "--id", id])
        #expect(exported.status == 65 && exported.stderr.contains("Chunk 2 of 4"), "\(exported.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)
        #expect(!left.contains { $0.hasPrefix("case.amanat-bundle") }, "\(left)")

        try original.write(to: vault.chunkStore.url(for: addresses[1]))
        _ = try cli.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
    }

    @Test func aKilledAttachLeavesNothingReferencedAndTheRerunContinues() throws {
        let scratch = try Scratch()
        let (cli, id) = try vaultWithTestimony(scratch)
        let media = TestMedia.make(size: 24 * 1_048_576 + 77, seed: TestMedia.seed("killedAttach"))
        let file = scratch.path("long.bin")
        try TestMedia.write(media, to: file)
        let chunks = cli.vault.appendingPathComponent("chunks")
        // Feed 23 MiB through a pipe, then hold it open: the attach is mid-file when it is killed, with its first
        // batch of 16 chunks stored and 7 more sealed or being sealed (a batch is handed on once 6 more chunks are in
        // flight behind it: Vault.chunksInFlight).
        let pipe = Pipe()
        let attach = try Background(cli, ["attach", id, "-"], stdin: pipe.fileHandleForReading)
        try pipe.fileHandleForWriting.write(contentsOf: Data(media[0..<(23 * 1_048_576)]))
        let midway = attach.kill(when: { TestMedia.chunkFiles(chunks) >= 16 })
        try? pipe.fileHandleForWriting.close()
        #expect(midway)
        let stored = TestMedia.chunkFiles(chunks)
        #expect(stored == 16)
        #expect(try attachments(cli, id).isEmpty)
        #expect(try cli.run(["verify"]).status == 0)

        let rerun = try cli.run(["attach", id, file.path])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stderr.contains("9 chunks written, 16 already stored"), "\(rerun.stderr)")
        let out = scratch.path("out.bin")
        _ = try cli.ok(["extract", id, rerun.stdout.trimmingCharacters(in: .newlines), "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        let leftover =
            (try? FileManager.default.contentsOfDirectory(atPath: chunks.appendingPathComponent(".tmp").path)) ?? []
        #expect(leftover.isEmpty, "temporary files left: \(leftover)")
    }

    @Test func twoDevicesAttachingOneFileStoreItOnceAndSyncFileOptionsWork() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        let media = TestMedia.make(size: 3 * 1_048_576, seed: TestMedia.seed("twoDevices"))
        let file = scratch.path("photo.bin")
        try TestMedia.write(media, to: file)
        let fromA = try a.ok(["attach", id, file.path])
        let fromB = try b.ok(["attach", id, file.path])
        #expect(fromA != fromB)  // two attachments, two signed changes
        let first = try a.run(["sync", stick])
        #expect(first.stderr.contains("Attachments: 0 chunks pulled"), "\(first.stderr)")
        #expect(first.stderr.contains("3 pushed"), "\(first.stderr)")
        let second = try b.run(["sync", stick])
        // b's copy has the same chunks: none travels, and the stick holds the file once.
        #expect(second.stderr.contains("Attachments: 0 chunks pulled (0 bytes), 0 pushed"), "\(second.stderr)")
        #expect(TestMedia.chunkFiles(URL(fileURLWithPath: stick + ".chunks")) == 3)
        _ = try a.ok(["sync", stick])
        #expect(TestMedia.chunkFiles(a.vault.appendingPathComponent("chunks")) == 3)
        #expect(try attachments(a, id).count == 2 && attachments(b, id).count == 2)
        #expect(try a.digest() == b.digest())

        // A third device syncs text only, then fetches later; --max-attachment-size leaves big ones out.
        let invitation = scratch.path("invite2.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        _ = try a.ok(["sync", stick])
        let c = scratch.runner("c")
        _ = try c.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "third"])
        let textOnly = try c.run(["sync", stick, "--no-attachments"])
        #expect(textOnly.status == 0 && !textOnly.stderr.contains("Attachments:"), "\(textOnly.stderr)")
        #expect(
            textOnly.stderr.contains(
                "Attachments were not synced (--no-attachments): 2 of 2 attachments are not complete here"),
            "\(textOnly.stderr)")
        let listed = try attachments(c, id)
        #expect(listed.count == 2 && listed.allSatisfy { $0["state"] as? String == "missing" })
        let human = try c.ok(["attachments", id])
        #expect(human.contains("    where: attached by field laptop ("), "\(human)")
        #expect(human.contains("office laptop ("), "the two attachments were made by a and b: \(human)")
        let status = try c.run(["status"])
        #expect(status.stdout.contains("attachments:  2 (0 complete, 0 partial, 2 missing"), "\(status.stdout)")
        let limited = try c.run(["sync", stick, "--max-attachment-size", "1M"])
        #expect(
            limited.stderr.contains(
                "every attachment within --max-attachment-size is complete here. 2 attachments were over --max-attachment-size and left for `amanat fetch` (2 not complete here)."
            ), "\(limited.stderr)")
        #expect(!limited.stderr.contains("every attachment is complete"), "\(limited.stderr)")
        #expect(TestMedia.chunkFiles(c.vault.appendingPathComponent("chunks")) == 0)
        // A carrier without the media: the fetch says so and fails (66), so a script never takes it for done.
        let empty = scratch.path("text-only.amanat-sync").path
        _ = try c.ok(["sync", empty, "--create", "--no-attachments"])
        let nothing = try c.run(["fetch", String(id.prefix(8)), empty])
        #expect(nothing.status == 66, "\(nothing.stderr)")
        #expect(
            nothing.stderr.contains("still lacks 3 attachment chunks (3.0 MiB) that \(empty) could not give"),
            "\(nothing.stderr)")
        let fetched = try c.run(["fetch", String(id.prefix(8)), stick])
        #expect(fetched.status == 0 && fetched.stderr.contains("3 chunks pulled"), "\(fetched.stderr)")
        #expect(fetched.stderr.contains("every attachment is complete here"))
        #expect(try attachments(c, id).allSatisfy { $0["state"] as? String == "complete" })
        let out = scratch.path("out.bin")
        _ = try c.ok(["extract", id, fromB, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        #expect(try c.ok(["status"]).contains("attachments:  2 (2 complete, 0 partial, 0 missing)"))
        #expect(TestMedia.leaks(in: [a.vault, b.vault, c.vault, scratch.path("team.amanat-sync.chunks")]).isEmpty)
    }

    /// One bit flipped in a chunk on b's disk: b's sync to a new stick does not send that chunk (a carrier that took
    /// it would hold a copy every member refuses, in the place of the good one, for good). b sets it aside, says so
    /// and counts the attachment as partial; a's next sync sends the good copy, and b gets it back from the stick.
    @Test func aChunkDamagedOnADiskIsNotSentAndAGoodCopyComesBack() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let media = TestMedia.make(size: 3 * 1_048_576, seed: TestMedia.seed("damagedOnDisk"))
        let file = scratch.path("video.bin")
        try TestMedia.write(media, to: file)
        let attachment = try a.ok(["attach", id, file.path])
        let first = scratch.path("first.amanat-sync").path
        _ = try a.ok(["sync", first, "--create"])
        _ = try b.ok(["sync", first])
        let chunks = b.vault.appendingPathComponent("chunks")
        let store = ChunkStore(root: chunks)
        let address = try #require(store.addresses().sorted { $0.lexicographicallyPrecedes($1) }.first)
        var bytes = try Data(contentsOf: store.url(for: address))
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: store.url(for: address))

        let second = scratch.path("second.amanat-sync").path
        let sent = try b.run(["sync", second, "--create"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("2 pushed"), "\(sent.stderr)")
        #expect(
            sent.stderr.contains("WARNING: 1 attachment chunk stored here did not authenticate (damaged on this disk)"),
            "\(sent.stderr)")
        #expect(
            sent.stderr.contains("1 attachment is still incomplete here (1 chunk, 1.0 MiB missing)"), "\(sent.stderr)")
        let onStick = ChunkStore(root: URL(fileURLWithPath: second + ".chunks"))
        #expect(!onStick.addresses().contains(address), "the damaged chunk reached the stick")
        #expect(FileManager.default.fileExists(atPath: store.damagedURL(for: address).path))
        #expect(try attachments(b, id).first?["state"] as? String == "partial")

        let repaired = try a.run(["sync", second])
        #expect(repaired.stderr.contains("1 pushed"), "\(repaired.stderr)")
        let back = try b.run(["sync", second])
        #expect(back.stderr.contains("1 chunk pulled"), "\(back.stderr)")
        #expect(back.stderr.contains("every attachment is complete here"), "\(back.stderr)")
        let out = scratch.path("out.bin")
        _ = try b.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        #expect(try b.run(["verify"]).status == 0)

        // Damaged after the stick took it: a sync sends and takes only what one side lacks, so it cannot see it.
        // verify finds it and sets it aside; the next sync takes the stick's good copy back.
        try FileManager.default.removeItem(at: out)
        var again = try Data(contentsOf: store.url(for: address))
        again[again.count / 3] ^= 0x04
        try again.write(to: store.url(for: address))
        let found = try b.run(["verify"])
        #expect(found.status == 65 && found.stderr.contains("is tampered; it was set aside"), "\(found.stderr)")
        let healed = try b.run(["sync", second])
        #expect(
            healed.stderr.contains("1 chunk pulled") && healed.stderr.contains("every attachment is complete here"),
            "\(healed.stderr)")
        _ = try b.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
        #expect(try b.run(["verify"]).status == 0)
    }

    /// One bit flipped in a chunk on the stick after a's sync wrote it: b refuses it, and, since it is damaged on its
    /// own terms, sets it aside on the stick and says so. The stick then lacks the address, so a's next sync sends
    /// the good copy again, and b gets it. A stick that kept the damaged copy would say it holds the chunk for good.
    @Test func aChunkDamagedOnTheStickIsSetAsideThereAndTheGoodCopyTravelsAgain() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let media = TestMedia.make(size: 3 * 1_048_576, seed: TestMedia.seed("damagedOnStick"))
        let file = scratch.path("video.bin")
        try TestMedia.write(media, to: file)
        let attachment = try a.ok(["attach", id, file.path])
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        let onStick = ChunkStore(root: URL(fileURLWithPath: stick + ".chunks"))
        let address = try #require(onStick.addresses().sorted { $0.lexicographicallyPrecedes($1) }.first)
        var bytes = try Data(contentsOf: onStick.url(for: address))
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: onStick.url(for: address))

        let refused = try b.run(["sync", stick])
        #expect(refused.status == 0, "\(refused.stderr)")
        #expect(
            refused.stderr.contains(
                "WARNING: 1 chunk offered by \(stick) did not open as the chunk its address names (altered or swapped); not stored. It was damaged and set aside on \(stick)"
            ), "\(refused.stderr)")
        #expect(refused.stderr.contains("(1 chunk, 1.0 MiB missing)"), "\(refused.stderr)")
        #expect(!onStick.addresses().contains(address), "the damaged copy still stands for the chunk on the stick")
        let damagedBytes = Array(bytes)
        #expect(
            try Data(contentsOf: onStick.setAsideURL(for: address, sha256: SHA256.hash(damagedBytes)))
                == Data(damagedBytes), "the stick's copy was not kept aside")

        let resent = try a.run(["sync", stick])
        #expect(resent.stderr.contains("1 pushed"), "\(resent.stderr)")
        let healed = try b.run(["sync", stick])
        #expect(
            healed.stderr.contains("1 chunk pulled") && healed.stderr.contains("every attachment is complete here"),
            "\(healed.stderr)")
        let out = scratch.path("out.bin")
        _ = try b.ok(["extract", id, attachment, "--out", out.path])
        #expect(Bytes(try Data(contentsOf: out)) == Bytes(media))
    }

    /// A hostile stick whose shard folder is a symbolic link to a folder of this laptop, holding a damaged copy
    /// there: b refuses the copy and does not set anything aside through the link (the file outside the stick stays
    /// under its name).
    @Test func aDamagedCopyBehindALinkedFolderOnTheStickIsNotMovedThroughIt() throws {
        let scratch = try Scratch()
        let (a, b, id) = try pair(scratch)
        let file = scratch.path("photo.bin")
        try TestMedia.write(TestMedia.make(size: 100_000, seed: TestMedia.seed("linkedShard")), to: file)
        _ = try a.ok(["attach", id, file.path])
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        let onStick = ChunkStore(root: URL(fileURLWithPath: stick + ".chunks"))
        let address = try #require(onStick.addresses().first)
        let shard = onStick.url(for: address).deletingLastPathComponent()
        let elsewhere = scratch.path("laptop-folder")
        try FileManager.default.moveItem(at: shard, to: elsewhere)
        try FileManager.default.createSymbolicLink(at: shard, withDestinationURL: elsewhere)
        let outside = elsewhere.appendingPathComponent(onStick.url(for: address).lastPathComponent)
        var bytes = try Data(contentsOf: outside)
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: outside)

        let r = try b.run(["sync", stick])
        #expect(r.stderr.contains("did not open as the chunk its address names"), "\(r.stderr)")
        #expect(!r.stderr.contains("set aside on"), "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: outside.path), "a file outside the stick was moved")
        #expect(!FileManager.default.fileExists(atPath: outside.path + ".damaged"))
    }

    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func aStickThatFillsUpKeepsEveryCompleteChunkAndSaysWhatIsLeft() throws {
        let scratch = try Scratch()
        let (a, id) = try vaultWithTestimony(scratch)
        let disk = try #require(TinyDisk(megabytes: 3))
        let media = TestMedia.make(size: 6 * 1_048_576, seed: TestMedia.seed("fullStick"))
        let file = scratch.path("video.bin")
        try TestMedia.write(media, to: file)
        _ = try a.ok(["attach", id, file.path])
        let stick = disk.url.appendingPathComponent("team.amanat-sync").path
        let r = try a.run(["sync", stick, "--create"])
        #expect(r.status == 74, "\(r.stderr)")
        #expect(r.stderr.contains("is full"), "\(r.stderr)")
        let onStick = TestMedia.chunkFiles(URL(fileURLWithPath: stick + ".chunks"))
        #expect(onStick >= 1 && onStick < 6)
        #expect(r.stderr.contains("\(6 - onStick) attachment chunks"), "\(r.stderr)")
        // Every chunk on the stick is whole, and the text is all there: another laptop reads it.
        let vault = try Vault.open(at: a.vault, passphrase: SecureBytes(Array(a.passphrase.utf8)))
        let info = try #require(try vault.resolveRecord(id).attachments.first)
        let keys = try #require(vault.chunkKeys(epoch: info.epoch))
        let store = ChunkStore(root: URL(fileURLWithPath: stick + ".chunks"))
        for (index, address) in try vault.chunkAddresses(of: info).enumerated() {
            guard let sealed = try store.read(address) else { continue }
            let length = AttachmentSpec.chunkLength(index: index, size: info.size, chunkSize: info.chunkSize)
            #expect((try? keys.open(sealed, address: address, length: length).get()) != nil)
        }
        #expect(FileManager.default.fileExists(atPath: stick))
    }

    @Test(.enabled(if: TinyDisk.available, "mounting a tmpfs needs root"))
    func anEndlessSourceStopsBeforeTheDiskFillsAndLeavesNothing() throws {
        // A vault on a 100 MiB disk, and a source that never ends (random bytes, so no chunk repeats): the attach
        // must stop while 32 MiB are still free, say so in one sentence, reference nothing and keep no chunk.
        let disk = try #require(TinyDisk(megabytes: 100))
        let cli = CLIRunner(vault: disk.url.appendingPathComponent("vault"))
        try cli.initialize(name: "field laptop")
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        let digest = try cli.digest()
        let r = try cli.run(["attach", id, "/dev/urandom"])
        #expect(r.status == 74, "\(r.status): \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("Stopped reading urandom after"), "\(r.stderr)")
        #expect(r.stderr.contains("would have less than 32 MiB free; nothing was attached"), "\(r.stderr)")
        #expect(try cli.digest() == digest)
        #expect(try attachments(cli, id).isEmpty)
        let chunks = cli.vault.appendingPathComponent("chunks")
        #expect(TestMedia.chunkFiles(chunks) == 0, "the chunks written for it were removed")
        let leftover =
            (try? FileManager.default.contentsOfDirectory(atPath: chunks.appendingPathComponent(".tmp").path)) ?? []
        #expect(leftover.isEmpty, "temporary files left: \(leftover)")
        #expect(Vault.freeBytes(disk.url) > 90 << 20, "the room is given back")
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
        // Standard input that never ends is stopped the same way.
        let pipe = Pipe()
        let writer = Thread {
            // Fresh random bytes every time: repeated blocks would make equal chunks, stored once.
            while (try? pipe.fileHandleForWriting.write(contentsOf: Data(Sodium.randomBytes(1 << 16)))) != nil {}
        }
        signal(SIGPIPE, SIG_IGN)
        writer.start()
        let attach = try Background(cli, ["attach", id, "-"], stdin: pipe.fileHandleForReading)
        try pipe.fileHandleForReading.close()  // the writer sees the end when the attach stops reading
        let status = attach.wait(within: 120)
        #expect(status == 74)
        #expect(try attachments(cli, id).isEmpty)
        #expect(TestMedia.chunkFiles(chunks) == 0)
    }
}

/// Bytes a reader thread gathers from a pipe.
private final class PipedBytes: @unchecked Sendable {
    // @unchecked Sendable: guarded by `lock`.
    private let lock = NSLock()
    private var gathered: [UInt8] = []
    func append(_ more: [UInt8]) { lock.withLock { gathered += more } }
    var bytes: [UInt8] { lock.withLock { gathered } }
}
