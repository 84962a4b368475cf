/// A JSON value of the canonical form of Protocol/bundle.md §3.1: RFC 8785 (JCS) restricted to objects, arrays,
/// strings, booleans and integers with |n| < 2^53.
///
/// Object members are kept as an ordered list of pairs, never a `[String: …]` dictionary: Swift compares strings
/// by canonical equivalence, which would merge two names that differ in their bytes ("é" and "e\u{301}"); here
/// names are compared by their UTF-8 bytes and sorted by their UTF-16 code units, as the RFC says.
///
/// ```swift
/// let bytes = JSONValue.object([("b", .integer(1)), ("a", .string("x"))]).canonical   // {"a":"x","b":1}
/// let value = try JSONValue.parseCanonical(bytes)
/// ```
public indirect enum JSONValue: Equatable, Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case integer(Int64)
    case bool(Bool)

    /// The greatest magnitude an integer may have (2^53 − 1), so every JSON implementation reads it exactly.
    public static let maximumInteger: Int64 = (1 << 53) - 1

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)):
            return x.count == y.count
                && zip(x, y).allSatisfy { Array($0.0.utf8) == Array($1.0.utf8) && $0.1 == $1.1 }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return Array(x.utf8) == Array(y.utf8)
        case (.integer(let x), .integer(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        default: return false
        }
    }

    /// The canonical bytes (UTF-8, no whitespace, members sorted by UTF-16 code units, JCS string escaping).
    public var canonical: [UInt8] {
        var out: [UInt8] = []
        // Room for the whole document before a byte is written: growing by doubling copied a custody or record
        // document of a 1 MiB narrative about twice over, into pages touched for the first time each time.
        out.reserveCapacity(lengthWithoutEscapes)
        write(into: &out)
        return out
    }

    /// The canonical length if no string needed an escape, every integer counted at its widest (20 bytes): close to
    /// the length of a document of plain text, which is most of what an export writes.
    var lengthWithoutEscapes: Int {
        switch self {
        case .object(let members):
            return members.reduce(1 + max(1, members.count)) { $0 + $1.0.utf8.count + 3 + $1.1.lengthWithoutEscapes }
        case .array(let items): return items.reduce(1 + max(1, items.count)) { $0 + $1.lengthWithoutEscapes }
        case .string(let text): return text.utf8.count + 2
        case .integer: return 20
        case .bool: return 5
        }
    }

    private func write(into out: inout [UInt8]) {
        switch self {
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let sorted = members.sorted { Array($0.0.utf16).lexicographicallyPrecedes(Array($1.0.utf16)) }
            for (index, member) in sorted.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(member.0, into: &out)
                out.append(UInt8(ascii: ":"))
                member.1.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let text):
            Self.writeString(text, into: &out)
        case .integer(let n):
            out += Array(String(n).utf8)
        case .bool(let b):
            out += Array((b ? "true" : "false").utf8)
        }
    }

    /// Writes `text` as a JSON string: runs of bytes that need no escape are copied whole (a 1 MiB narrative is
    /// one copy, not a million appends), and `"`, `\\` and control characters are escaped as §3.1 says. The bytes are
    /// looked at eight at a time (``needsEscape(_:)``): a byte-at-a-time scan was the largest part of an export's
    /// JSON.
    private static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            // No `reserveCapacity(count + n)` here: asking for an exact capacity at every string reallocated and
            // copied the whole document so far for each one (a 1 MiB narrative, then every small string after it).
            guard let base = bytes.baseAddress else { return }
            let count = bytes.count
            var start = 0
            var index = 0
            while index < count {
                while index + 8 <= count,
                    !needsEscape(UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                {
                    index += 8
                }
                guard index < count else { break }
                let byte = base[index]
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                    out.append(contentsOf: UnsafeBufferPointer(start: base + start, count: index - start))
                    writeEscape(byte, into: &out)
                    start = index + 1
                }
                index += 1
            }
            out.append(contentsOf: UnsafeBufferPointer(start: base + start, count: count - start))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Whether any of the eight bytes of `word` needs an escape: below 0x20, a quotation mark or a reverse solidus
    /// (the "has less" and "has zero byte" tests of Sean Anderson's Bit Twiddling Hacks; exact as a yes or no).
    static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let control = (word &- ones &* 0x20) & ~word & highs != 0
        return control || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
    }

    private static func writeEscape(_ byte: UInt8, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        switch byte {
        case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
        case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
        case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
        case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
        case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
        case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
        case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
        default: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
        }
    }

    /// Parses `bytes` as JSON (RFC 8259) and requires them to be exactly the canonical form of the value.
    public static func parseCanonical(_ bytes: [UInt8]) throws -> JSONValue {
        let value = try parse(bytes)
        guard value.canonical == bytes else { throw JSONError("it is not in canonical form") }
        return value
    }

    /// Parses `bytes` as JSON (RFC 8259) within the restrictions of §3.1: no `null`, no fraction or exponent, no
    /// integer of 2^53 or more in magnitude, no duplicate member names, no lone surrogate, nesting at most 64 deep.
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == bytes.count else { throw JSONError("text follows the value") }
        return value
    }

    /// Why a text is not a JSON value of the canonical subset.
    public struct JSONError: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func expect(_ word: String) throws {
            let w = Array(word.utf8)
            guard bytes.count - position >= w.count, Array(bytes[position..<position + w.count]) == w else {
                throw JSONError("it holds an unexpected character at byte \(position)")
            }
            position += w.count
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < 64 else { throw JSONError("it is nested too deeply") }
            guard let c = peek() else { throw JSONError("it ends early") }
            switch c {
            case UInt8(ascii: "{"):
                position += 1
                var members: [(String, JSONValue)] = []
                var names = Set<[UInt8]>()
                skipSpace()
                if peek() == UInt8(ascii: "}") {
                    position += 1
                    return .object([])
                }
                while true {
                    skipSpace()
                    guard peek() == UInt8(ascii: "\"") else { throw JSONError("a member name is not a string") }
                    let name = try string()
                    guard names.insert(Array(name.utf8)).inserted else {
                        throw JSONError("the member \"\(name)\" appears twice")
                    }
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    members.append((name, try value(depth: depth + 1)))
                    skipSpace()
                    if peek() == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    try expect("}")
                    return .object(members)
                }
            case UInt8(ascii: "["):
                position += 1
                var items: [JSONValue] = []
                skipSpace()
                if peek() == UInt8(ascii: "]") {
                    position += 1
                    return .array([])
                }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if peek() == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    try expect("]")
                    return .array(items)
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try expect("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                throw JSONError("it holds null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .integer(try integer())
            default:
                throw JSONError("it holds an unexpected character at byte \(position)")
            }
        }

        mutating func integer() throws -> Int64 {
            var negative = false
            if peek() == UInt8(ascii: "-") {
                negative = true
                position += 1
            }
            let start = position
            while let c = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { position += 1 }
            let digits = bytes[start..<position]
            guard !digits.isEmpty else { throw JSONError("a number has no digits") }
            guard digits.count == 1 || digits.first != UInt8(ascii: "0") else {
                throw JSONError("a number has a leading zero")
            }
            if let c = peek(), c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                throw JSONError("it holds a number that is not an integer")
            }
            // At most 16 digits are below 2^53 − 1 = 9007199254740991; longer ones are refused before conversion.
            guard digits.count <= 16, let magnitude = Int64(String(decoding: digits, as: UTF8.self)),
                magnitude <= JSONValue.maximumInteger
            else { throw JSONError("it holds an integer of 2^53 or more") }
            return negative ? -magnitude : magnitude
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - position >= 4 else { throw JSONError("a \\u escape is cut short") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[position]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw JSONError("a \\u escape is not hexadecimal")
                }
                v = v << 4 | d
                position += 1
            }
            return v
        }

        mutating func string() throws -> String {
            position += 1  // the opening quote
            var out: [UInt8] = []
            while true {
                guard let c = peek() else { throw JSONError("a string is not closed") }
                position += 1
                switch c {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: out, as: UTF8.self) else {
                        throw JSONError("a string is not valid UTF-8")
                    }
                    return text
                case UInt8(ascii: "\\"):
                    guard let e = peek() else { throw JSONError("a string is not closed") }
                    position += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard bytes.count - position >= 2, bytes[position] == UInt8(ascii: "\\"),
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw JSONError("a string holds a lone surrogate") }
                            position += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else {
                                throw JSONError("a string holds a lone surrogate")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw JSONError("a string holds a lone surrogate")
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw JSONError("a string holds a bad escape") }
                        out += Array(String(Character(u)).utf8)
                    default:
                        throw JSONError("a string holds an unknown escape")
                    }
                case 0..<0x20:
                    throw JSONError("a string holds an unescaped control character")
                default:
                    out.append(c)
                }
            }
        }
    }
}

extension JSONValue {
    /// The members of an object, or nil.
    public var members: [(String, JSONValue)]? {
        if case .object(let m) = self { return m }
        return nil
    }

    /// The member `name` of an object, or nil.
    public subscript(name: String) -> JSONValue? {
        let key = Array(name.utf8)
        return members?.first { Array($0.0.utf8) == key }?.1
    }

    /// The string, or nil.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The integer, or nil.
    public var integerValue: Int64? {
        if case .integer(let n) = self { return n }
        return nil
    }

    /// The boolean, or nil.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The items of an array, or nil.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// This object with the member `name` set to `value` (added if absent, removed if `value` is nil).
    public func setting(_ name: String, to value: JSONValue?) -> JSONValue {
        let key = Array(name.utf8)
        var m = (members ?? []).filter { Array($0.0.utf8) != key }
        if let value { m.append((name, value)) }
        return .object(m)
    }

    /// The names of an object's members as UTF-8 byte arrays, for checking which members a document has.
    var memberNames: Set<[UInt8]> { Set((members ?? []).map { Array($0.0.utf8) }) }
}
