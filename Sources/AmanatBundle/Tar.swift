import AmanatCrypto
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// A minimal POSIX ustar archive writer and a strict reader (Protocol/bundle.md §2).
///
/// Only regular files with relative, normalised paths of at most 100 bytes are written or accepted, so an
/// archive can never write outside the folder it is extracted to.
public struct TarArchive: Sendable, Equatable {
    /// One file of the archive.
    public struct Entry: Sendable, Equatable {
        /// The relative path, such as `records/3f9a….json`.
        public var path: String
        /// The file's bytes; empty when the file was read as a ``Summary`` only.
        public var contents: [UInt8]
        /// For a file read without keeping its bytes (an attachment: ``Decoder``), its SHA-256 and size.
        public var summary: Summary?

        /// Creates an entry.
        public init(path: String, contents: [UInt8]) {
            self.path = path
            self.contents = contents
        }

        /// Creates an entry known by its SHA-256 and size alone.
        public init(path: String, summary: Summary) {
            self.path = path
            self.contents = []
            self.summary = summary
        }

        /// The file's size in bytes.
        public var size: Int { summary?.size ?? contents.count }
        /// The file's SHA-256.
        public var sha256: [UInt8] { summary?.sha256 ?? SHA256.hash(contents) }
    }

    /// What is kept of a file read without its bytes: enough to verify it against a manifest.
    public struct Summary: Sendable, Equatable {
        /// The SHA-256 of the file's bytes.
        public var sha256: [UInt8]
        /// Its size in bytes.
        public var size: Int

        /// Creates a summary.
        public init(sha256: [UInt8], size: Int) {
            self.sha256 = sha256
            self.size = size
        }
    }

    private var files: [Entry] = []
    /// Where the first file of each path is in `files`, by the path's UTF-8 bytes: a look-up is one hash, so that
    /// reading or verifying an archive of many files is not a scan of all of them for each (a hostile bundle of a
    /// hundred thousand files made both quadratic).
    private var positions: [[UInt8]: Int] = [:]

    /// The files, in archive order. Setting them indexes them again; ``add(_:_:)`` appends in constant time.
    public var entries: [Entry] {
        get { files }
        set {
            files = []
            positions = [:]
            for entry in newValue { append(entry) }
        }
    }

    /// An empty archive.
    public init() {}

    /// Adds a file.
    public mutating func add(_ path: String, _ contents: [UInt8]) { append(Entry(path: path, contents: contents)) }

    /// Appends `entry`; a path already present keeps pointing at its first file.
    mutating func append(_ entry: Entry) {
        let key = Array(entry.path.utf8)
        if positions[key] == nil { positions[key] = files.count }
        files.append(entry)
    }

    /// The file at `path`, if present. Paths are compared as UTF-8 bytes, never up to Unicode canonical equivalence
    /// (Swift's `==` on strings): `é` and `e` + U+0301 are two files, as they are on disk and to any other reader.
    /// A file read as a ``Summary`` has no bytes here: nil.
    public func file(_ path: String) -> [UInt8]? { entry(path).flatMap { $0.summary == nil ? $0.contents : nil } }

    /// The entry at `path`, if present (paths compared as UTF-8 bytes, as in ``file(_:)``).
    public func entry(_ path: String) -> Entry? { positions[Array(path.utf8)].map { files[$0] } }

    /// Whether `path` is safe to write under a folder: relative, no `.` or `..` parts, no empty parts, ≤ 100 bytes.
    public static func isSafePath(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        return !path.isEmpty && path.utf8.count <= 100 && !path.hasPrefix("/")
            && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && !path.unicodeScalars.contains { $0.value < 0x20 || $0 == "\\" }
    }

