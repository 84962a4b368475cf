/// Removes location metadata from a photo or video as it streams past (Protocol/attachments.md §9), for
/// `amanat export --strip-location`.
///
/// Every edit keeps the length of what it changes, so no offset in the file moves and the copy has exactly the
/// size of the original: the EXIF GPS IFD is zeroed and its pointer removed from IFD0 (JPEG APP1, PNG eXIf, HEIC
/// Exif items), GPS and location properties of XMP packets are overwritten with spaces, and MP4/QuickTime/HEIC
/// location boxes (`©xyz`, `loci`, QuickTime `com.apple.quicktime.location.*` items) become `free` boxes of the same
/// size with zeroed contents. Memory holds one chunk plus at most one metadata block of up to ``maximumBlock``
/// bytes, whatever the file's size.
///
/// ```swift
/// let stripper = LocationStripper(mediaType: "image/jpeg", size: info.size)!
/// for chunk in chunks { write(try stripper.feed(chunk)) }
/// write(try stripper.finish())
/// ```
///
/// A file whose structure the stripper cannot follow (truncated, offsets outside the file, a block larger than
/// ``maximumBlock``, an unclosed XMP property) throws ``Failure``: the caller refuses to export it rather than send a
/// copy that may still carry a location.
public final class LocationStripper {
    /// Why a file cannot be stripped, as one sentence's end ("its EXIF block is truncated").
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
        init(_ reason: String) { self.reason = reason }
    }

    /// What was removed, as the bundle names it (Protocol/bundle.md §4.1 `stripped.removed`).
    public enum Removed: String, Sendable, CaseIterable, Comparable {
        /// The EXIF GPS IFD (tag 0x8825) and the values it points to.
        case exifGPS = "exif-gps"
        /// GPS and location properties of an XMP packet.
        case xmpLocation = "xmp-location"
        /// A whole XMP box too large to edit in memory, turned into a `free` box.
        case xmpPacket = "xmp-packet"
        /// A QuickTime `©xyz` box.
        case quicktimeXYZ = "quicktime-xyz"
        /// A 3GPP `loci` box.
        case loci = "3gpp-loci"
        /// QuickTime metadata items whose key is `com.apple.quicktime.location.*`.
        case quicktimeLocationKey = "quicktime-location-key"

        public static func < (a: Removed, b: Removed) -> Bool { a.rawValue < b.rawValue }
    }

    /// The largest metadata block (JPEG segment, PNG chunk, `meta` box, XMP box, HEIC Exif item) held in memory to be
    /// edited: 16 MiB.
    public static let maximumBlock = 16 << 20

    /// The media types it strips: JPEG, PNG, HEIC and the ISO base media formats (MP4, QuickTime, M4A).
    public static let mediaTypes: Set<String> = [
        "image/jpeg", "image/png", "image/heic", "video/mp4", "video/quicktime", "audio/mp4",
    ]

    /// What was removed so far.
    public private(set) var removed: Set<Removed> = []
    /// The most bytes it held at once (after taking a piece): one piece plus at most one metadata block.
    public private(set) var peakHeld = 0

    enum Format { case jpeg, png, isobmff }

    private let format: Format
    private let size: UInt64
    /// Bytes received and not yet given back; `pending[0]` is at file offset `base`.
    private var pending: [UInt8] = []
    private var head = 0
    private var base: UInt64 = 0
    private var out: [UInt8] = []
    /// Bytes to give back unchanged, or as zeros, before parsing goes on.
    private var skip: UInt64 = 0
    private var zero: UInt64 = 0
    /// Nothing more to parse: the rest is given back as it is.
    private var passing = false
    /// The parser waits for the rest of a metadata block it must edit.
    private var awaiting = false
    // JPEG
    private enum JPEGState { case start, markers, entropy, afterEnd }
    private var jpeg = JPEGState.start
    // PNG
    private var pngStarted = false
    // ISO BMFF: the ends of the boxes the walker is inside, innermost last, and HEIC items to edit later in the file.
    private var containers: [UInt64] = []
    private var regions: [(start: UInt64, length: UInt64, kind: ItemKind)] = []

    enum ItemKind { case exif, xmp }

    /// A stripper for a file of `mediaType` and `size` bytes; nil for a type it does not strip.
    public init?(mediaType: String, size: UInt64) {
        switch mediaType {
        case "image/jpeg": format = .jpeg
        case "image/png": format = .png
        case "image/heic", "video/mp4", "video/quicktime", "audio/mp4": format = .isobmff
        default: return nil
        }
        self.size = size
    }

    /// Takes the next bytes of the file and gives back the stripped bytes that are ready (fewer while a metadata
    /// block is being gathered, more when one completes).
    public func feed(_ bytes: [UInt8]) throws -> [UInt8] {
        if head > 0 && head >= pending.count / 2 {
            pending.removeFirst(head)
            head = 0
        }
        pending += bytes
        peakHeld = max(peakHeld, pending.count - head)
        try run(final: false)
        defer { out.removeAll(keepingCapacity: true) }
        return out
    }

    /// Gives back what is left at the end of the file; throws if the file ends inside a block that had to be edited.
    public func finish() throws -> [UInt8] {
        try run(final: true)
        if available > 0 {
            // Bytes the parser waited for but that never completed a structure: given back only if nothing in them
            // looks like location metadata.
            let rest = Array(pending[head...])
            if awaiting || MetadataScanner.scan(rest) & AttachmentSpec.locationFlag != 0 {
                throw Failure("it ends inside a metadata block that carries a location")
            }
            emit(available)
        }
        if !regions.isEmpty { throw Failure("its HEIC metadata names an item this version cannot reach") }
        defer { out.removeAll() }
        return out
    }

    // MARK: - The byte queue

    private var available: Int { pending.count - head }

    private func emit(_ n: Int) {
        out.append(contentsOf: pending[head..<head + n])
        head += n
        base += UInt64(n)
    }

    private func emitZeros(_ n: Int) {
        out.append(contentsOf: repeatElement(0, count: n))
        head += n
        base += UInt64(n)
    }

    /// Gives back `block` (edited) in place of the next `block.count` bytes.
    private func emit(edited block: [UInt8]) {
        out.append(contentsOf: block)
        head += block.count
        base += UInt64(block.count)
    }

    private func block(_ n: Int) -> [UInt8] { Array(pending[head..<head + n]) }

    private func byte(_ i: Int) -> UInt8 { pending[head + i] }

    private func be(_ i: Int, _ n: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<n { v = v << 8 | UInt64(pending[head + i + k]) }
        return v
    }

    /// What a parsing step needs.
    private enum Step {
        /// Parsed something; go on.
        case progress
        /// Needs this many bytes available.
        case need(Int)
    }

    private func run(final: Bool) throws {
        while true {
            // A HEIC item that starts here is gathered and edited, whatever the walker is passing over.
            if let region = regions.first, region.start == base {
                let length = Int(region.length)
                guard available >= length else { return }
                regions.removeFirst()
                if zero > 0 {
                    // Inside a box that is being removed: the item goes with it.
                    let n = min(zero, UInt64(length))
                    emitZeros(Int(n))
                    zero -= n
                    continue
                }
                guard passing || skip >= UInt64(length) else {
                    throw Failure("its HEIC metadata names an item that crosses a box boundary")
                }
                var bytes = block(length)
                switch region.kind {
                case .exif: try stripExifItem(&bytes)
                case .xmp: blankXMP(&bytes)
                }
                emit(edited: bytes)
                if !passing { skip -= UInt64(length) }
                continue
            }
            let limit = regions.first.map { $0.start - base } ?? UInt64.max
            if zero > 0 {
                let n = Int(min(zero, UInt64(available), limit))
                guard n > 0 else { return }
                emitZeros(n)
                zero -= UInt64(n)
                continue
            }
            if skip > 0 || passing {
                let n = Int(min(passing ? UInt64.max : skip, UInt64(available), limit))
                guard n > 0 else { return }
                emit(n)
                if !passing { skip -= UInt64(n) }
                continue
            }
            guard available > 0 || format == .isobmff else { return }
            let step: Step
            awaiting = false
            switch format {
            case .jpeg: step = try jpegStep(final: final)
            case .png: step = try pngStep()
            case .isobmff: step = try boxStep()
            }
            if case .need(let n) = step {
                if n > Self.maximumBlock + 16 {
                    throw Failure("a metadata block is larger than \(Self.maximumBlock >> 20) MiB")
                }
                if available < n { return }
            }
        }
    }

    // MARK: - JPEG

    private func jpegStep(final: Bool) throws -> Step {
        switch jpeg {
        case .start, .afterEnd:
            guard available >= 2 else { return final && jpeg == .afterEnd ? pass() : .need(2) }
            if byte(0) == 0xFF && byte(1) == 0xD8 {
                emit(2)
                jpeg = .markers
                return .progress
            }
            if jpeg == .start { throw Failure("it does not start like a JPEG file") }
            return pass()  // bytes after the last image: not a JPEG structure
        case .markers:
            guard available >= 2 else { return .need(2) }
            guard byte(0) == 0xFF else { throw Failure("its JPEG structure is broken (a segment is not a marker)") }
            let marker = byte(1)
            switch marker {
            case 0xFF:
                emit(1)
                return .progress
            case 0xD8, 0x01, 0xD0...0xD7:
                emit(2)
                return .progress
            case 0xD9:
                emit(2)
                jpeg = .afterEnd
                return .progress
            default:
                guard available >= 4 else { return .need(4) }
                let length = Int(be(2, 2))
                guard length >= 2 else { throw Failure("a JPEG segment has a length below 2") }
                if marker == 0xDA {
                    skip = UInt64(2 + length)
                    jpeg = .entropy
                    return .progress
                }
                guard marker == 0xE1 else {
                    skip = UInt64(2 + length)
                    return .progress
                }
                guard available >= 2 + length else {
                    awaiting = true
                    return .need(2 + length)
                }
                var segment = block(2 + length)
                let exif = Array("Exif".utf8) + [0, 0]
                if segment.count >= 10 && Array(segment[4..<10]) == exif {
                    var tiff = Array(segment[10...])
                    if try stripTIFF(&tiff) { removed.insert(.exifGPS) }
                    segment.replaceSubrange(10..., with: tiff)
                }
                blankXMP(&segment)
                emit(edited: segment)
                return .progress
            }
        case .entropy:
            // Entropy-coded data: a 0xFF is followed by 0x00 (a stuffed byte), a restart marker, or a real marker.
            let n = available
            var i = 0
            while i < n {
                if byte(i) == 0xFF {
                    guard i + 1 < n else {
                        if i > 0 { emit(i) }
                        return .need(2)
                    }
                    let next = byte(i + 1)
                    if next == 0x00 || (0xD0...0xD7).contains(next) {
                        i += 2
                        continue
                    }
                    if next == 0xFF {
                        i += 1
                        continue
                    }
                    emit(i)
                    jpeg = .markers
                    return .progress
                }
                i += 1
            }
            emit(n)
            return .need(1)
        }
    }

    private func pass() -> Step {
        passing = true
        return .progress
    }

    // MARK: - PNG

    private func pngStep() throws -> Step {
        if !pngStarted {
            guard available >= 8 else { return .need(8) }
            guard block(8) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
                throw Failure("it does not start like a PNG file")
            }
            emit(8)
            pngStarted = true
            return .progress
        }
        guard available >= 8 else { return .need(8) }
        let length = be(0, 4)
        guard length <= 0x7FFF_FFFF else { throw Failure("a PNG chunk states a length above 2^31 − 1") }
        let type = String(decoding: block(8)[4..<8], as: UTF8.self)
        let total = Int(length) + 12
        switch type {
        case "IEND":
            return pass()
        case "eXIf", "iTXt", "tEXt", "zTXt":
            if type != "eXIf" && length > UInt64(Self.maximumBlock) {
                throw Failure("a PNG text chunk is larger than \(Self.maximumBlock >> 20) MiB")
            }
            guard available >= total else {
                awaiting = true
                return .need(total)
            }
            var chunk = block(total)
            var data = Array(chunk[8..<8 + Int(length)])
            let before = data
            if type == "eXIf" {
                if try stripTIFF(&data) { removed.insert(.exifGPS) }
            } else if type == "iTXt" || type == "tEXt" {
                let keyword = data.prefix { $0 != 0 }
                let compressed = type == "iTXt" && data.count > keyword.count + 1 && data[keyword.count + 1] != 0
                if compressed {
                    // Compressed text cannot be edited in place; a compressed XMP packet is removed whole.
                    if Array(keyword) == Array("XML:com.adobe.xmp".utf8) {
                        chunk.replaceSubrange(4..<8, with: Array("amSt".utf8))
                        data = [UInt8](repeating: 0, count: data.count)
                        removed.insert(.xmpPacket)
                    }
                } else {
                    blankXMP(&data)
                }
            } else if Array(data.prefix { $0 != 0 }) == Array("XML:com.adobe.xmp".utf8) {
                chunk.replaceSubrange(4..<8, with: Array("amSt".utf8))
                data = [UInt8](repeating: 0, count: data.count)
                removed.insert(.xmpPacket)
            }
            if data != before || chunk[4..<8] != block(8)[4..<8] {
                chunk.replaceSubrange(8..<8 + data.count, with: data)
                let crc = CRC32.checksum(chunk[4..<8 + data.count])
                chunk.replaceSubrange(8 + data.count..<12 + data.count, with: BigEndian.bytes(crc))
            }
            emit(edited: chunk)
            return .progress
        default:
            skip = UInt64(total)
            return .progress
        }
    }

    // MARK: - ISO base media (MP4, QuickTime, HEIC)

    /// Boxes whose children are walked as the file streams past.
    static let containerTypes: Set<String> = ["moov", "trak", "mdia", "minf", "udta", "edts", "dinf", "moof", "traf"]
    static let xyz = "\u{A9}xyz"
    static let xmpUUID: [UInt8] = [
        0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC,
    ]

    /// The four bytes of a box type as text (`©` for 0xA9, as QuickTime writes it).
    static func typeName(_ bytes: ArraySlice<UInt8>) -> String {
        String(bytes.map { Character(Unicode.Scalar($0)) })
    }

    private func boxStep() throws -> Step {
        while let end = containers.last, end <= base { containers.removeLast() }
        guard base < size else { return pass() }
        let parentEnd = containers.last ?? size
        guard available >= 8 else { return .need(8) }
        let size32 = be(0, 4)
        let type = Self.typeName(block(8)[4..<8])
        var header = 8
        var boxSize: UInt64
        if size32 == 1 {
            guard available >= 16 else { return .need(16) }
            boxSize = be(8, 8)
            header = 16
        } else if size32 == 0 {
            boxSize = parentEnd - base
        } else {
            boxSize = size32
        }
        guard boxSize >= UInt64(header), boxSize <= parentEnd - base else {
            throw Failure("a box (\(TerminalSafeName.of(type))) states a size outside its container")
        }
        if Self.containerTypes.contains(type) {
            guard containers.count < 32 else { throw Failure("its boxes nest more than 32 deep") }
            emit(header)
            containers.append(base - UInt64(header) + boxSize)
            return .progress
        }
        if type == Self.xyz || type == "loci" {
            var head = block(header)
            head.replaceSubrange(4..<8, with: Array("free".utf8))
            emit(edited: head)
            zero = boxSize - UInt64(header)
            removed.insert(type == "loci" ? .loci : .quicktimeXYZ)
            return .progress
        }
        if type == "meta" || type == "uuid" {
            if type == "uuid" {
                guard available >= header + 16 else { return .need(header + 16) }
                guard block(header + 16)[header...] == Self.xmpUUID[...] else {
                    skip = boxSize
                    return .progress
                }
            }
            guard boxSize <= UInt64(Self.maximumBlock) else {
                if type == "meta" {
                    throw Failure("its metadata box is larger than \(Self.maximumBlock >> 20) MiB")
                }
                var head = block(header)
                head.replaceSubrange(4..<8, with: Array("free".utf8))
                emit(edited: head)
                zero = boxSize - UInt64(header)
                removed.insert(.xmpPacket)
                return .progress
            }
            let n = Int(boxSize)
            guard available >= n else {
                awaiting = true
                return .need(n)
            }
            if let region = regions.first, region.start < base + boxSize {
                throw Failure("its HEIC metadata names an item inside another metadata box")
            }
            var box = block(n)
            let boxStart = base
            if type == "uuid" {
                blankXMP(&box)
            } else {
                try stripMeta(&box, header: header, fileOffset: boxStart)
            }
            emit(edited: box)
            return .progress
        }
        skip = boxSize
        return .progress
    }

    /// The boxes directly inside `bytes[from..<to]`: (start, header length, size, type).
    static func children(_ b: [UInt8], from: Int, to: Int) throws -> [(
        start: Int, header: Int, size: Int, type: String
    )] {
        var list: [(Int, Int, Int, String)] = []
        var at = from
        while at < to {
            guard to - at >= 8 else { throw Failure("a box inside its metadata is truncated") }
            let size32 = Int(BigEndian.u32(b, at))
            var header = 8
            var size = size32
            if size32 == 1 {
                guard to - at >= 16 else { throw Failure("a box inside its metadata is truncated") }
                let large = BigEndian.u64(b, at + 8)
                guard large <= UInt64(to - at) else { throw Failure("a box inside its metadata overflows it") }
                size = Int(large)
                header = 16
            } else if size32 == 0 {
                size = to - at
            }
            guard size >= header, size <= to - at else { throw Failure("a box inside its metadata overflows it") }
            list.append((at, header, size, typeName(b[at + 4..<at + 8])))
            at += size
        }
        return list
    }

    /// Strips a `meta` box held whole: QuickTime keys and items, iTunes-style `©xyz` items, XMP boxes, and (HEIC) the
    /// Exif and XMP items it locates, in its `idat` now or later in the file.
    private func stripMeta(_ b: inout [UInt8], header: Int, fileOffset: UInt64) throws {
        // An ISO `meta` is a full box (4 bytes of version and flags before its children, the first being `hdlr`);
        // QuickTime's is not.
        guard b.count >= header + 8 else { throw Failure("its metadata box is truncated") }
        var first = header
        if b.count >= header + 12, Self.typeName(b[header + 8..<header + 12]) == "hdlr" {
            first = header + 4
        } else if Self.typeName(b[header + 4..<header + 8]) != "hdlr", b[header..<header + 4].allSatisfy({ $0 == 0 }) {
            first = header + 4
        }
        let kids = try Self.children(b, from: first, to: b.count)
        var locationKeys: Set<UInt32> = []
        var infos: [UInt32: ItemKind] = [:]
        var locations: [(id: UInt32, method: Int, extents: [(UInt64, UInt64)])] = []
        for kid in kids {
            let body = kid.start + kid.header
            let end = kid.start + kid.size
            switch kid.type {
            case "keys":
                // version/flags, count, then (size, namespace, name) entries numbered from 1.
                guard end - body >= 8 else { throw Failure("its QuickTime keys box is truncated") }
                let count = BigEndian.u32(b, body + 4)
                var at = body + 8
                var index: UInt32 = 1
                while at < end && index <= count {
                    guard end - at >= 8 else { throw Failure("its QuickTime keys box is truncated") }
                    let keySize = Int(BigEndian.u32(b, at))
                    guard keySize >= 8, keySize <= end - at else { throw Failure("a QuickTime key overflows its box") }
                    let name = b[at + 8..<at + keySize]
                    if name.starts(with: Array("com.apple.quicktime.location".utf8)) {
                        locationKeys.insert(index)
                        b.replaceSubrange(
                            at + 8..<at + keySize, with: repeatElement(UInt8(ascii: "-"), count: keySize - 8))
                        removed.insert(.quicktimeLocationKey)
                    }
                    at += keySize
                    index += 1
                }
            case "iinf":
                infos = try Self.itemInfos(b, body: body, end: end)
            case "iloc":
                locations = try Self.itemLocations(b, body: body, end: end)
            default:
                break
            }
        }
        // Items: iTunes-style `©xyz`, and QuickTime items numbered by a location key.
        for kid in kids where kid.type == "ilst" {
            for item in try Self.children(b, from: kid.start + kid.header, to: kid.start + kid.size) {
                let index = BigEndian.u32(b, item.start + 4)
                if item.type == Self.xyz || locationKeys.contains(index) {
                    Self.free(&b, item.start, item.header, item.size)
                    removed.insert(item.type == Self.xyz ? .quicktimeXYZ : .quicktimeLocationKey)
                }
            }
        }
        for kid in kids {
            if kid.type == Self.xyz || kid.type == "loci" {
                Self.free(&b, kid.start, kid.header, kid.size)
                removed.insert(kid.type == "loci" ? .loci : .quicktimeXYZ)
            } else if kid.type == "uuid", kid.size >= kid.header + 16,
                Array(b[kid.start + kid.header..<kid.start + kid.header + 16]) == Self.xmpUUID
            {
                var inner = Array(b[kid.start..<kid.start + kid.size])
                blankXMP(&inner)
                b.replaceSubrange(kid.start..<kid.start + kid.size, with: inner)
            }
        }
        // HEIC: Exif and XMP items, in `idat` (construction method 1) or elsewhere in the file (method 0).
        let idat = kids.first { $0.type == "idat" }.map { ($0.start + $0.header, $0.start + $0.size) }
        for location in locations {
            guard let kind = infos[location.id] else { continue }
            guard location.extents.count == 1, let (offset, length) = location.extents.first, length > 0 else {
                throw Failure("its HEIC metadata item is split into several parts or has no length")
            }
            guard length <= UInt64(Self.maximumBlock) else {
                throw Failure("its HEIC metadata item is larger than \(Self.maximumBlock >> 20) MiB")
            }
            switch location.method {
            case 0:
                let (end, overflow) = offset.addingReportingOverflow(length)
                guard !overflow, end <= size else { throw Failure("its HEIC metadata names an item beyond the file") }
                guard offset >= fileOffset + UInt64(b.count) else {
                    throw Failure("its HEIC Exif or XMP item lies before the metadata box that locates it")
                }
                regions.append((offset, length, kind))
            case 1:
                guard let (start, stop) = idat, offset <= UInt64(stop - start), length <= UInt64(stop - start) - offset
                else { throw Failure("its HEIC metadata names an item beyond its idat box") }
                var bytes = Array(b[start + Int(offset)..<start + Int(offset) + Int(length)])
                switch kind {
                case .exif: try stripExifItem(&bytes)
                case .xmp: blankXMP(&bytes)
                }
                b.replaceSubrange(start + Int(offset)..<start + Int(offset) + Int(length), with: bytes)
            default:
                throw Failure("its HEIC metadata item uses a construction method this version does not edit")
            }
        }
        regions.sort { $0.start < $1.start }
        for i in regions.indices.dropFirst() where regions[i - 1].start + regions[i - 1].length > regions[i].start {
            throw Failure("its HEIC metadata items overlap")
        }
    }

    /// Turns the box at `start` into a `free` box of the same size with zeroed contents.
    static func free(_ b: inout [UInt8], _ start: Int, _ header: Int, _ size: Int) {
        b.replaceSubrange(start + 4..<start + 8, with: Array("free".utf8))
        b.replaceSubrange(start + header..<start + size, with: repeatElement(0, count: size - header))
    }

    /// `iinf`: the ids of Exif items and of XMP (`mime` application/rdf+xml) items.
    static func itemInfos(_ b: [UInt8], body: Int, end: Int) throws -> [UInt32: ItemKind] {
        guard end - body >= 6 else { throw Failure("its HEIC item list is truncated") }
        let version = b[body]
        let first = body + (version == 0 ? 6 : 8)
        guard first <= end else { throw Failure("its HEIC item list is truncated") }
        var kinds: [UInt32: ItemKind] = [:]
        for entry in try children(b, from: first, to: end) where entry.type == "infe" {
            let at = entry.start + entry.header
            let stop = entry.start + entry.size
            guard stop - at >= 4 else { throw Failure("a HEIC item entry is truncated") }
            let v = b[at]
            guard v >= 2 else { continue }
            let idLength = v == 2 ? 2 : 4
            guard stop - at >= 4 + idLength + 2 + 4 else { throw Failure("a HEIC item entry is truncated") }
            let id = idLength == 2 ? UInt32(BigEndian.u16(b, at + 4)) : BigEndian.u32(b, at + 4)
            let typeAt = at + 4 + idLength + 2
            let type = typeName(b[typeAt..<typeAt + 4])
            if type == "Exif" { kinds[id] = .exif }
            if type == "mime" {
                // item_name (NUL-terminated), then content_type.
                var i = typeAt + 4
                while i < stop && b[i] != 0 { i += 1 }
                i += 1
                if i < stop, b[i..<stop].starts(with: Array("application/rdf+xml".utf8)) { kinds[id] = .xmp }
            }
        }
        return kinds
    }

    /// `iloc`: each item's construction method and extents (absolute offset, length).
    static func itemLocations(_ b: [UInt8], body: Int, end: Int) throws -> [(
        id: UInt32, method: Int, extents: [(UInt64, UInt64)]
    )] {
        var at = body
        func need(_ n: Int) throws {
            guard end - at >= n else { throw Failure("its HEIC item locations are truncated") }
        }
        func read(_ n: Int) throws -> UInt64 {
            guard n > 0 else { return 0 }
            try need(n)
            var v: UInt64 = 0
            for k in 0..<n { v = v << 8 | UInt64(b[at + k]) }
            at += n
            return v
        }
        try need(6)
        let version = b[at]
        guard version <= 2 else { throw Failure("its HEIC item locations have an unknown version") }
        at += 4
        let sizes = try read(1)
        let more = try read(1)
        let offsetSize = Int(sizes >> 4)
        let lengthSize = Int(sizes & 15)
        let baseSize = Int(more >> 4)
        let indexSize = version >= 1 ? Int(more & 15) : 0
        for s in [offsetSize, lengthSize, baseSize, indexSize] where ![0, 4, 8].contains(s) {
            throw Failure("its HEIC item locations use a field size other than 0, 4 or 8")
        }
        let count = try read(version < 2 ? 2 : 4)
        var items: [(UInt32, Int, [(UInt64, UInt64)])] = []
        for _ in 0..<count {
            let id = UInt32(truncatingIfNeeded: try read(version < 2 ? 2 : 4))
            let method = version >= 1 ? Int(try read(2) & 15) : 0
            _ = try read(2)
            let baseOffset = try read(baseSize)
            let extentCount = try read(2)
            var extents: [(UInt64, UInt64)] = []
            for _ in 0..<extentCount {
                _ = try read(indexSize)
                let offset = try read(offsetSize)
                let length = try read(lengthSize)
                let (sum, overflow) = baseOffset.addingReportingOverflow(offset)
                guard !overflow else { throw Failure("its HEIC item locations overflow") }
                extents.append((sum, length))
            }
            items.append((id, method, extents))
        }
        return items
    }

    /// An Exif item of HEIC: a 4-byte offset to the TIFF header, then the TIFF structure.
    private func stripExifItem(_ bytes: inout [UInt8]) throws {
        guard bytes.count >= 4 else { throw Failure("its HEIC Exif item is truncated") }
        let skip = Int(BigEndian.u32(bytes, 0))
        guard skip <= bytes.count - 4 else { throw Failure("its HEIC Exif item points outside itself") }
        var tiff = Array(bytes[(4 + skip)...])
        if try stripTIFF(&tiff) { removed.insert(.exifGPS) }
        bytes.replaceSubrange((4 + skip)..., with: tiff)
        blankXMP(&bytes)
    }

    // MARK: - EXIF (TIFF)

    /// Zeroes the GPS IFD of the TIFF structure in `b` (its entries and every value they point to) and removes its
    /// pointer (tag 0x8825) from IFD0, moving the later entries up and zeroing the freed 12 bytes. Returns whether
    /// there was a GPS IFD. Throws when IFD0 cannot be read; every offset is checked before use.
    func stripTIFF(_ b: inout [UInt8]) throws -> Bool {
        guard b.count >= 8 else { throw Failure("its EXIF block is truncated") }
        let little: Bool
        if b[0] == 0x49 && b[1] == 0x49 && b[2] == 42 && b[3] == 0 {
            little = true
        } else if b[0] == 0x4D && b[1] == 0x4D && b[2] == 0 && b[3] == 42 {
            little = false
        } else {
            throw Failure("its EXIF block is not a TIFF structure")
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at <= b.count - 2 else { return nil }
            return little ? Int(b[at]) | Int(b[at + 1]) << 8 : Int(b[at]) << 8 | Int(b[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let x = u16(at), let y = u16(at + 2) else { return nil }
            return little ? y << 16 | x : x << 16 | y
        }
        guard let ifd0 = u32(4), ifd0 >= 8, let count = u16(ifd0), ifd0 + 2 + count * 12 + 4 <= b.count else {
            throw Failure("its EXIF IFD0 lies outside the EXIF block")
        }
        var found = false
        var index = 0
        var entries = count
        while index < entries {
            let at = ifd0 + 2 + index * 12
            guard u16(at) == 0x8825 else {
                index += 1
                continue
            }
            found = true
            if let gps = u32(at + 8) { Self.zeroIFD(&b, at: gps, little: little) }
            // Remove the entry: later entries and the next-IFD offset move up by 12 bytes.
            let end = ifd0 + 2 + entries * 12 + 4
            b.replaceSubrange(at..<end - 12, with: Array(b[at + 12..<end]))
            b.replaceSubrange(end - 12..<end, with: repeatElement(0, count: 12))
            entries -= 1
            let c = UInt16(entries)
            if little {
                b[ifd0] = UInt8(c & 0xFF)
                b[ifd0 + 1] = UInt8(c >> 8)
            } else {
                b[ifd0] = UInt8(c >> 8)
                b[ifd0 + 1] = UInt8(c & 0xFF)
            }
        }
        return found
    }

    /// Zeroes the IFD at `at` and the out-of-line values of its entries that lie inside `b`.
    static func zeroIFD(_ b: inout [UInt8], at: Int, little: Bool) {
        let snapshot = b
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at <= snapshot.count - 2 else { return nil }
            return little
                ? Int(snapshot[at]) | Int(snapshot[at + 1]) << 8 : Int(snapshot[at]) << 8 | Int(snapshot[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let x = u16(at), let y = u16(at + 2) else { return nil }
            return little ? y << 16 | x : x << 16 | y
        }
        guard at >= 8, let count = u16(at) else { return }
        let sizes = [1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8]
        var ranges: [Range<Int>] = []
        for i in 0..<min(count, (b.count - at) / 12 + 1) {
            let entry = at + 2 + i * 12
            guard let type = u16(entry + 2), let n = u32(entry + 4), let value = u32(entry + 8) else { break }
            let (total, overflow) = (sizes[type] ?? 1).multipliedReportingOverflow(by: n)
            if !overflow, total > 4, value >= 8, value < b.count {
                ranges.append(value..<min(b.count, value + min(total, b.count)))
            }
            ranges.append(entry..<min(b.count, entry + 12))
        }
        ranges.append(at..<min(b.count, at + 2))
        let next = at + 2 + count * 12
        if next >= 0, next < b.count { ranges.append(next..<min(b.count, next + 4)) }
        for r in ranges where r.lowerBound < r.upperBound {
            b.replaceSubrange(r, with: repeatElement(0, count: r.count))
        }
    }

    // MARK: - XMP

    /// XMP property names (after the prefix) that say where: every `GPS…` property and the IPTC/Photoshop place names.
    static let placeNames: Set<String> = [
        "City", "State", "Country", "CountryCode", "CountryName", "Location", "LocationCreated", "LocationShown",
        "LocationName", "Sublocation", "ProvinceState", "WorldRegion", "Latitude", "Longitude", "Altitude",
    ]

    static func isLocationProperty(_ local: ArraySlice<UInt8>) -> Bool {
        if local.starts(with: Array("GPS".utf8)) || local.starts(with: Array("Gps".utf8)) { return true }
        return placeNames.contains(String(decoding: local, as: UTF8.self))
    }

    static func isNameByte(_ c: UInt8) -> Bool {
        (65...90).contains(c) || (97...122).contains(c) || (48...57).contains(c) || c == 0x5F || c == 0x2D
            || c == 0x2E
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

    /// Overwrites with spaces every location property of the XMP text in `b` (UTF-8): an attribute
    /// ` prefix:GPSLatitude="…"`, or an element from `<prefix:GPSLatitude` to its `</prefix:GPSLatitude>` (or `/>`).
    /// A property whose end cannot be found is blanked to the end of the block, so its value never survives.
    func blankXMP(_ b: inout [UInt8]) {
        let count = b.count
        var i = 0
        var changed = false
        while i < count {
            guard b[i] == 0x3A, i > 0, i + 1 < count, Self.isNameByte(b[i - 1]), Self.isNameByte(b[i + 1]) else {
                i += 1
                continue
            }
            var p = i - 1
            while p > 0 && Self.isNameByte(b[p - 1]) { p -= 1 }
            var e = i + 1
            while e < count && Self.isNameByte(b[e]) { e += 1 }
            let local = b[(i + 1)..<e]
            guard p > 0, Self.isLocationProperty(local) else {
                i = e
                continue
            }
            let qualified = Array(b[p..<e])
            if b[p - 1] == 0x3C {
                // An element: to its end tag, or `/>` when it is empty.
                let start = p - 1
                var stop = count
                var k = e
                while k < count && b[k] != 0x3E { k += 1 }
                if k < count && k > e && b[k - 1] == 0x2F {
                    stop = k + 1
                } else if k < count,
                    let close = Self.find([0x3C, 0x2F] + qualified + [0x3E], in: b, from: k)
                {
                    stop = close + qualified.count + 3
                }
                for j in start..<stop { b[j] = 0x20 }
                changed = true
                i = stop
            } else if Self.isSpace(b[p - 1]) {
                // An attribute: `name`, spaces, `=`, spaces, a quoted value.
                var k = e
                while k < count && Self.isSpace(b[k]) { k += 1 }
                guard k < count, b[k] == 0x3D else {
                    i = e
                    continue
                }
                k += 1
                while k < count && Self.isSpace(b[k]) { k += 1 }
                guard k < count, b[k] == 0x22 || b[k] == 0x27 else {
                    i = e
                    continue
                }
                let quote = b[k]
                var stop = k + 1
                while stop < count && b[stop] != quote { stop += 1 }
                stop = min(count, stop + 1)
                for j in p..<stop { b[j] = 0x20 }
                changed = true
                i = stop
            } else if p >= 2, b[p - 1] == 0x2F, b[p - 2] == 0x3C {
                // A stray end tag: its name goes too.
                for j in (p - 2)..<min(count, e + 1) { b[j] = 0x20 }
                changed = true
                i = e
            } else {
                i = e
            }
        }
        if changed { removed.insert(.xmpLocation) }
    }

    static func find(_ pattern: [UInt8], in b: [UInt8], from: Int) -> Int? {
        MetadataScanner.index(of: pattern, in: b, from: from)
    }
}

/// A box type for a message: printable ASCII only.
enum TerminalSafeName {
    static func of(_ type: String) -> String {
        String(type.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}

/// CRC-32 (ISO 3309, as PNG uses it).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

/// Big-endian reads of bytes the caller has checked are there.
enum BigEndian {
    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(u32(b, at)) << 32 | UInt64(u32(b, at + 4)) }
    static func bytes(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }
}
