/// The media type of a file, from its first bytes (magic numbers), never from its name (Protocol/attachments.md §5).
public enum MediaType {
    /// The type of a file that begins with `head` (at least the first 16 bytes, when the file has them).
    public static func sniff(_ head: [UInt8]) -> String {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<offset + magic.count]) == magic
        }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts(Array("%PDF-".utf8)) { return "application/pdf" }
        if starts(Array("OggS".utf8)) { return "audio/ogg" }
        if starts(Array("RIFF".utf8)) && starts(Array("WAVE".utf8), at: 8) { return "audio/wav" }
        if starts(Array("ftyp".utf8), at: 4), head.count >= 12 {
            let brand = String(decoding: head[8..<12], as: UTF8.self)
            switch brand {
            case "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1": return "image/heic"
            case "qt  ": return "video/quicktime"
            case "M4A ", "M4B ": return "audio/mp4"
            default: return "video/mp4"
            }
        }
        if starts(Array("ID3".utf8)) { return "audio/mpeg" }
        if head.count >= 2 && head[0] == 0xFF && (head[1] & 0xE0) == 0xE0 && (head[1] & 0x06) != 0 {
            return "audio/mpeg"
        }
        return "application/octet-stream"
    }
}
