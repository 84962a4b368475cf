@testable import AmanatCore
import AmanatTestSupport
import Foundation
import Testing

/// The streaming location stripper of `export --strip-location` (Protocol/attachments.md §9), format by format, on
/// files built byte by byte: the coordinates are gone, the size is the same, the file still parses, and hostile or
/// truncated files end in a clear ``LocationStripper/Failure`` or an unchanged-length copy, never a crash or a hang.
@Suite struct LocationStripperTests {
    /// Strips `bytes` fed in pieces of `piece` bytes.
    static func strip(_ bytes: [UInt8], _ mediaType: String, piece: Int = 1 << 20) throws -> (
        [UInt8], Set<LocationStripper.Removed>
    ) {
        let stripper = try #require(LocationStripper(mediaType: mediaType, size: UInt64(bytes.count)))
        var out: [UInt8] = []
        var at = 0
        while at < bytes.count {
            let end = min(at + piece, bytes.count)
            out += try stripper.feed(Array(bytes[at..<end]))
            at = end
        }
        out += try stripper.finish()
        return (out, stripper.removed)
    }

    /// What the attach scanner finds in `bytes` (one chunk).
    static func scannerFlags(_ bytes: [UInt8], _ mediaType: String) -> UInt8 {
        let scanner = MetadataScanner()
        scanner.feed(bytes, 0)
        return scanner.flags(mediaType: mediaType)
    }

    static let samples: [(name: String, mediaType: String, bytes: [UInt8], removed: Set<LocationStripper.Removed>)] = [
        ("jpeg", "image/jpeg", LocationSamples.jpeg(), [.exifGPS, .xmpLocation]),
        ("png", "image/png", LocationSamples.png(), [.exifGPS, .xmpLocation]),
        ("heic", "image/heic", LocationSamples.heic(), [.exifGPS, .xmpLocation]),
        ("mp4", "video/mp4", LocationSamples.mp4(), [.quicktimeXYZ, .loci, .quicktimeLocationKey, .xmpLocation]),
    ]

