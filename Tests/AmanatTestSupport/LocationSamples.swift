import AmanatCore
import Foundation

/// Photos and videos with location metadata, built byte by byte as cameras and phones write them, for the tests of
/// `export --strip-location`: a JPEG with an EXIF GPS IFD and an XMP packet, a PNG with an eXIf chunk and an XMP iTXt
/// chunk, a HEIC-like ISO file whose Exif and XMP items sit in `mdat`, and an MP4 with `©xyz`, `loci`, QuickTime
/// location keys and an XMP `uuid` box. Every coordinate is one of ``coordinateTexts`` or ``gpsRationals``, so a test
/// can check that none survives.
public enum LocationSamples {
    /// The coordinates as text (XMP, `©xyz`, QuickTime keys), each of which must be gone after stripping.
    public static let coordinateTexts = ["34,33.3180N", "69,12.4500E", "+34.5553+069.2075/", "34.555300", "69.207500"]
    /// The EXIF GPS latitude, as its three rationals are stored (34/1, 33/1, 1908/100), big-endian.
    public static let gpsRationals: [UInt8] = [
        0, 0, 0, 34, 0, 0, 0, 1, 0, 0, 0, 33, 0, 0, 0, 1, 0, 0, 0x07, 0x74, 0, 0, 0, 100,
    ]
    /// A camera serial that stays (device metadata is not stripped).
    public static let make = "ExampleCam"

