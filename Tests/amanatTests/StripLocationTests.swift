import AmanatBundle
import AmanatCrypto
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// `amanat export --strip-location` end to end: photos and videos built byte by byte with GPS metadata are attached,
/// exported with the flag, opened with the real `age` and `tar`; the coordinates are gone from the copies, which are
/// still well-formed files, the vault keeps the originals, both verifiers accept the bundle and say what each copy
/// stands for, and both catch a changed copy or a copy that claims an original custody does not hold.
@Suite struct StripLocationTests {
    static let samples: [(name: String, ext: String, bytes: [UInt8])] = [
        ("photo.jpg", "jpg", LocationSamples.jpeg()), ("scan.png", "png", LocationSamples.png()),
        ("photo.heic", "heic", LocationSamples.heic()), ("clip.mp4", "mp4", LocationSamples.mp4()),
    ]

    @Test func strippedCopiesTravelAndBothVerifiersSayTheyAreCopiesOfTheSealedOriginals() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/age"), "install Debian's age package")
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative-file", samplePath, "--consent", "share",
        ])
        var ids: [String] = []
        for sample in Self.samples {
            let file = scratch.path(sample.name)
            try Data(sample.bytes).write(to: file)
            let attached = try cli.run(["attach", id, file.path])
            #expect(attached.status == 0, "\(attached.stderr)")
            #expect(attached.stderr.contains("GPS location") && attached.stderr.contains("--strip-location"))
            ids.append(attached.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let pdf = Array("%PDF-1.7\nGPSLatitude is only a word in this scan\n".utf8)
        try Data(pdf).write(to: scratch.path("order.pdf"))
        let pdfID = try cli.ok(["attach", id, scratch.path("order.pdf").path])

        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)

        // Without the flag nothing changes: the originals travel, and export says they carry a location.
        let plain = scratch.path("plain.age").path
        let unstripped = try cli.run(["export", "--out", plain, "--recipient", recipient, "--id", id])
        #expect(unstripped.status == 0, "\(unstripped.stderr)")
        #expect(unstripped.stderr.contains("4 attached files carry GPS location"), "\(unstripped.stderr)")
        let plainFolder = try Self.open(plain, key: key, into: scratch.path("plain"))
        for (sample, attachment) in zip(Self.samples, ids) {
            let bytes = try Self.read(plainFolder, id, attachment, sample.ext)
            #expect(Bytes(bytes) == Bytes(sample.bytes), "\(sample.name) travels as attached without the flag")
        }
        #expect(
            !(try String(contentsOf: plainFolder.appendingPathComponent("manifest.json"), encoding: .utf8))
                .contains("stripped"))

        // With --strip-location.
        let bundle = scratch.path("evidence.age").path
        let exported = try cli.run([
            "export", "--out", bundle, "--recipient", recipient, "--id", id, "--strip-location", "--json",
        ])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stderr.contains("Removed location metadata from 4 attached files"), "\(exported.stderr)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(exported.stdout.utf8)) as? [String: Any])
        let reported = try #require(json["stripped"] as? [[String: Any]])
        #expect(reported.count == 4)

        let folder = try Self.open(bundle, key: key, into: scratch.path("opened"))
        let manifest = try String(contentsOf: folder.appendingPathComponent("manifest.json"), encoding: .utf8)
        // README.txt tells a recipient without Amanat what the copies are; a bundle without copies says nothing.
        let readme = try String(contentsOf: folder.appendingPathComponent("README.txt"), encoding: .utf8)
        #expect(readme.contains("Location-stripped copies") && readme.contains("\"stripped\""))
        #expect(
            !(try String(contentsOf: plainFolder.appendingPathComponent("README.txt"), encoding: .utf8))
                .contains("stripped"))
        for (sample, attachment) in zip(Self.samples, ids) {
            let copy = try Self.read(folder, id, attachment, sample.ext)
            let original = Hex.encode(SHA256.hash(sample.bytes))
            let copyHash = Hex.encode(SHA256.hash(copy))
            #expect(copy.count == sample.bytes.count && copyHash != original, "\(sample.name)")
            #expect(LocationSamples.survivingCoordinates(copy) == [], "\(sample.name)")
            let format = ["jpg": "jpeg", "png": "png"][sample.ext] ?? "iso"
            #expect(LocationSamples.structureProblems(copy, format: format) == [], "\(sample.name)")
            if format != "iso" {
                let path = folder.appendingPathComponent("attachments/\(id)/\(attachment.prefix(12)).\(sample.ext)")
                if let decoded = try LocationSamples.pillowDecodesWithoutGPS(path.path) {
                    #expect(decoded, "Pillow decodes the stripped \(sample.name)")
                }
            }
            // The manifest states the copy and the original it stands for; so does export --json.
            #expect(
                manifest.contains(
                    "\"sha256\":\"\(copyHash)\",\"size\":\(copy.count),\"stripped\":{\"original_sha256\":\"\(original)\""
                ), "\(sample.name)")
            let item = try #require(reported.first { $0["attachment"] as? String == attachment })
            #expect(item["sha256"] as? String == copyHash && item["original_sha256"] as? String == original)
            #expect((item["removed"] as? [String])?.isEmpty == false)
            // The vault still holds the original, sealed: extract gives it back byte for byte.
            let out = scratch.path("extracted-\(sample.name)")
            _ = try cli.ok(["extract", id, attachment, "--out", out.path])
            #expect(Bytes(try Data(contentsOf: out)) == Bytes(sample.bytes), "\(sample.name)")
        }
        #expect(
            Bytes(try Self.read(folder, id, pdfID, "pdf")) == Bytes(pdf), "a PDF is not a photo: it travels as attached"
        )

        // Both verifiers accept it and say what each copy is.
        let verified = try cli.run(["bundle", "verify", bundle, "--identity", key], withVault: false)
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        let heicOriginal = Hex.encode(SHA256.hash(Self.samples[2].bytes))
        #expect(
            verified.stdout.contains("location-stripped copy (removed: exif-gps, xmp-location)")
                && verified.stdout.contains("its original's SHA-256 is \(heicOriginal) (sealed in custody"),
            "\(verified.stdout)")
        #expect(verified.stdout.contains(".pdf: the attached original, SHA-256 \(Hex.encode(SHA256.hash(pdf)))"))
        let verifiedJSON = try cli.run(["bundle", "verify", bundle, "--identity", key, "--json"], withVault: false)
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(verifiedJSON.stdout.utf8)) as? [String: Any])
        let records = try #require(report["records"] as? [[String: Any]])
        let attachments = try #require(records.first?["attachments"] as? [[String: Any]])
        #expect(attachments.count == 5 && attachments.filter { $0["stripped"] != nil }.count == 4)
        for age in [[bundle, "--identity", key], [folder.path]] {
            let python = try PythonVerifier.verify(age)
            #expect(python.status == 0, "\(python.stdout)\(python.stderr)")
            #expect(
                python.stdout.contains("is a location-stripped copy (removed: exif-gps, xmp-location)")
                    && python.stdout.contains("whose original's SHA-256 is \(heicOriginal) (sealed in custody)"),
                "\(python.stdout)")
        }

        // A changed byte of a stripped copy is named by both.
        let jpegPath = folder.appendingPathComponent("attachments/\(id)/\(ids[0].prefix(12)).jpg")
        var altered = try Self.read(folder, id, ids[0], "jpg")
        altered[altered.count - 10] ^= 0x01
        try Data(altered).write(to: jpegPath)
        let swift = try cli.run(["bundle", "verify", folder.path], withVault: false)
        #expect(swift.status == 65 && swift.stderr.contains("\(ids[0].prefix(12)).jpg was altered"), "\(swift.stderr)")
        let python = try PythonVerifier.verify([folder.path])
        #expect(python.status == 65 && python.stdout.contains("\(ids[0].prefix(12)).jpg"), "\(python.stdout)")
        // Putting the original back in place of the copy is caught too: the manifest states the copy.
        try Data(Self.samples[0].bytes).write(to: jpegPath)
        #expect(try cli.run(["bundle", "verify", folder.path], withVault: false).status == 65)
        #expect(try PythonVerifier.verify([folder.path]).status == 65)
    }

    /// The exporter (holding its signing key) states that a file is a stripped copy of an original custody does not
    /// hold, or calls the original a copy of another file: both verifiers refuse the bundle.
    @Test func aCopyThatClaimsAnOriginalCustodyDoesNotHoldIsRefusedByBoth() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok(["add", "statement", "--title", "Checkpoint photo"])
        try Data(LocationSamples.jpeg()).write(to: scratch.path("photo.jpg"))
        let attachment = try cli.ok(["attach", id, scratch.path("photo.jpg").path])
        let key = scratch.path("key.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("b.age").path
        _ = try cli.ok(["export", "--out", bundle, "--recipient", recipient, "--strip-location"])
        let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
        let archive = try BundleVerifier.open(
            Array(try Data(contentsOf: URL(fileURLWithPath: bundle))),
            identities: try AgeX25519Identity.parseAll(String(contentsOfFile: key, encoding: .utf8))
        ).archive

        func forge(_ name: String, _ edit: @escaping (JSONValue) -> JSONValue) throws -> String {
            let forged = try resignBundle(archive, signer: vault.keyring.device) { manifest in
                let records = (manifest["records"]?.arrayValue ?? []).map { record in
                    record.setting(
                        "attachments", to: .array((record["attachments"]?.arrayValue ?? []).map(edit)))
                }
                return manifest.setting("records", to: .array(records))
            }
            let path = scratch.path(name).path
            try writeAgeBundle(forged, to: URL(fileURLWithPath: path), recipient: recipient)
            return path
        }
        let otherHash = JSONValue.string(Hex.encode(SHA256.hash(Array("another photo".utf8))))
        let wrongOriginal = try forge("wrong-original.age") { item in
            let stripped = item["stripped"]?.setting("original_sha256", to: otherHash)
            return item.setting("stripped", to: stripped)
        }
        let wrongSize = try forge("wrong-size.age") { item in
            item.setting("stripped", to: item["stripped"]?.setting("original_size", to: .integer(5)))
        }
        // Dropping the statement: the copy now claims to be the original custody seals.
        let unstated = try forge("unstated.age") { $0.setting("stripped", to: nil) }
        for path in [wrongOriginal, wrongSize] {
            let swift = try cli.run(["bundle", "verify", path, "--identity", key], withVault: false)
            #expect(swift.status == 65, "\(swift.stderr)")
            #expect(
                swift.stderr.contains(
                    "attachment \(attachment.prefix(12)) claims to be a location-stripped copy of an original whose SHA-256 or size is not the one sealed in custody"
                ), "\(swift.stderr)")
            let python = try PythonVerifier.verify([path, "--identity", key])
            #expect(python.status == 65, "\(python.stdout)")
            #expect(python.stdout.contains("claims to be a location-stripped copy of an original"), "\(python.stdout)")
        }
        let swift = try cli.run(["bundle", "verify", unstated, "--identity", key], withVault: false)
        #expect(
            swift.status == 65 && swift.stderr.contains("is not the one its signed change states"), "\(swift.stderr)")
        #expect(try PythonVerifier.verify([unstated, "--identity", key]).status == 65)
        // The honest bundle verifies.
        #expect(try cli.run(["bundle", "verify", bundle, "--identity", key], withVault: false).status == 0)
    }

    /// A 3 MiB recording whose `moov` (with `©xyz`, `loci` and QuickTime location keys) comes after its media spans
    /// three chunks: the copy loses its location, keeps every media byte, and both verifiers accept it.
    @Test func aRecordingOfSeveralChunksWithItsMetadataLastIsStripped() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok(["add", "statement", "--title", "Recording at the checkpoint"])
        let video = LocationSamples.mp4(mdatSize: 3 << 20, moovLast: true)
        try Data(video).write(to: scratch.path("clip.mp4"))
        let attachment = try cli.ok(["attach", id, scratch.path("clip.mp4").path])
        #expect(try cli.ok(["attachments", id, "--json"]).contains("\"location_metadata\" : true"))
        let key = scratch.path("key.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("b.age").path
        let exported = try cli.run(["export", "--out", bundle, "--recipient", recipient, "--strip-location"])
        #expect(exported.status == 0 && exported.stderr.contains("Removed location metadata from 1 attached file"))
        let folder = try Self.open(bundle, key: key, into: scratch.path("opened"))
        let copy = try Self.read(folder, id, attachment, "mp4")
        #expect(copy.count == video.count && copy.prefix(3 << 20) == video.prefix(3 << 20))
        #expect(LocationSamples.survivingCoordinates(copy) == [])
        #expect(LocationSamples.structureProblems(copy, format: "iso") == [])
        #expect(try cli.run(["bundle", "verify", bundle, "--identity", key], withVault: false).status == 0)
        #expect(try PythonVerifier.verify([folder.path]).status == 0)
    }

    /// A photo whose EXIF the stripper cannot follow stops the export with one sentence, exit 65, and no file.
    @Test func aFileThatCannotBeStrippedStopsTheExportAndNothingIsWritten() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        cli.environment["AMANAT_BUNDLE_PASSPHRASE"] = "a long bundle passphrase for the lawyer"
        try cli.initialize()
        let id = try cli.ok(["add", "statement", "--title", "Broken photo"])
        var jpeg = LocationSamples.jpeg()
        // IFD0's offset (after SOI, APP1 marker and length, "Exif\0\0", the TIFF header's first 4 bytes) points far
        // outside the segment.
        jpeg.replaceSubrange(16..<20, with: [0x7F, 0, 0, 0])
        try Data(jpeg).write(to: scratch.path("broken.jpg"))
        _ = try cli.ok(["attach", id, scratch.path("broken.jpg").path])
        let out = scratch.path("b.age").path
        let refused = try cli.run(["export", "--out", out, "--passphrase", "--strip-location"])
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("cannot be stripped of its location: its EXIF IFD0 lies outside the EXIF block"),
            "\(refused.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: out) && !FileManager.default.fileExists(atPath: out + ".partial"))
        // Without the flag the file travels as attached.
        let plain = try cli.run(["export", "--out", out, "--passphrase"])
        #expect(plain.status == 0, "\(plain.stderr)")
    }

    /// A bundle with attachments written by the release before --strip-location (Tests/Fixtures/PreviousReleaseBundle)
    /// still verifies with both verifiers, its files reported as the attached originals.
    @Test func aBundleOfThePreviousReleaseStillVerifies() throws {
        let fixture = repositoryRoot.appendingPathComponent("Tests/Fixtures/PreviousReleaseBundle")
        let bundle = fixture.appendingPathComponent("bundle.age").path
        let key = fixture.appendingPathComponent("key.txt").path
        let vault = try String(contentsOf: fixture.appendingPathComponent("vault.txt"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let scratch = try Scratch()
        let cli = scratch.runner()
        let swift = try cli.run(
            ["bundle", "verify", bundle, "--identity", key, "--expect-vault", vault, "--json"], withVault: false)
        #expect(swift.status == 0, "\(swift.stdout)\(swift.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(swift.stdout.utf8)) as? [String: Any])
        let records = try #require(report["records"] as? [[String: Any]])
        let attachments = try #require(records.first?["attachments"] as? [[String: Any]])
        #expect(attachments.count == 2 && attachments.allSatisfy { $0["stripped"] == nil }, "\(attachments)")
        let text = try cli.run(["bundle", "verify", bundle, "--identity", key], withVault: false)
        #expect(text.status == 0 && text.stdout.contains(".jpg: the attached original, SHA-256"), "\(text.stdout)")
        let python = try PythonVerifier.verify([bundle, "--identity", key, "--expect-vault", vault])
        #expect(python.status == 0 && python.stdout.contains(".jpg is the attached original"), "\(python.stdout)")
    }

    static func open(_ bundle: String, key: String, into folder: URL) throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (status, _) = try shell("age -d -i '\(key)' '\(bundle)' | tar x -C '\(folder.path)'")
        #expect(status == 0)
        return folder
    }

    static func read(_ folder: URL, _ record: String, _ attachment: String, _ ext: String) throws -> [UInt8] {
        Array(
            try Data(contentsOf: folder.appendingPathComponent("attachments/\(record)/\(attachment.prefix(12)).\(ext)"))
        )
    }
}
