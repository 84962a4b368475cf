/// Bech32 (BIP 173) as age uses it: no length limit, all-lowercase or all-uppercase, checksum over the lowercase form.
///
/// ```swift
/// let text = try Bech32.encode(hrp: "age", data: publicKey)        // "age1…"
/// let (hrp, bytes) = try Bech32.decode(text)                        // ("age", publicKey)
/// ```
public enum Bech32 {
    private static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]

    /// Encodes 8-bit `data` under the human-readable part `hrp`; the result is lowercase.
    public static func encode(hrp: String, data: [UInt8]) throws -> String {
        let hrpBytes = Array(hrp.lowercased().utf8)
        guard !hrpBytes.isEmpty, hrpBytes.allSatisfy({ (33...126).contains($0) }) else {
            throw AgeError(.invalidKey, "A Bech32 human-readable part must be printable ASCII and not empty.")
        }
        let words = convertBits(data, from: 8, to: 5, pad: true) ?? []
        let checksum = createChecksum(hrp: hrpBytes, words: words)
        var out = hrpBytes
        out.append(UInt8(ascii: "1"))
        for w in words + checksum { out.append(charset[Int(w)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a Bech32 string to its human-readable part (in the string's own case) and 8-bit data.
    public static func decode(_ string: String) throws -> (hrp: String, data: [UInt8]) {
        let (hrp, words) = try decodeWords(string)
        guard let data = convertBits(words, from: 5, to: 8, pad: false) else {
            throw AgeError(.invalidKey, "A Bech32 string has invalid padding in its data part.")
        }
        return (hrp, data)
    }

    /// Decodes a Bech32 string to its human-readable part (in the string's own case) and 5-bit words.
    static func decodeWords(_ string: String) throws -> (hrp: String, words: [UInt8]) {
        let bytes = Array(string.utf8)
        guard bytes.allSatisfy({ (33...126).contains($0) }) else {
            throw AgeError(.invalidKey, "A Bech32 string contains a character outside printable ASCII.")
        }
        let hasLower = bytes.contains { (97...122).contains($0) }
        let hasUpper = bytes.contains { (65...90).contains($0) }
        guard !(hasLower && hasUpper) else {
            throw AgeError(.invalidKey, "A Bech32 string mixes upper and lower case.")
        }
        let lower = bytes.map { (65...90).contains($0) ? $0 + 32 : $0 }
        guard let separator = lower.lastIndex(of: UInt8(ascii: "1")), separator >= 1,
            lower.count - separator - 1 >= 6
        else {
            throw AgeError(.invalidKey, "A Bech32 string lacks its separator, prefix or checksum.")
        }
        let hrp = Array(lower[..<separator])
        var words = [UInt8]()
        words.reserveCapacity(lower.count - separator - 1)
        for c in lower[(separator + 1)...] {
            guard let v = charset.firstIndex(of: c) else {
                throw AgeError(.invalidKey, "A Bech32 string contains a character outside its alphabet.")
            }
            words.append(UInt8(v))
        }
        guard polymod(expand(hrp) + words) == 1 else {
            throw AgeError(.invalidKey, "A Bech32 string has a wrong checksum: it was mistyped or altered.")
        }
        let originalHRP = String(decoding: bytes[..<separator], as: UTF8.self)
        return (originalHRP, Array(words.dropLast(6)))
    }

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        var chk: UInt32 = 1
        for v in values {
            let top = chk >> 25
            chk = (chk & 0x1ff_ffff) << 5 ^ UInt32(v)
            for i in 0..<5 where (top >> i) & 1 == 1 {
                chk ^= generator[i]
            }
        }
        return chk
    }

    private static func expand(_ hrp: [UInt8]) -> [UInt8] {
        hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
    }

    private static func createChecksum(hrp: [UInt8], words: [UInt8]) -> [UInt8] {
        let mod = polymod(expand(hrp) + words + [0, 0, 0, 0, 0, 0]) ^ 1
        return (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
    }

    /// Regroups bits (BIP 173 `convertbits`); without padding, leftover bits must be fewer than `from` and zero.
    static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var acc = 0
        var bits = 0
        var out = [UInt8]()
        let maxValue = (1 << to) - 1
        for value in data {
            guard Int(value) >> from == 0 else { return nil }
            acc = (acc << from) | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((acc >> bits) & maxValue))
            }
            acc &= (1 << bits) - 1
        }
        if pad {
            if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxValue)) }
        } else if bits >= from || (acc << (to - bits)) & maxValue != 0 {
            return nil
        }
        return out
    }
}
