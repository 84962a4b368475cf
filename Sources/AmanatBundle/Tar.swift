/// A minimal POSIX ustar archive writer and a strict reader (Protocol/bundle.md §2).
///
/// Only regular files with relative, normalised paths of at most 100 bytes are written or accepted, so an
/// archive can never write outside the folder it is extracted to.
public struct TarArchive: Sendable, Equatable {
    /// One file of the archive.
    public struct Entry: Sendable, Equatable {
        /// The relative path, such as `records/3f9a….json`.
        public var path: String
        /// The file's bytes.
        public var contents: [UInt8]

        /// Creates an entry.
        public init(path: String, contents: [UInt8]) {
            self.path = path
            self.contents = contents
        }
    }

    /// The files, in archive order.
    public var entries: [Entry] = []

    /// An empty archive.
    public init() {}

    /// Adds a file.
    public mutating func add(_ path: String, _ contents: [UInt8]) {
        entries.append(Entry(path: path, contents: contents))
    }

    /// The file at `path`, if present. Paths are compared as UTF-8 bytes, never up to Unicode canonical equivalence
    /// (Swift's `==` on strings): `é` and `e` + U+0301 are two files, as they are on disk and to any other reader.
    public func file(_ path: String) -> [UInt8]? { entries.first { $0.path.utf8.elementsEqual(path.utf8) }?.contents }

    /// Whether `path` is safe to write under a folder: relative, no `.` or `..` parts, no empty parts, ≤ 100 bytes.
    public static func isSafePath(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return !path.isEmpty && path.utf8.count <= 100 && !path.hasPrefix("/")
            && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && !path.unicodeScalars.contains { $0.value < 0x20 || $0 == "\\" }
    }

    /// The 512-byte ustar header of a regular file (Protocol/bundle.md §2).
    public static func header(path: String, size: Int, modificationTime: Int = 0) -> [UInt8] {
        precondition(isSafePath(path), "unsafe tar path")
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (i, b) in text.utf8.prefix(width).enumerated() { header[offset + i] = b }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            put(
                String(repeating: "0", count: max(0, width - 1 - String(value, radix: 8).count))
                    + String(value, radix: 8), at: offset, width: width - 1)
        }
        put(path, at: 0, width: 100)
        octal(0o644, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(modificationTime, at: 136, width: 12)
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        put("amanat", at: 265, width: 32)
        put("amanat", at: 297, width: 32)
        for i in 148..<156 { header[i] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        put(
            String(repeating: "0", count: 6 - String(sum, radix: 8).count) + String(sum, radix: 8), at: 148,
            width: 6)
        header[154] = 0
        header[155] = UInt8(ascii: " ")
        return header
    }

    /// The ustar bytes: a 512-byte header per file, contents padded to 512, then two zero blocks.
    public func encoded(modificationTime: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(1024) { $0 + 512 + ($1.contents.count + 511) / 512 * 512 })
        for entry in entries {
            out += Self.header(path: entry.path, size: entry.contents.count, modificationTime: modificationTime)
            out += entry.contents
            out += [UInt8](repeating: 0, count: (512 - entry.contents.count % 512) % 512)
        }
        out += [UInt8](repeating: 0, count: 1024)
        return out
    }

    /// Parses ustar bytes strictly; bytes after the end-of-archive marker must all be zero (Padmé padding).
    public init(decoding bytes: [UInt8]) throws {
        func fail(_ why: String) -> BundleError {
            BundleError(.malformedArchive, "The bundle's archive is malformed: \(why).")
        }
        var offset = 0
        while true {
            guard offset + 512 <= bytes.count else { throw fail("it ends before its end-of-archive marker") }
            let header = Array(bytes[offset..<offset + 512])
            if header.allSatisfy({ $0 == 0 }) {
                guard bytes[offset...].allSatisfy({ $0 == 0 }) else {
                    throw fail("data follows the end-of-archive marker")
                }
                return
            }
            var sum = 0
            for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let stored = Self.octal(header[148..<156]), stored == sum else {
                throw fail("a header checksum is wrong")
            }
            // Exactly the forms bundle.md §2 names (magic `ustar\0`, type `0`), as every other reader checks them: a
            // GNU magic or an old-style NUL type is refused, so no archive verifies here and fails elsewhere.
            guard Array(header[257..<263]) == Array("ustar".utf8) + [0] else {
                throw fail("it is not a ustar archive")
            }
            guard header[156] == UInt8(ascii: "0") else { throw fail("it holds something other than plain files") }
            guard header[345..<500].allSatisfy({ $0 == 0 }) else { throw fail("it uses long path prefixes") }
            let nameBytes = header[0..<100].prefix { $0 != 0 }
            guard header[nameBytes.count..<100].allSatisfy({ $0 == 0 }) else {
                throw fail("a file name holds bytes after its end")
            }
            guard let path = String(validating: Array(nameBytes), as: UTF8.self), Self.isSafePath(path) else {
                throw fail("a file has an unsafe path")
            }
            guard let size = Self.octal(header[124..<136]), size >= 0 else { throw fail("a file size is unreadable") }
            let start = offset + 512
            guard size <= bytes.count - start else { throw fail("a file is truncated") }
            guard !entries.contains(where: { $0.path.utf8.elementsEqual(path.utf8) }) else {
                throw fail("\(path) appears twice")
            }
            entries.append(Entry(path: path, contents: Array(bytes[start..<start + size])))
            offset = start + (size + 511) / 512 * 512
        }
    }

    /// A numeric field: optional leading spaces, octal digits, then only NUL or space to the end of the field (so
    /// nothing after a terminator is silently ignored, and a sign, prefix or separator is refused).
    private static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        let rest = field.drop { $0 == UInt8(ascii: " ") }
        let digits = rest.prefix { (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }
        guard !digits.isEmpty, digits.count <= 20,
            rest.dropFirst(digits.count).allSatisfy({ $0 == 0 || $0 == UInt8(ascii: " ") })
        else {
            return nil
        }
        return Int(String(decoding: digits, as: UTF8.self), radix: 8)
    }
}

/// Padmé padding (Nikitin et al., 2019): the padded length leaks at most O(log log L) bits of the length L.
public enum Padme {
    /// The length `length` is padded to.
    public static func paddedLength(_ length: Int) -> Int {
        guard length > 2 else { return length }
        let e = Int.bitWidth - 1 - length.leadingZeroBitCount  // floor(log2 L)
        let s = Int.bitWidth - 1 - e.leadingZeroBitCount + 1  // floor(log2 E) + 1
        let lastBits = e - s
        let mask = (1 << lastBits) - 1
        return (length + mask) & ~mask
    }
}
