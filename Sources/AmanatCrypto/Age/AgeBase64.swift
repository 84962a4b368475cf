/// Strict base64 (RFC 4648 §4) as age needs it: unpadded canonical for headers, padded canonical for armor.
enum AgeBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Whether `byte` is one of the 64 base64 characters (padding excluded).
    static func isAlphabet(_ byte: UInt8) -> Bool { values[Int(byte)] != 0xff }

    /// Encodes without `=` padding.
    static func encodeUnpadded(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity((data.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= data.count {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        switch data.count - i {
        case 1:
            let n = UInt32(data[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        case 2:
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        default:
            break
        }
        return out
    }

    /// Encodes with `=` padding to a multiple of four characters.
    static func encodePadded(_ data: [UInt8]) -> [UInt8] {
        var out = encodeUnpadded(data)
        while out.count % 4 != 0 { out.append(UInt8(ascii: "=")) }
        return out
    }

    /// Decodes canonical unpadded base64; nil on any non-alphabet character, `=`, bad length or non-zero spare bits.
    static func decodeUnpadded<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        let chars = Array(text)
        guard chars.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var i = 0
        while i + 4 <= chars.count {
            guard let a = value(chars[i]), let b = value(chars[i + 1]), let c = value(chars[i + 2]),
                let d = value(chars[i + 3])
            else { return nil }
            let n = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out.append(UInt8(n >> 16 & 0xff))
            out.append(UInt8(n >> 8 & 0xff))
            out.append(UInt8(n & 0xff))
            i += 4
        }
        switch chars.count - i {
        case 2:
            guard let a = value(chars[i]), let b = value(chars[i + 1]), b & 0x0f == 0 else { return nil }
            out.append(a << 2 | b >> 4)
        case 3:
            guard let a = value(chars[i]), let b = value(chars[i + 1]), let c = value(chars[i + 2]), c & 0x03 == 0
            else { return nil }
            out.append(a << 2 | b >> 4)
            out.append((b & 0x0f) << 4 | c >> 2)
        default:
            break
        }
        return out
    }

    /// Decodes canonical padded base64 (length a multiple of four, one or two trailing `=` only where needed).
    static func decodePadded<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        let chars = Array(text)
        guard chars.count % 4 == 0 else { return nil }
        var body = chars[...]
        var padding = 0
        while let last = body.last, last == UInt8(ascii: "="), padding < 2 {
            body = body.dropLast()
            padding += 1
        }
        guard padding == 0 || (chars.count - padding) % 4 == 4 - padding else { return nil }
        return decodeUnpadded(body)
    }

    private static func value(_ c: UInt8) -> UInt8? {
        let v = values[Int(c)]
        return v == 0xff ? nil : v
    }
}
