@testable import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

/// Protocol/vectors/strip-v1.json: what `export --strip-location` makes of each sample file (its bytes and SHA-256,
/// Protocol/attachments.md §9), and manifest attachment items with a `stripped` statement that a reader must accept
/// or refuse (Protocol/bundle.md §4.1). `AMANAT_WRITE_VECTORS=1 swift test --filter StripVectorTests` rewrites it;
/// Scripts/verify-bundle-vectors.py checks the same file with the independent verifier.
struct StripVectorFile: Codable, Equatable {
    struct File: Codable, Equatable {
        var name: String
        var media_type: String
        var original_hex: String
        var original_sha256: String
        var stripped_hex: String
        var stripped_sha256: String
        var removed: [String]
        var coordinates: [String]
    }

    struct Item: Codable, Equatable {
        var name: String
        var json: String
    }

    var description: String
    var files: [File]
    var record: String
    var valid: [Item]
    var invalid: [Item]
}

@Suite struct StripVectorTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Protocol/vectors")
    static let record = String(repeating: "3a", count: 16)
    static let attachment = "6bd93994f41b8b51844940d7b5bd5b8c"
    static let originalHash = Hex.encode(SHA256.hash(Array("original".utf8)))
    static let copyHash = Hex.encode(SHA256.hash(Array("copy".utf8)))

    static func item(_ stripped: String?) -> String {
        let base =
            "{\"attachment\":\"\(attachment)\",\"path\":\"attachments/\(record)/\(attachment.prefix(12)).jpg\",\"sha256\":\"\(copyHash)\",\"size\":1000"
        return base + (stripped.map { ",\"stripped\":\($0)" } ?? "") + "}"
    }

    static func produced() throws -> StripVectorFile {
        var files: [StripVectorFile.File] = []
        for sample in LocationStripperTests.samples {
            let (stripped, removed) = try LocationStripperTests.strip(sample.bytes, sample.mediaType)
            files.append(
                .init(
                    name: sample.name, media_type: sample.mediaType, original_hex: Hex.encode(sample.bytes),
                    original_sha256: Hex.encode(SHA256.hash(sample.bytes)), stripped_hex: Hex.encode(stripped),
                    stripped_sha256: Hex.encode(SHA256.hash(stripped)), removed: removed.sorted().map(\.rawValue),
                    coordinates: LocationSamples.coordinateTexts.filter {
                        LocationSamples.contains(sample.bytes, Array($0.utf8))
                    }))
        }
        let good = "{\"original_sha256\":\"\(originalHash)\",\"original_size\":1000,"
        return StripVectorFile(
            description:
                "Location stripping (Protocol/attachments.md §9, `amanat export --strip-location`): each sample file, the copy this version makes of it (same length, no coordinate left: `coordinates` lists the texts that must be gone) with both SHA-256s and what was removed; and attachment items of a manifest record (Protocol/bundle.md §4.1) with a `stripped` statement, for record `record`, that a reader accepts (`valid`) or refuses (`invalid`).",
            files: files, record: record,
            valid: [
                .init(name: "an original", json: item(nil)),
                .init(name: "a stripped copy", json: item(good + "\"removed\":[\"exif-gps\",\"xmp-location\"]}")),
                .init(
                    name: "every name removed",
                    json: item(
                        good
                            + "\"removed\":[\"3gpp-loci\",\"exif-gps\",\"quicktime-location-key\",\"quicktime-xyz\",\"xmp-location\",\"xmp-packet\"]}"
                    )),
            ],
            invalid: [
                .init(name: "nothing removed", json: item(good + "\"removed\":[]}")),
                .init(name: "an unknown removed name", json: item(good + "\"removed\":[\"faces\"]}")),
                .init(name: "removed not sorted", json: item(good + "\"removed\":[\"xmp-location\",\"exif-gps\"]}")),
                .init(name: "removed twice", json: item(good + "\"removed\":[\"exif-gps\",\"exif-gps\"]}")),
                .init(
                    name: "no original_size",
                    json: item("{\"original_sha256\":\"\(originalHash)\",\"removed\":[\"exif-gps\"]}")),
                .init(
                    name: "an original_sha256 of 31 bytes",
                    json: item(
                        "{\"original_sha256\":\"\(originalHash.dropLast(2))\",\"original_size\":1000,\"removed\":[\"exif-gps\"]}"
                    )),
                .init(name: "an unknown member", json: item(good + "\"removed\":[\"exif-gps\"],\"why\":\"x\"}")),
                .init(name: "stripped is not an object", json: item("true")),
            ])
    }

    @Test func theVectorFileMatchesTheCode() throws {
        let produced = try Self.produced()
        let url = Self.directory.appendingPathComponent("strip-v1.json")
        if ProcessInfo.processInfo.environment["AMANAT_WRITE_VECTORS"] == "1" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            var data = try encoder.encode(produced)
            data.append(0x0a)
            try data.write(to: url, options: .atomic)
        }
        let file = try JSONDecoder().decode(StripVectorFile.self, from: Data(contentsOf: url))
        #expect(file == produced, "Protocol/vectors/strip-v1.json is stale: rerun with AMANAT_WRITE_VECTORS=1")
        for f in file.files {
            #expect(!f.coordinates.isEmpty && f.original_hex.count == f.stripped_hex.count, "\(f.name)")
        }
    }

    /// The manifest reader accepts exactly the valid items (and the canonical bytes of each are what it writes back).
    @Test func theManifestReaderAcceptsExactlyTheValidItems() throws {
        let file = try Self.produced()
        let device = String(repeating: "ab", count: 32)
        func manifest(_ item: String) -> String {
            "{\"devices\":[{\"chain\":\"chains/\(device).bin\",\"device\":\"\(device)\",\"links\":1}],\"exported_at_ms\":0,\"exported_by\":\"\(device)\",\"files\":[],\"format\":\"amanat-bundle/2\",\"membership\":\"membership.json\",\"records\":[{\"attachments\":[\(item)],\"changes\":[],\"custody\":\"custody/\(file.record).json\",\"id\":\"\(file.record)\",\"kind\":\"statement\",\"record\":\"records/\(file.record).json\"}],\"vault_id\":\"\(String(repeating: "cd", count: 16))\"}"
        }
        for item in file.valid {
            let text = manifest(item.json)
            let parsed = try BundleManifest(json: try JSONValue.parseCanonical(Array(text.utf8)))
            #expect(parsed.json.canonical == Array(text.utf8), "\(item.name)")
            let a = try #require(parsed.records.first?.attachments.first)
            #expect((a.stripped == nil) == (item.name == "an original"), "\(item.name)")
        }
        for item in file.invalid {
            #expect(throws: DocumentError.self, "\(item.name)") {
                _ = try BundleManifest(json: try JSONValue.parseCanonical(Array(manifest(item.json).utf8)))
            }
        }
    }
}
