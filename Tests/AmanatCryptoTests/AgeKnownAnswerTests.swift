import Testing

@testable import AmanatCrypto

/// Known-answer tests for the primitives under age: HKDF, HMAC, Bech32, strict base64 and key encodings.
@Suite("age primitives")
struct AgeKnownAnswerTests {
    struct HKDFCase: Sendable, CustomTestStringConvertible {
        var name: String
        var ikm: String
        var salt: String
        var info: String
        var length: Int
        var prk: String
        var okm: String
        var testDescription: String { name }
    }

    static func hexRange(_ range: ClosedRange<UInt8>) -> String { Hex.encode(Array(range)) }

    // RFC 5869 Appendix A, test cases 1–3 (SHA-256).
    static let hkdfCases = [
        HKDFCase(
            name: "RFC 5869 A.1", ikm: String(repeating: "0b", count: 22), salt: hexRange(0x00...0x0c),
            info: hexRange(0xf0...0xf9), length: 42,
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
        HKDFCase(
            name: "RFC 5869 A.2", ikm: hexRange(0x00...0x4f), salt: hexRange(0x60...0xaf),
            info: hexRange(0xb0...0xff), length: 82,
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
                + "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
        HKDFCase(
            name: "RFC 5869 A.3", ikm: String(repeating: "0b", count: 22), salt: "", info: "", length: 42,
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
    ]

    @Test("HKDF-SHA-256", arguments: hkdfCases)
    func hkdf(_ c: HKDFCase) throws {
        let ikm = SecureBytes(Hex.decode(c.ikm) ?? [])
        let salt = Hex.decode(c.salt) ?? []
        let info = Hex.decode(c.info) ?? []
        let prk = HKDF.extract(salt: salt, ikm: ikm)
        #expect(Hex.encode(prk.copyBytes()) == c.prk)
        let okm = try HKDF.expand(prk: prk, info: info, length: c.length)
        #expect(Hex.encode(okm.copyBytes()) == c.okm)
        let derived = try HKDF.deriveKey(ikm: ikm, salt: salt, info: info, length: c.length)
        #expect(Hex.encode(derived.copyBytes()) == c.okm)
    }

    @Test("HKDF refuses outputs longer than 255 blocks")
    func hkdfLimit() {
        let prk = SecureBytes(count: 32)
        #expect(AgeTestSupport.code { _ = try HKDF.expand(prk: prk, info: [], length: 255 * 32 + 1) } == .invalidUse)
        #expect(AgeTestSupport.code { _ = try HKDF.expand(prk: prk, info: [], length: 255 * 32) } == nil)
    }

    @Test("HMAC-SHA-256 (RFC 4231 cases 2 and 6)")
    func hmac() {
        #expect(
            Hex.encode(HMACSHA256.authenticate(Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let longKey = SecureBytes([UInt8](repeating: 0xaa, count: 131))
        let message = Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
        #expect(
            Hex.encode(HMACSHA256.authenticate(message, key: longKey))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test("SHA-256 one-shot and incremental agree with a known digest")
    func sha256() {
        #expect(Hex.encode(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let hasher = SHA256.Hasher()
        hasher.update(Array("a".utf8))
        hasher.update(Array("bc".utf8))
        #expect(
            Hex.encode(hasher.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    // BIP 173 valid Bech32 strings (age drops the 90-character limit, so the long one must pass too).
    @Test(
        "Bech32 accepts BIP 173 valid strings",
        arguments: [
            "A12UEL5L", "a12uel5l",
            "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "11" + String(repeating: "q", count: 82) + "c8247j",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w", "?1ezyfcl",
        ])
    func bech32Valid(_ string: String) throws {
        let (hrp, words) = try Bech32.decodeWords(string)
        #expect(string.hasPrefix(hrp))
        #expect(words.count == string.count - hrp.count - 7)
    }

    // BIP 173 invalid Bech32 strings (the over-length case is omitted: age sets no length limit).
    @Test(
        "Bech32 rejects BIP 173 invalid strings",
        arguments: [
            "\u{20}1nwldj5", "\u{7f}1axkwrx", "\u{80}1eym55h", "pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v",
            "li1dgmt3", "de1lg7wt\u{ff}", "A1G7SGD8", "10a06t8", "1qzzfhee",
        ])
    func bech32Invalid(_ string: String) {
        #expect(AgeTestSupport.code { _ = try Bech32.decodeWords(string) } == .invalidKey)
    }

    @Test("Bech32 round-trips bytes and rejects mixed case and bad padding")
    func bech32RoundTrip() throws {
        for count in [0, 1, 5, 32, 100] {
            let data = AgeTestSupport.plaintext(count)
            let text = try Bech32.encode(hrp: "test", data: data)
            let (hrp, decoded) = try Bech32.decode(text)
            #expect(hrp == "test" && decoded == data)
            let (upperHRP, upperDecoded) = try Bech32.decode(text.uppercased())
            #expect(upperHRP == "TEST" && upperDecoded == data)
        }
        let text = try Bech32.encode(hrp: "age", data: [UInt8](repeating: 1, count: 32))
        let mixed = "A" + text.dropFirst()
        #expect(AgeTestSupport.code { _ = try Bech32.decode(mixed) } == .invalidKey)
        // "a12uel5l" has no data; one 5-bit word of data carries no full byte and non-zero padding is refused.
        let oneWord = try Bech32.encode(hrp: "a", data: [])
        #expect(try Bech32.decode(oneWord).data.isEmpty)
    }

    // The example key pair from the age specification (c2sp.org/age).
    static let specIdentity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
    static let specRecipient = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"

    @Test("the age spec's example identity yields its example recipient")
    func specKeyPair() throws {
        let identity = try AgeX25519Identity(parsing: Self.specIdentity)
        #expect(identity.recipient.stringValue == Self.specRecipient)
        #expect(identity.stringValue == Self.specIdentity)
        let recipient = try AgeX25519Recipient(parsing: Self.specRecipient)
        #expect(recipient == identity.recipient)
        #expect(try AgeX25519Recipient(publicKey: recipient.publicKey).stringValue == Self.specRecipient)
    }

    @Test("keys are parsed strictly: case, prefix, length, checksum")
    func strictKeyParsing() {
        let bad = [
            Self.specRecipient.uppercased(),  // recipients are lowercase
            Self.specIdentity.lowercased(),  // identities are uppercase
            Self.specRecipient.replacingOccurrences(of: "age1", with: "agf1"),
            String(Self.specRecipient.dropLast()) + "q",  // checksum
            try? Bech32.encode(hrp: "age", data: [UInt8](repeating: 9, count: 31)),  // 31-byte key
            Self.specIdentity + "\n" + Self.specIdentity,  // two keys where one is expected
            "",
        ]
        for text in bad.compactMap({ $0 }) {
            #expect(AgeTestSupport.code { _ = try AgeX25519Recipient(parsing: text) } == .invalidKey)
            #expect(AgeTestSupport.code { _ = try AgeX25519Identity(parsing: text) } == .invalidKey)
        }
    }

    @Test("an age-keygen key file is parsed, comments and blank lines skipped")
    func keyFile() throws {
        let file = """
            # created: 2024-01-01T00:00:00Z
            # public key: \(Self.specRecipient)

            \(Self.specIdentity)\r

            """
        let identity = try AgeX25519Identity(parsing: file)
        #expect(identity.recipient.stringValue == Self.specRecipient)
        #expect(try AgeX25519Identity.parseAll(file + Self.specIdentity).count == 2)
    }

    @Test("generated identities are distinct and round-trip through their strings")
    func generate() throws {
        let a = AgeX25519Identity.generate()
        let b = AgeX25519Identity.generate()
        #expect(a.recipient != b.recipient)
        #expect(try AgeX25519Identity(parsing: a.stringValue).recipient == a.recipient)
        #expect(a.stringValue.hasPrefix("AGE-SECRET-KEY-1") && a.recipient.stringValue.hasPrefix("age1"))
    }

    @Test("an Ed25519 device key's X25519 form works as an age identity")
    func deviceKey() throws {
        let device = SigningKeyPair.generate()
        let identity = try AgeX25519Identity(secretKey: device.x25519SecretKey())
        let recipient = try AgeX25519Recipient(publicKey: SigningKeyPair.x25519PublicKey(fromEd25519: device.publicKey))
        #expect(identity.recipient == recipient)
        let file = try AgeEncryptor.encrypt(Array("hello".utf8), to: [recipient])
        #expect(try AgeDecryption.decrypt(file, identities: [identity]) == Array("hello".utf8))
    }

    @Test("header base64 is canonical and unpadded; armor base64 is canonical and padded")
    func base64() {
        #expect(AgeBase64.decodeUnpadded(Array("AA".utf8)) == [0])
        #expect(AgeBase64.decodeUnpadded(Array("AB".utf8)) == nil)  // non-zero spare bits
        #expect(AgeBase64.decodeUnpadded(Array("AAA".utf8)) == [0, 0])
        #expect(AgeBase64.decodeUnpadded(Array("AAB".utf8)) == nil)
        #expect(AgeBase64.decodeUnpadded(Array("AA==".utf8)) == nil)  // padding is not allowed in headers
        #expect(AgeBase64.decodeUnpadded(Array("A".utf8)) == nil)
        #expect(AgeBase64.decodeUnpadded(Array("AA-A".utf8)) == nil)
        #expect(AgeBase64.decodePadded(Array("AA==".utf8)) == [0])
        #expect(AgeBase64.decodePadded(Array("AB==".utf8)) == nil)
        #expect(AgeBase64.decodePadded(Array("AA".utf8)) == nil)
        #expect(AgeBase64.decodePadded(Array("A===".utf8)) == nil)
        #expect(AgeBase64.decodePadded(Array("AA=A".utf8)) == nil)
        for count in 0..<10 {
            let data = AgeTestSupport.plaintext(count)
            #expect(AgeBase64.decodeUnpadded(AgeBase64.encodeUnpadded(data)) == data)
            #expect(AgeBase64.decodePadded(AgeBase64.encodePadded(data)) == data)
        }
    }
}