    @Test(arguments: 0..<4) func eachFormatLosesItsCoordinatesAndKeepsItsSize(_ index: Int) throws {
        let sample = Self.samples[index]
        #expect(MediaType.sniff(Array(sample.bytes.prefix(64))) == sample.mediaType, "\(sample.name)")
        #expect(Self.scannerFlags(sample.bytes, sample.mediaType) & AttachmentSpec.locationFlag != 0)
        #expect(!LocationSamples.survivingCoordinates(sample.bytes).isEmpty)
        #expect(LocationSamples.structureProblems(sample.bytes, format: sample.name) == [], "\(sample.name)")
        if sample.name == "jpeg" || sample.name == "png" {
            // The check can fail: Pillow finds the GPS IFD of the original.
            let dir = try TemporaryDirectory(prefix: "strip")
            try Data(sample.bytes).write(to: dir.path("original"))
            #expect(try LocationSamples.pillowDecodesWithoutGPS(dir.path("original").path) != true)
        }
        let (stripped, removed) = try Self.strip(sample.bytes, sample.mediaType)
        #expect(stripped.count == sample.bytes.count, "\(sample.name): same length")
        #expect(LocationSamples.survivingCoordinates(stripped) == [], "\(sample.name)")
        #expect(Self.scannerFlags(stripped, sample.mediaType) & AttachmentSpec.locationFlag == 0, "\(sample.name)")
        #expect(removed == sample.removed, "\(sample.name): \(removed)")
        // Device metadata is not location: it stays (the threat model says so).
        #expect(LocationSamples.contains(stripped, Array(LocationSamples.make.utf8)), "\(sample.name)")
        // Any chunking gives the same bytes: the stripper keeps structures that cross chunk boundaries whole.
        for piece in [1, 3, 7, 64, 509, 4096] {
            #expect(
                try Self.strip(sample.bytes, sample.mediaType, piece: piece).0 == stripped, "\(sample.name) \(piece)")
        }
        // Stripping twice changes nothing more.
        let (again, removedAgain) = try Self.strip(stripped, sample.mediaType)
        #expect(again == stripped && removedAgain.isEmpty, "\(sample.name): \(removedAgain)")
        try Self.expectWellFormed(stripped, sample.name)
    }

    /// A 40 MiB video whose `moov` comes after its media, fed in 1 MiB chunks: the stripper holds about one chunk,
    /// never the file, and the media bytes come out untouched.
    @Test func aLargeVideoStreamsThroughInBoundedMemory() throws {
        let video = LocationSamples.mp4(mdatSize: 40 << 20, moovLast: true)
        let stripper = try #require(LocationStripper(mediaType: "video/mp4", size: UInt64(video.count)))
        var out: [UInt8] = []
        out.reserveCapacity(video.count)
        var at = 0
        while at < video.count {
            let end = min(at + (1 << 20), video.count)
            out += try stripper.feed(Array(video[at..<end]))
            at = end
        }
        out += try stripper.finish()
        #expect(out.count == video.count)
        #expect(stripper.peakHeld <= 2 << 20, "held \(stripper.peakHeld) bytes")
        #expect(out[0..<(40 << 20)] == video[0..<(40 << 20)], "the media passes through unchanged")
        #expect(LocationSamples.survivingCoordinates(Array(out.suffix(8192))) == [])
        #expect(stripper.removed == [.quicktimeXYZ, .loci, .quicktimeLocationKey, .xmpLocation])
        // A large JPEG (its entropy-coded data padded out) streams the same way.
        var jpeg = LocationSamples.jpeg()
        let image = jpeg.count - 2
        jpeg.insert(contentsOf: [UInt8](repeating: 0x5A, count: 8 << 20), at: image)
        let big = try #require(LocationStripper(mediaType: "image/jpeg", size: UInt64(jpeg.count)))
        var total = 0
        at = 0
        while at < jpeg.count {
            let end = min(at + (1 << 20), jpeg.count)
            total += try big.feed(Array(jpeg[at..<end])).count
            at = end
        }
        total += try big.finish().count
        #expect(total == jpeg.count && big.peakHeld <= 2 << 20 && big.removed == [.exifGPS, .xmpLocation])
    }

    @Test func aFileWithoutLocationComesOutUnchanged() throws {
        let (jpeg, removed) = try Self.strip(LocationSamples.plainJPEG, "image/jpeg", piece: 100)
        #expect(jpeg == LocationSamples.plainJPEG && removed.isEmpty)
        var png = LocationSamples.png()
        png = Self.dropPNGChunks(png, ["eXIf", "iTXt"])
        let (plain, none) = try Self.strip(png, "image/png")
        #expect(plain == png && none.isEmpty)
        #expect(LocationStripper(mediaType: "application/pdf", size: 10) == nil)
        #expect(LocationStripper(mediaType: "audio/ogg", size: 10) == nil)
    }

    @Test func theEXIFGPSIFDIsZeroedAndItsPointerRemovedFromIFD0() throws {
        var tiff = LocationSamples.exifTIFF()
        let stripper = try #require(LocationStripper(mediaType: "image/jpeg", size: 0))
        #expect(try stripper.stripTIFF(&tiff))
        // IFD0 now holds Make and Model only, followed by a next-IFD offset of 0 and 12 zero bytes.
        #expect(Array(tiff[8..<10]) == [0, 2])
        #expect(Array(tiff[10..<12]) == [0x01, 0x0F] && Array(tiff[22..<24]) == [0x01, 0x10])
        #expect(tiff[34..<50].allSatisfy { $0 == 0 })
        #expect(MetadataScannerProbe.tiffFlags(tiff) & AttachmentSpec.locationFlag == 0)
        #expect(LocationSamples.survivingCoordinates(tiff) == [])
        #expect(tiff.count == LocationSamples.exifTIFF().count)
    }

    // MARK: Hostile and truncated input

    /// Every prefix of every sample: a clear failure or a copy of the same length without coordinates.
    @Test(arguments: 0..<4) func aTruncatedFileFailsClearlyOrKeepsNoCoordinate(_ index: Int) throws {
        let sample = Self.samples[index]
        for length in 0..<sample.bytes.count {
            let prefix = Array(sample.bytes.prefix(length))
            do {
                let (out, _) = try Self.strip(prefix, sample.mediaType, piece: 97)
                #expect(out.count == prefix.count, "\(sample.name) cut at \(length)")
                #expect(
                    LocationSamples.survivingCoordinates(out).filter { !$0.hasPrefix("GPS") } == [],
                    "\(sample.name) cut at \(length)")
            } catch let failure as LocationStripper.Failure {
                #expect(!failure.reason.isEmpty)
            }
        }
    }

    /// Random byte changes (replayable from the printed seed): never a crash, a hang or a copy of another length.
    @Test(arguments: 0..<4) func randomlyDamagedFilesNeverCrashTheStripper(_ index: Int) throws {
        let sample = Self.samples[index]
        let seed = UInt64.random(in: 1...UInt64.max)
        print("LocationStripperTests \(sample.name) seed \(seed)")
        var rng = SeededGenerator(seed: seed)
        for _ in 0..<400 {
            var bytes = sample.bytes
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[at] =
                    [0, 0xFF, 1, 0x7F, UInt8.random(in: 0...255, using: &rng)][Int.random(in: 0..<5, using: &rng)]
            }
            do {
                let (out, _) = try Self.strip(bytes, sample.mediaType, piece: 211)
                #expect(out.count == bytes.count, "seed \(seed)")
            } catch is LocationStripper.Failure {}
        }
    }

    @Test func hostileBoxSizesAreRefusedOrHandled() throws {
        let ftyp = LocationSamples.box("ftyp", Array("isom".utf8) + [0, 0, 0, 0])
        func strip(_ bytes: [UInt8]) -> Result<[UInt8], LocationStripper.Failure> {
            Result { try Self.strip(bytes, "video/mp4", piece: 5).0 }.mapError { $0 as! LocationStripper.Failure }
        }
        // Size 0: the box runs to the end of the file (its container); a `©xyz` of size 0 is freed to the end.
        let xyzToEnd = ftyp + [0, 0, 0, 0, 0xA9] + Array("xyz+34.5553+069.2075/".utf8)
        let freed = try strip(xyzToEnd).get()
        #expect(freed.count == xyzToEnd.count && LocationSamples.survivingCoordinates(freed) == [])
        // Size 1 with a 64-bit size below 16, or beyond the file; sizes 2 to 7; a 32-bit size beyond the file.
        let bad: [[UInt8]] = [
            ftyp + [0, 0, 0, 1] + Array("mdat".utf8) + [0, 0, 0, 0, 0, 0, 0, 8],
            ftyp + [0, 0, 0, 1] + Array("mdat".utf8) + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ftyp + [0, 0, 0, 3] + Array("mdat".utf8),
            ftyp + [0xFF, 0xFF, 0xFF, 0xF0] + Array("moov".utf8) + [0, 0, 0, 0],
            ftyp + LocationSamples.box("moov", [0, 0, 0, 200] + Array("udta".utf8)),
        ]
        for bytes in bad {
            guard case .failure(let failure) = strip(bytes) else {
                Issue.record("accepted \(bytes)")
                continue
            }
            #expect(failure.reason.contains("size") || failure.reason.contains("box"), "\(failure.reason)")
        }
        // Containers nested 40 deep.
        var nested: [UInt8] = []
        for _ in 0..<40 { nested = LocationSamples.box("moov", nested) }
        guard case .failure(let deep) = strip(ftyp + nested) else {
            Issue.record("40 nested boxes accepted")
            return
        }
        #expect(deep.reason.contains("nest"))
        // A `meta` box larger than the limit is refused before it is gathered.
        let huge = ftyp + LocationSamples.be32(UInt32(LocationStripper.maximumBlock + 100)) + Array("meta".utf8)
        let stripper = try #require(LocationStripper(mediaType: "video/mp4", size: UInt64(huge.count + 16 << 20)))
        #expect(throws: LocationStripper.Failure.self) { _ = try stripper.feed(huge) }
    }

    @Test func hostileEXIFIsRefusedOrStrippedWithoutReadingOutside() throws {
        let stripper = try #require(LocationStripper(mediaType: "image/jpeg", size: 0))
        // IFD0 outside the block, or claiming 65535 entries.
        var outside = LocationSamples.exifTIFF()
        outside.replaceSubrange(4..<8, with: [0x7F, 0xFF, 0xFF, 0xF0])
        #expect(throws: LocationStripper.Failure.self) { _ = try stripper.stripTIFF(&outside) }
        var many = LocationSamples.exifTIFF()
        many.replaceSubrange(8..<10, with: [0xFF, 0xFF])
        #expect(throws: LocationStripper.Failure.self) { _ = try stripper.stripTIFF(&many) }
        var notTIFF: [UInt8] = Array("IJ*\u{0}xxxxxxxx".utf8)
        #expect(throws: LocationStripper.Failure.self) { _ = try stripper.stripTIFF(&notTIFF) }
        // A GPS pointer outside the block, or a GPS IFD that is IFD0 itself (a loop): the pointer is removed, no read
        // goes outside, and it ends.
        for pointer: [UInt8] in [[0xFF, 0xFF, 0xFF, 0x00], [0, 0, 0, 8]] {
            var tiff = LocationSamples.exifTIFF()
            // The GPS entry is IFD0's third: 8 + 2 + 2 × 12, value at +8.
            tiff.replaceSubrange(42..<46, with: pointer)
            let count = tiff.count
            #expect(try stripper.stripTIFF(&tiff))
            #expect(tiff.count == count && MetadataScannerProbe.tiffFlags(tiff) & AttachmentSpec.locationFlag == 0)
        }
        // A GPS IFD whose values point outside the block or overflow.
        var values = LocationSamples.exifTIFF()
        let gps = 62  // 8 + IFD0 (2 + 3 × 12 + 4) + "ExampleCam\0" and a pad byte
        values.replaceSubrange(
            gps + 2 + 12 + 4..<gps + 2 + 12 + 12, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0])
        #expect(try stripper.stripTIFF(&values))
        // A JPEG whose APP1 length is below 2, or that is no JPEG at all.
        #expect(throws: LocationStripper.Failure.self) {
            _ = try Self.strip([0xFF, 0xD8, 0xFF, 0xE1, 0, 1, 0, 0], "image/jpeg")
        }
        #expect(throws: LocationStripper.Failure.self) { _ = try Self.strip(Array("not a jpeg".utf8), "image/jpeg") }
        // A PNG chunk claiming 4 GiB.
        let png = Array(LocationSamples.png().prefix(8)) + [0xFF, 0xFF, 0xFF, 0xFF] + Array("eXIf".utf8)
        #expect(throws: LocationStripper.Failure.self) { _ = try Self.strip(png, "image/png") }
    }

    @Test func hostileHEICItemLocationsAreRefused() throws {
        let heic = LocationSamples.heic()
        // The iloc box: find it and point the Exif item beyond the file, or before the meta box.
        let iloc = try #require(Self.find(Array("iloc".utf8), in: heic))
        // version/flags (4), sizes (2), count (2); item 2 is the second of 14-byte items.
        let exifOffset = iloc + 4 + 4 + 2 + 2 + 14 + 6
        for offset: [UInt8] in [[0xFF, 0xFF, 0xFF, 0x00], [0, 0, 0, 4]] {
            var bytes = heic
            bytes.replaceSubrange(exifOffset..<exifOffset + 4, with: offset)
            #expect(throws: LocationStripper.Failure.self) { _ = try Self.strip(bytes, "image/heic", piece: 33) }
        }
        // An iloc field size of 3 bytes.
        var sizes = heic
        sizes[iloc + 8] = 0x34
        #expect(throws: LocationStripper.Failure.self) { _ = try Self.strip(sizes, "image/heic") }
        // An XMP property without an end tag is blanked to the end of its block, never kept.
        var xmp = Array("<x><exif:GPSLatitude>34,33.3180N and more".utf8)
        let stripper = try #require(LocationStripper(mediaType: "image/jpeg", size: 0))
        stripper.blankXMP(&xmp)
        #expect(String(decoding: xmp, as: UTF8.self) == "<x>" + String(repeating: " ", count: xmp.count - 3))
    }

    // MARK: Helpers

    static func find(_ pattern: [UInt8], in bytes: [UInt8]) -> Int? {
        guard pattern.count <= bytes.count else { return nil }
        return (0...(bytes.count - pattern.count)).first { Array(bytes[$0..<$0 + pattern.count]) == pattern }
    }

    static func dropPNGChunks(_ png: [UInt8], _ types: Set<String>) -> [UInt8] {
        var out = Array(png.prefix(8))
        var at = 8
        while at + 12 <= png.count {
            let length = Int(png[at]) << 24 | Int(png[at + 1]) << 16 | Int(png[at + 2]) << 8 | Int(png[at + 3])
            let type = String(decoding: png[at + 4..<at + 8], as: UTF8.self)
            if !types.contains(type) { out += png[at..<at + 12 + length] }
            at += 12 + length
        }
        return out
    }

    /// Checks the structure of a stripped file and, where Pillow is installed, that it decodes the JPEG and PNG.
    static func expectWellFormed(_ bytes: [UInt8], _ name: String) throws {
        #expect(LocationSamples.structureProblems(bytes, format: name) == [], "\(name)")
        guard name == "jpeg" || name == "png" else { return }
        let dir = try TemporaryDirectory(prefix: "strip")
        let file = dir.path("stripped.\(name)")
        try Data(bytes).write(to: file)
        if let decoded = try LocationSamples.pillowDecodesWithoutGPS(file.path) {
            #expect(decoded, "Pillow opens the stripped \(name) and finds no GPS IFD")
        }
    }
}

/// The attach scanner's EXIF check, on a TIFF structure alone.
enum MetadataScannerProbe {
    static func tiffFlags(_ tiff: [UInt8]) -> UInt8 {
        let scanner = MetadataScanner()
        scanner.feed(Array("Exif".utf8) + [0, 0] + tiff, 0)
        return scanner.flags(mediaType: "image/jpeg")
    }
}
