/// Looks for identifying metadata in photos and videos (Protocol/attachments.md §6): GPS location and the device that
/// made the file, in EXIF (JPEG APP1, PNG eXIf, HEIC Exif items), XMP packets and MP4/QuickTime atoms.
///
/// It reads the first and the last chunk of a file, where these formats keep their metadata (a JPEG's APP1 segment,
/// a HEIC's meta box, an MP4's moov atom at either end), so memory stays one chunk however large the file.
public final class MetadataScanner {
    private var first: [UInt8] = []
    private var last: [UInt8] = []
    private var lastIndex = -1

    /// A scanner.
    public init() {}

    /// Feeds chunk `index` (in order).
    public func feed(_ chunk: [UInt8], _ index: Int) {
        if index == 0 { first = chunk } else { last = chunk }
        lastIndex = index
    }

    /// The flags (``AttachmentSpec/locationFlag``, ``AttachmentSpec/deviceFlag``) for a file of `mediaType`:
    /// always 0 for types other than images and videos.
    public func flags(mediaType: String) -> UInt8 {
        guard mediaType.hasPrefix("image/") || mediaType.hasPrefix("video/") else { return 0 }
        return Self.scan(first) | (lastIndex > 0 ? Self.scan(last) : 0)
    }

    static let locationPatterns: [[UInt8]] = [
        Array("GPSLatitude".utf8), Array("GPSLongitude".utf8), [0xA9] + Array("xyz".utf8),
        Array("com.apple.quicktime.location.ISO6709".utf8),
    ]
    static let devicePatterns: [[UInt8]] = [
        Array("tiff:Make".utf8), Array("tiff:Model".utf8), [0xA9] + Array("mak".utf8), [0xA9] + Array("mod".utf8),
        Array("com.apple.quicktime.make".utf8), Array("com.apple.quicktime.model".utf8),
        Array("com.android.manufacturer".utf8), Array("com.android.model".utf8),
    ]

    /// The flags found in `bytes`.
    static func scan(_ bytes: [UInt8]) -> UInt8 {
        var flags: UInt8 = 0
        if locationPatterns.contains(where: { contains(bytes, $0) }) { flags |= AttachmentSpec.locationFlag }
        if devicePatterns.contains(where: { contains(bytes, $0) }) { flags |= AttachmentSpec.deviceFlag }
        // EXIF: a TIFF structure after "Exif\0\0" (JPEG, HEIC) or as the data of a PNG eXIf chunk.
        for marker in [Array("Exif".utf8) + [0, 0], Array("eXIf".utf8)] {
            var from = 0
            while let at = index(of: marker, in: bytes, from: from) {
                flags |= tiffFlags(bytes, start: at + marker.count)
                from = at + 1
            }
        }
        return flags
    }

    /// Reads IFD0 of the TIFF structure at `start`: tag 0x8825 (GPS IFD) means location, 0x010F/0x0110 (Make, Model)
    /// the device. Every offset is checked against the bytes before it is used.
    static func tiffFlags(_ b: [UInt8], start: Int) -> UInt8 {
        guard start >= 0, start + 8 <= b.count else { return 0 }
        let little: Bool
        if b[start] == 0x49 && b[start + 1] == 0x49 && b[start + 2] == 42 && b[start + 3] == 0 {
            little = true
        } else if b[start] == 0x4D && b[start + 1] == 0x4D && b[start + 2] == 0 && b[start + 3] == 42 {
            little = false
        } else {
            return 0
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= b.count else { return nil }
            return little ? Int(b[at]) | Int(b[at + 1]) << 8 : Int(b[at]) << 8 | Int(b[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let hi = u16(little ? at + 2 : at), let lo = u16(little ? at : at + 2) else { return nil }
            return hi << 16 | lo
        }
        guard let offset = u32(start + 4), offset < b.count, let count = u16(start + offset) else { return 0 }
        var flags: UInt8 = 0
        for entry in 0..<min(count, 512) {
            guard let tag = u16(start + offset + 2 + entry * 12) else { break }
            if tag == 0x8825 { flags |= AttachmentSpec.locationFlag }
            if tag == 0x010F || tag == 0x0110 { flags |= AttachmentSpec.deviceFlag }
        }
        return flags
    }

    static func contains(_ bytes: [UInt8], _ pattern: [UInt8]) -> Bool { index(of: pattern, in: bytes, from: 0) != nil }

    static func index(of pattern: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard let first = pattern.first, bytes.count >= pattern.count else { return nil }
        return bytes.withUnsafeBufferPointer { b in
            pattern.withUnsafeBufferPointer { p in
                var i = from
                let end = b.count - p.count
                while i <= end {
                    if b[i] == first {
                        var j = 1
                        while j < p.count && b[i + j] == p[j] { j += 1 }
                        if j == p.count { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}