    /// A 16×16 baseline JPEG (as Pillow writes it), without metadata.
    public static let plainJPEG: [UInt8] = hex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d",
        "283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb004301111212181518",
        "2f1a1a2f63423842636363636363636363636363636363636363636363636363636363636363636363636363636363636363",
        "6363636363636363ffc00011080010001003012200021101031101ffc4001f00000105010101010101000000000000000001",
        "02030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114",
        "328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53545556",
        "5758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5",
        "b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f010003",
        "0101010101010101010000000000000102030405060708090a0bffc400b51100020102040403040705040400010277000102",
        "031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35",
        "363738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495",
        "969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9ea",
        "f2f3f4f5f6f7f8f9faffda000c03010002110311003f00c7a28a2b84fa83ffd9"
    )

    /// A TIFF structure (big-endian) with IFD0 {Make, Model, GPS pointer} and a GPS IFD {latitude ref, latitude,
    /// longitude ref, longitude, altitude}.
    public static func exifTIFF() -> [UInt8] {
        var t: [UInt8] = [0x4D, 0x4D, 0, 42, 0, 0, 0, 8]
        let ifd0Entries = 3
        let ifd0Size = 2 + ifd0Entries * 12 + 4
        let makeOffset = 8 + ifd0Size
        let make = Array((Self.make + "\0").utf8)
        let model = Array("X1\0".utf8)
        let gpsOffset = makeOffset + make.count + 1  // one pad byte keeps it even
        t += be16(UInt16(ifd0Entries))
        t += entry(0x010F, 2, UInt32(make.count), UInt32(makeOffset))
        t += [0x01, 0x10, 0, 2, 0, 0, 0, 3] + model + [0]
        t += entry(0x8825, 4, 1, UInt32(gpsOffset))
        t += [0, 0, 0, 0]
        t += make + [0]
        let gpsEntries = 5
        let values = gpsOffset + 2 + gpsEntries * 12 + 4
        t += be16(UInt16(gpsEntries))
        t += [0, 1, 0, 2, 0, 0, 0, 2, 0x4E, 0, 0, 0]  // GPSLatitudeRef "N"
        t += entry(2, 5, 3, UInt32(values))
        t += [0, 3, 0, 2, 0, 0, 0, 2, 0x45, 0, 0, 0]  // GPSLongitudeRef "E"
        t += entry(4, 5, 3, UInt32(values + 24))
        t += entry(6, 5, 1, UInt32(values + 48))
        t += [0, 0, 0, 0]
        t += gpsRationals
        t += [0, 0, 0, 69, 0, 0, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0x11, 0x6A, 0, 0, 0, 100]
        t += [0, 0, 0x06, 0xD3, 0, 0, 0, 1]  // altitude 1747 m
        return t
    }

    /// An XMP packet naming the place as attributes and as elements.
    public static func xmp() -> [UInt8] {
        Array(
            """
            <?xpacket begin="\u{FEFF}" id="W5M0MpCehiHzreSzNTczkc9d"?>
            <x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
            <rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" \
            xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" \
            exif:GPSLatitude="34,33.3180N" exif:GPSLongitude="69,12.4500E" tiff:Make="\(make)" \
            photoshop:City="Kabul">
            <exif:GPSAltitude>1747/1</exif:GPSAltitude>
            <photoshop:Country>Afghanistan</photoshop:Country>
            <exif:GPSProcessingMethod><rdf:Alt><rdf:li xml:lang="x-default">34.555300 69.207500</rdf:li></rdf:Alt>\
            </exif:GPSProcessingMethod>
            </rdf:Description></rdf:RDF></x:xmpmeta>
            <?xpacket end="w"?>
            """.utf8)
    }

    /// A JPEG: SOI, an EXIF APP1 with the GPS IFD, an XMP APP1, then the plain JPEG's segments and image.
    public static func jpeg() -> [UInt8] {
        let exif = Array("Exif".utf8) + [0, 0] + exifTIFF()
        let xmpHeader = Array("http://ns.adobe.com/xap/1.0/".utf8) + [0]
        let xmpBody = xmpHeader + xmp()
        return [0xFF, 0xD8] + [0xFF, 0xE1] + be16(UInt16(exif.count + 2)) + exif + [0xFF, 0xE1]
            + be16(UInt16(xmpBody.count + 2)) + xmpBody + plainJPEG.dropFirst(2)
    }

    /// A 4×2 greyscale PNG with an eXIf chunk (the TIFF of ``exifTIFF()``) and an XMP iTXt chunk.
    public static func png() -> [UInt8] {
        var p: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        p += pngChunk("IHDR", be32(4) + be32(2) + [8, 0, 0, 0, 0])
        p += pngChunk("eXIf", exifTIFF())
        p += pngChunk("iTXt", Array("XML:com.adobe.xmp".utf8) + [0, 0, 0, 0, 0] + xmp())
        // Two filtered scanlines in one stored (uncompressed) deflate block.
        let raw: [UInt8] = [0, 10, 80, 160, 250, 0, 250, 160, 80, 10]
        var adlerA: UInt32 = 1
        var adlerB: UInt32 = 0
        for b in raw {
            adlerA = (adlerA + UInt32(b)) % 65521
            adlerB = (adlerB + adlerA) % 65521
        }
        let zlib: [UInt8] =
            [0x78, 0x01, 0x01] + [UInt8(raw.count), 0, ~UInt8(raw.count), 0xFF] + raw + be32(adlerB << 16 | adlerA)
        p += pngChunk("IDAT", zlib)
        p += pngChunk("IEND", [])
        return p
    }

    /// A HEIC-like ISO file: `ftyp` heic, a `meta` whose `iinf` and `iloc` place an image item, an Exif item and an
    /// XMP item in `mdat`.
    public static func heic() -> [UInt8] {
        let ftyp = box("ftyp", Array("heic".utf8) + [0, 0, 0, 0] + Array("mif1heic".utf8))
        let exifItem = [0, 0, 0, 6] + Array("Exif".utf8) + [0, 0] + exifTIFF()
        let xmpItem = xmp()
        let image = [UInt8](repeating: 0x5A, count: 300)
        func infe(_ id: UInt16, _ type: String, _ extra: [UInt8] = []) -> [UInt8] {
            box("infe", [2, 0, 0, 0] + be16(id) + [0, 0] + Array(type.utf8) + [0] + extra)
        }
        let iinf = box(
            "iinf",
            [0, 0, 0, 0] + be16(3) + infe(1, "hvc1") + infe(2, "Exif")
                + infe(3, "mime", Array("application/rdf+xml".utf8) + [0]))
        let hdlr = box("hdlr", [0, 0, 0, 0, 0, 0, 0, 0] + Array("pict".utf8) + [UInt8](repeating: 0, count: 12) + [0])
        let pitm = box("pitm", [0, 0, 0, 0] + be16(1))
        // iloc version 0: offset and length of 4 bytes, no base offset; the offsets are filled in below.
        func iloc(_ offsets: [UInt32]) -> [UInt8] {
            let lengths = [image.count, exifItem.count, xmpItem.count]
            var body: [UInt8] = [0, 0, 0, 0, 0x44, 0x00] + be16(3)
            for i in 0..<3 {
                body += be16(UInt16(i + 1)) + be16(0) + be16(1) + be32(offsets[i]) + be32(UInt32(lengths[i]))
            }
            return box("iloc", body)
        }
        let metaSize = box("meta", [0, 0, 0, 0] + hdlr + pitm + iloc([0, 0, 0]) + iinf).count
        let mdatData = ftyp.count + metaSize + 8
        let offsets = [
            UInt32(mdatData), UInt32(mdatData + image.count), UInt32(mdatData + image.count + exifItem.count),
        ]
        let meta = box("meta", [0, 0, 0, 0] + hdlr + pitm + iloc(offsets) + iinf)
        return ftyp + meta + box("mdat", image + exifItem + xmpItem)
    }

    /// An MP4: `ftyp`, `moov` with `mvhd`, a `trak` and a `udta` holding `©xyz`, `loci` and a QuickTime `meta`
    /// (keys: location and make), an XMP `uuid` box, and `mdat`.
    public static func mp4() -> [UInt8] { mp4(mdatSize: 2000, moovLast: false) }

    /// The MP4 of ``mp4()`` with `mdatSize` bytes of media, and its `moov` after `mdat` when `moovLast` (as phones
    /// write a recording they could not size in advance).
    public static func mp4(mdatSize: Int, moovLast: Bool) -> [UInt8] {
        let ftyp = box("ftyp", Array("isom".utf8) + [0, 0, 2, 0] + Array("isomiso2mp41".utf8))
        let mvhd = box("mvhd", [UInt8](repeating: 0, count: 100))
        let xyzText = Array("+34.5553+069.2075/".utf8)
        let xyz = box("\u{A9}xyz", be16(UInt16(xyzText.count)) + be16(0x15C7) + xyzText)
        let loci = box(
            "loci",
            [0, 0, 0, 0] + be16(0x15C7) + Array("Kabul".utf8) + [0, 0] + be32(0x0022_8E2D) + be32(0x0045_3521)
                + be32(1747) + Array("Earth".utf8) + [0, 0])
        let keyLocation = Array("com.apple.quicktime.location.ISO6709".utf8)
        let keyMake = Array("com.apple.quicktime.make".utf8)
        let keys = box(
            "keys",
            [0, 0, 0, 0] + be32(2) + be32(UInt32(keyLocation.count + 8)) + Array("mdta".utf8) + keyLocation
                + be32(UInt32(keyMake.count + 8)) + Array("mdta".utf8) + keyMake)
        func item(_ index: UInt32, _ text: String) -> [UInt8] {
            var b = be32(UInt32(8 + 16 + text.utf8.count)) + be32(index)
            b += box("data", be32(1) + be32(0) + Array(text.utf8))
            return b
        }
        let ilst = box("ilst", item(1, "+34.5553+069.2075+1747.000/") + item(2, make))
        let hdlr = box("hdlr", [0, 0, 0, 0, 0, 0, 0, 0] + Array("mdta".utf8) + [UInt8](repeating: 0, count: 12) + [0])
        let meta = box("meta", hdlr + keys + ilst)
        let trak = box("trak", box("tkhd", [UInt8](repeating: 0, count: 84)))
        let moov = box("moov", mvhd + trak + box("udta", xyz + loci) + meta)
        let uuid = box("uuid", xmpUUID + xmp())
        var media = [UInt8](repeating: 0xA9, count: mdatSize)
        for i in stride(from: 0, to: mdatSize, by: 4093) { media[i] = UInt8(truncatingIfNeeded: i / 4093) }
        let mdat = box("mdat", media)
        return moovLast ? ftyp + mdat + uuid + moov : ftyp + moov + uuid + mdat
    }

    static let xmpUUID: [UInt8] = [
        0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC,
    ]

    /// An ISO box: size, type, contents.
    public static func box(_ type: String, _ body: [UInt8]) -> [UInt8] {
        be32(UInt32(body.count + 8)) + type.unicodeScalars.map { UInt8($0.value) } + body
    }

    /// A PNG chunk with its CRC.
    public static func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + data
        return be32(UInt32(data.count)) + typed + be32(crc32(typed))
    }

    /// CRC-32 as PNG computes it.
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }

    static func entry(_ tag: UInt16, _ type: UInt16, _ count: UInt32, _ value: UInt32) -> [UInt8] {
        be16(tag) + be16(type) + be32(count) + be32(value)
    }

    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    public static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    static func hex(_ parts: String...) -> [UInt8] {
        let text = Array(parts.joined().utf8)
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        return stride(from: 0, to: text.count, by: 2).map { nibble(text[$0]) << 4 | nibble(text[$0 + 1]) }
    }

    /// Whether `pattern` occurs in `bytes`.
    public static func contains(_ bytes: [UInt8], _ pattern: [UInt8]) -> Bool {
        guard pattern.count <= bytes.count else { return false }
        for i in 0...(bytes.count - pattern.count) where bytes[i] == pattern[0] {
            if Array(bytes[i..<i + pattern.count]) == pattern { return true }
        }
        return false
    }

    /// The location texts or EXIF GPS values still found in `bytes`.
    public static func survivingCoordinates(_ bytes: [UInt8]) -> [String] {
        var found = coordinateTexts.filter { contains(bytes, Array($0.utf8)) }
        if contains(bytes, gpsRationals) { found.append("EXIF GPS latitude rationals") }
        for name in ["GPSLatitude", "GPSLongitude", "GPSAltitude", "Kabul", "Afghanistan", "location.ISO6709"]
        where contains(bytes, Array(name.utf8)) {
            found.append(name)
        }
        return found
    }

    /// What is wrong with the structure of a (stripped) file, if anything: JPEG segments leading to the image and an
    /// end marker, PNG chunks with valid CRCs from IHDR to IEND, ISO boxes whose sizes add up (into moov, trak, udta).
    public static func structureProblems(_ bytes: [UInt8], format: String) -> [String] {
        var problems: [String] = []
        func u32(_ at: Int) -> Int {
            Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        }
        switch format {
        case "jpeg":
            guard bytes.count > 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return ["no JPEG start"] }
            var at = 2
            while at + 4 <= bytes.count, bytes[at] == 0xFF, bytes[at + 1] != 0xDA {
                at += 2 + (Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]))
            }
            if !(at + 1 < bytes.count && bytes[at] == 0xFF && bytes[at + 1] == 0xDA) {
                problems.append("the JPEG segments do not lead to the image")
            }
            if Array(bytes.suffix(2)) != [0xFF, 0xD9] { problems.append("no JPEG end marker") }
        case "png":
            var at = 8
            var types: [String] = []
            while at + 12 <= bytes.count {
                let length = u32(at)
                guard at + 12 + length <= bytes.count else { break }
                let typed = Array(bytes[at + 4..<at + 8 + length])
                if Array(bytes[at + 8 + length..<at + 12 + length]) != be32(crc32(typed)) {
                    problems.append("the CRC of a PNG chunk is wrong")
                }
                types.append(String(decoding: typed.prefix(4), as: UTF8.self))
                at += 12 + length
            }
            if at != bytes.count || types.first != "IHDR" || types.last != "IEND" {
                problems.append("the PNG chunks are \(types)")
            }
        default:
            func walk(_ from: Int, _ to: Int) {
                var at = from
                while at + 8 <= to {
                    let size = u32(at)
                    let type = String(bytes[at + 4..<at + 8].map { Character(Unicode.Scalar($0)) })
                    guard size >= 8, at + size <= to else {
                        problems.append("box \(type) at \(at) overflows")
                        return
                    }
                    if ["moov", "udta", "trak"].contains(type) { walk(at + 8, at + size) }
                    at += size
                }
                if at != to { problems.append("the boxes do not fill \(from)..<\(to)") }
            }
            walk(0, bytes.count)
        }
        return problems
    }

    /// Whether Pillow (Debian's python3-pil, installed by Scripts/setup.sh) decodes the image at `path` and finds no
    /// GPS IFD in it; nil where Pillow is not installed.
    public static func pillowDecodesWithoutGPS(_ path: String) throws -> Bool? {
        func python(_ code: String, _ args: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", code] + args
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), try python("import PIL", []) == 0 else {
            return nil
        }
        let code =
            "import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.load(); "
            + "sys.exit(0 if im.size[0] > 0 and 34853 not in im.getexif() else 1)"
        return try python(code, [path]) == 0
    }
}