    /// The largest size written as eleven octal digits and a NUL, as ustar writers usually do (8 GiB − 1).
    public static let largestTerminatedSize = 0o77777777777
    /// The largest size a header holds: twelve octal digits, the whole field (64 GiB − 1).
    public static let largestSize = 0o777777777777

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
        if size > largestTerminatedSize {
            // Twelve digits filling the field, no terminator: what GNU tar, bsdtar and Python read for files of
            // 8 GiB and more, up to ``largestSize`` (Protocol/bundle.md §2).
            precondition(size <= largestSize, "a file too large for a ustar size field")
            put(String(size, radix: 8), at: 124, width: 12)
        } else {
            octal(size, at: 124, width: 12)
        }
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
        var decoder = Decoder()
        try decoder.feed(bytes[...])
        self = try decoder.finish()
    }

    /// The most bytes of a bundle's documents (its files outside `attachments/`, which are read whole to be checked)
    /// a reader keeps in memory: a quarter of what this process may use — the machine's memory, or less when
    /// `ulimit -d` or `ulimit -v` says so — and never less than 64 MiB. A crafted bundle with a document of many
    /// gigabytes is then refused with one sentence instead of exhausting the memory (Protocol/bundle.md §7).
    public static let documentBudget: Int = {
        var limit = UInt64(max(sysconf(Int32(_SC_PHYS_PAGES)), 0)) &* UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 0))
        if limit == 0 { limit = UInt64(Int.max) }
        #if os(Linux)
            for resource in [RLIMIT_DATA, RLIMIT_AS] {
                var bound = rlimit()
                if getrlimit(__rlimit_resource_t(resource.rawValue), &bound) == 0, bound.rlim_cur != rlim_t.max {
                    limit = min(limit, UInt64(bound.rlim_cur))
                }
            }
            // A container's or a systemd unit's memory limit (cgroup v2), which the machine's memory does not show.
            if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
                let bytes = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                limit = min(limit, bytes)
            }
        #else
            for resource in [RLIMIT_DATA, RLIMIT_AS] {
                var bound = rlimit()
                if getrlimit(resource, &bound) == 0, bound.rlim_cur != RLIM_INFINITY {
                    limit = min(limit, UInt64(bound.rlim_cur))
                }
            }
        #endif
        return Int(clamping: max(limit / 4, 64 << 20))
    }()

    /// What each file costs against ``documentBudget`` besides its contents (its header, path and index entry): a
    /// bundle of a million empty files must not be free.
    static let entryCost = 512

    /// The refusal of a bundle whose documents pass `limit` bytes.
    static func tooLarge(_ limit: Int) -> BundleError {
        BundleError(
            .tooLarge,
            "The bundle's documents (its files outside attachments/) are larger than the \(limit >> 20) MiB this machine lets amanat hold to check them; nothing was written. Check it on a machine with more memory."
        )
    }

    /// What a ``Decoder`` tells its sink about a file it reads without keeping its bytes.
    public enum Event {
        /// A file begins.
        case start(path: String, size: Int)
        /// The next bytes of that file.
        case bytes(ArraySlice<UInt8>)
        /// The file ended (after all its bytes).
        case end
    }

    /// A strict ustar reader fed the archive piece by piece, so that an archive never has to be held whole: the
    /// files `summarising` selects (a bundle's attachments, which may be gigabytes) are hashed as they pass and
    /// kept as a ``Summary``, their bytes handed to `sink` (which may write them to a file) and then dropped. Every
    /// other file is kept in memory. It accepts and refuses exactly what ``init(decoding:)`` does.
    public struct Decoder {
        private let summarising: (String) -> Bool
        private let sink: ((Event) throws -> Void)?
        private let documentLimit: Int
        /// Bytes of the files kept in memory so far (every file but those `summarising` selects).
        private var documentBytes = 0
        private var archive = TarArchive()
        private var header: [UInt8] = []
        /// The file being read: its path, size, bytes still to come, and its bytes or its hasher.
        private var file: (path: String, size: Int, remaining: Int, contents: [UInt8], hasher: SHA256.Hasher?)?
        /// Bytes of padding after the last file still to skip.
        private var padding = 0
        /// Whether the end-of-archive marker's first block was read: everything after it must be zero.
        private var ended = false
        /// Zero bytes read after that block: the marker's second block and the padding.
        private var zerosAfterEnd = 0

        /// A decoder keeping every file in memory except those `summarising` selects, whose bytes go to `sink`.
        /// At most `documentLimit` bytes of those files are kept: a file that would pass it stops the reading at its
        /// header, before any of its bytes are held (``TarArchive/documentBudget`` by default).
        public init(
            summarising: @escaping (String) -> Bool = { _ in false }, sink: ((Event) throws -> Void)? = nil,
            documentLimit: Int = TarArchive.documentBudget
        ) {
            self.summarising = summarising
            self.sink = sink
            self.documentLimit = documentLimit
        }

        private static func fail(_ why: String) -> BundleError {
            BundleError(.malformedArchive, "The bundle's archive is malformed: \(why).")
        }

        /// Reads the next bytes of the archive.
        public mutating func feed(_ bytes: ArraySlice<UInt8>) throws {
            var rest = bytes
            while !rest.isEmpty {
                if ended {
                    guard rest.allSatisfy({ $0 == 0 }) else {
                        throw Self.fail("data follows the end-of-archive marker")
                    }
                    zerosAfterEnd += rest.count
                    return
                }
                if var current = file {
                    file = nil  // so that `current.contents` grows in place, not copied at every piece
                    let part = rest.prefix(current.remaining)
                    rest = rest.dropFirst(part.count)
                    current.remaining -= part.count
                    if let hasher = current.hasher {
                        part.withUnsafeBytes { hasher.update($0) }
                        try sink?(.bytes(part))
                    } else {
                        current.contents += part
                    }
                    file = current
                    if current.remaining == 0 { try endFile() }
                    continue
                }
                if padding > 0 {
                    let skipped = min(padding, rest.count)
                    rest = rest.dropFirst(skipped)
                    padding -= skipped
                    continue
                }
                let part = rest.prefix(512 - header.count)
                rest = rest.dropFirst(part.count)
                header += part
                if header.count == 512 { try startFile() }
            }
        }

        /// The archive, once every byte was fed; throws if it ended early.
        public mutating func finish() throws -> TarArchive {
            guard file == nil else { throw Self.fail("a file is truncated") }
            // The marker is two zero blocks (bundle.md §2): one, then the end of the data, is an archive cut short.
            guard ended, zerosAfterEnd >= 512 else { throw Self.fail("it ends before its end-of-archive marker") }
            return archive
        }

        private mutating func startFile() throws {
            let header = self.header
            self.header = []
            if header.allSatisfy({ $0 == 0 }) {
                ended = true
                return
            }
            var sum = 0
            for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let stored = TarArchive.octal(header[148..<156]), stored == sum else {
                throw Self.fail("a header checksum is wrong")
            }
            // Exactly the forms bundle.md §2 names (magic `ustar\0`, type `0`), as every other reader checks them: a
            // GNU magic or an old-style NUL type is refused, so no archive verifies here and fails elsewhere.
            guard Array(header[257..<263]) == Array("ustar".utf8) + [0] else {
                throw Self.fail("it is not a ustar archive")
            }
            guard header[156] == UInt8(ascii: "0") else { throw Self.fail("it holds something other than plain files") }
            guard header[345..<500].allSatisfy({ $0 == 0 }) else { throw Self.fail("it uses long path prefixes") }
            let nameBytes = header[0..<100].prefix { $0 != 0 }
            guard header[nameBytes.count..<100].allSatisfy({ $0 == 0 }) else {
                throw Self.fail("a file name holds bytes after its end")
            }
            guard let path = String(validating: Array(nameBytes), as: UTF8.self), TarArchive.isSafePath(path) else {
                throw Self.fail("a file has an unsafe path")
            }
            guard let size = TarArchive.octal(header[124..<136]), size >= 0 else {
                throw Self.fail("a file size is unreadable")
            }
            guard archive.entry(path) == nil else { throw Self.fail("\(path) appears twice") }
            let summarised = summarising(path)
            let cost = TarArchive.entryCost + path.utf8.count + (summarised ? 0 : size)
            guard cost <= documentLimit - documentBytes else { throw TarArchive.tooLarge(documentLimit) }
            documentBytes += cost
            if summarised { try sink?(.start(path: path, size: size)) }
            file = (path, size, size, [], summarised ? SHA256.Hasher() : nil)
            if size == 0 { try endFile() }
        }

        private mutating func endFile() throws {
            guard let current = file else { return }
            file = nil
            padding = (512 - current.size % 512) % 512
            if let hasher = current.hasher {
                try sink?(.end)
                archive.append(
                    Entry(path: current.path, summary: Summary(sha256: hasher.finalize(), size: current.size)))
            } else {
                archive.append(Entry(path: current.path, contents: current.contents))
            }
        }
    }

    /// A numeric field: optional leading spaces, octal digits, then only NUL or space to the end of the field (so
    /// nothing after a terminator is silently ignored, and a sign, prefix or separator is refused).
    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
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
