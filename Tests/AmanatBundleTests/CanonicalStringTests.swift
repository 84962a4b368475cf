import Foundation
import Testing

@testable import AmanatBundle

/// Canonical JSON strings are escaped eight bytes at a time (`JSONValue.needsEscape`); they must be byte for byte
/// what a byte-at-a-time escaper writes (RFC 8785 §3.2.2.2: `"`, `\` and control characters, nothing else).
@Suite struct CanonicalStringTests {
    /// The escaping as the protocol states it, one byte at a time.
    static func reference(_ bytes: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [0x22]
        for byte in bytes {
            switch byte {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x08: out += Array("\\b".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0C: out += Array("\\f".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        return out + [0x22]
    }

    /// Every byte value at every position of a word, alone among plain letters: the word test says yes exactly for
    /// the bytes that need an escape.
    @Test func everyByteAtEveryPositionOfAWord() {
        for position in 0..<8 {
            for value in 0..<128 {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 8)
                bytes[position] = UInt8(value)
                let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let special = value < 0x20 || value == 0x22 || value == 0x5C
                #expect(JSONValue.needsEscape(word) == special, "byte \(value) at \(position)")
            }
        }
        // Bytes of multi-byte UTF-8 sequences (0x80 and above) never need one, whatever sits beside them.
        let high = [UInt8](repeating: 0xE2, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(!JSONValue.needsEscape(high))
    }

    /// Random texts made of the bytes that matter (controls, quotes, backslashes, ASCII, multi-byte characters) at
    /// random lengths and offsets. Replays from the printed seed.
    @Test func randomTextsAreEscapedAsOneByteAtATime() {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("CanonicalStringTests seed \(seed)")
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let pieces: [String] = [
            "\"", "\\", "\n", "\u{01}", "\u{1F}", "\t", "a", "z", " ", "~", "\u{7F}", "é", "د", "😀",
        ]
        for round in 0..<500 {
            var text = ""
            for _ in 0..<Int(next() % 70) {
                let piece = pieces[Int(next() % UInt64(pieces.count))]
                text += String(repeating: piece, count: Int(next() % 12) + 1)
            }
            #expect(JSONValue.string(text).canonical == Self.reference(Array(text.utf8)), "seed \(seed) round \(round)")
        }
    }
}
