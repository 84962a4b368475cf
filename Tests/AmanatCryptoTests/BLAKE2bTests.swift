import AmanatCrypto
import Testing

@Suite("BLAKE2b")
struct BLAKE2bTests {
    static let abc512 =
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        + "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    static let empty512 =
        "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
        + "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce"
    static let empty256 = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
    static let abc256 = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
    // BLAKE2 reference blake2b-kat.txt: key 00..3f, input empty and 00.
    static let keyedEmpty =
        "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786"
        + "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568"
    static let keyedZero =
        "961f6dd1e4dd30f63901690c512e78e4b45e4742ed197c3c5e45c549fd25f2e4"
        + "187b0bc9fe30492b16b0d0bc4ef9b0f34c7003fac09a5ef1532e69430234cebd"

    @Test("RFC 7693 Appendix A: BLAKE2b-512(\"abc\")")
    func rfc7693() {
        #expect(Hex.encode(BLAKE2b.hash(Array("abc".utf8), outputLength: 64)) == Self.abc512)
    }

    @Test("unkeyed digests of the empty string and of \"abc\" at 512 and 256 bits")
    func unkeyed() {
        #expect(Hex.encode(BLAKE2b.hash([], outputLength: 64)) == Self.empty512)
        #expect(Hex.encode(BLAKE2b.hash([], outputLength: 32)) == Self.empty256)
        #expect(Hex.encode(BLAKE2b.hash([])) == Self.empty256, "the default output is BLAKE2b-256")
        #expect(Hex.encode(BLAKE2b.hash(Array("abc".utf8))) == Self.abc256)
    }

    @Test("keyed known answers of the reference blake2b-kat (key 00..3f)")
    func keyed() throws {
        let key = counting(from: 0, count: 64)
        #expect(Hex.encode(BLAKE2b.hash([], outputLength: 64, key: key)) == Self.keyedEmpty)
        #expect(Hex.encode(BLAKE2b.hash([0], outputLength: 64, key: key)) == Self.keyedZero)
        let secret = SecureBytes(key)
        #expect(Hex.encode(BLAKE2b.hash([], outputLength: 64, key: secret)) == Self.keyedEmpty)
        #expect(Hex.encode(BLAKE2b.hash([0], outputLength: 64, key: secret)) == Self.keyedZero)
        let derived = BLAKE2b.deriveKey(from: secret, message: [0], outputLength: 64)
        #expect(derived.copyBytes() == (try unhex(Self.keyedZero)))
    }

    @Test("keyed and unkeyed hashes differ, and the key matters")
    func keyMatters() {
        let message = Array("amanat".utf8)
        let key = counting(from: 0, count: 32)
        let keyed = BLAKE2b.hash(message, key: key)
        #expect(keyed != BLAKE2b.hash(message))
        #expect(keyed != BLAKE2b.hash(message, key: flipping(key, byte: 0)))
        #expect(keyed == BLAKE2b.hash(message, key: SecureBytes(key)))
        #expect(BLAKE2b.deriveKey(from: SecureBytes(key), message: message).copyBytes() == keyed)
    }

    @Test("output length is a parameter of the hash, not a truncation")
    func lengthIsParameter() {
        let full = BLAKE2b.hash(Array("abc".utf8), outputLength: 64)
        let short = BLAKE2b.hash(Array("abc".utf8), outputLength: 32)
        #expect(short.count == 32)
        #expect(short[...] != full.prefix(32))
        #expect(BLAKE2b.hash([], outputLength: 16).count == 16)
    }

    @Test("the incremental hasher equals the one-shot hash for every way of splitting the input", arguments: [32, 64])
    func incremental(outputLength: Int) {
        // 300 bytes crosses the 128-byte block boundary twice.
        let message = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let expected = BLAKE2b.hash(message, outputLength: outputLength)
        for split in [0, 1, 63, 127, 128, 129, 256, 299, 300] {
            let hasher = BLAKE2b.Hasher(outputLength: outputLength)
            hasher.update(Array(message[..<split]))
            hasher.update(Array(message[split...]))
            #expect(hasher.finalize() == expected, "split at \(split)")
        }
        let bytewise = BLAKE2b.Hasher(outputLength: outputLength)
        for byte in message { bytewise.update([byte]) }
        #expect(bytewise.finalize() == expected)
        let empty = BLAKE2b.Hasher(outputLength: outputLength)
        empty.update([])
        #expect(empty.finalize() == BLAKE2b.hash([], outputLength: outputLength))
    }

    @Test("the incremental hasher reproduces the RFC 7693 vector")
    func incrementalKnownAnswer() {
        let hasher = BLAKE2b.Hasher(outputLength: 64)
        hasher.update(Array("a".utf8))
        hasher.update(Array("bc".utf8))
        #expect(Hex.encode(hasher.finalize()) == Self.abc512)
    }
}
