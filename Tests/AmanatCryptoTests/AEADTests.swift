import AmanatCrypto
import Testing

@Suite("XChaCha20-Poly1305 (AEAD)")
struct AEADTests {
    // draft-irtf-cfrg-xchacha-03, Appendix A.3.1.
    static let plaintext = Array(
        ("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
            + "sunscreen would be it.").utf8)
    static let additionalData = "50515253c0c1c2c3c4c5c6c7"
    static let ciphertext =
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        + "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        + "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        + "21f9664c97637da9768812f615c68b13b52e"
    static let tag = "c0875924c1c7987947deafd8780acf49"
    static let key = counting(from: 0x80, count: 32)
    static let nonce = counting(from: 0x40, count: 24)

    @Test("draft-irtf-cfrg-xchacha A.3.1: exact ciphertext and tag")
    func knownAnswer() throws {
        #expect(Hex.encode(Self.key) == "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        #expect(Hex.encode(Self.nonce) == "404142434445464748494a4b4c4d4e4f5051525354555657")
        #expect(Self.plaintext.count == 114)
        let sealed = try AEAD.seal(
            Self.plaintext, additionalData: unhex(Self.additionalData), nonce: Self.nonce, key: SecureBytes(Self.key))
        #expect(sealed.count == Self.plaintext.count + AEAD.tagLength)
        #expect(Hex.encode(sealed.prefix(Self.plaintext.count)) == Self.ciphertext)
        #expect(Hex.encode(sealed.suffix(AEAD.tagLength)) == Self.tag)
        let opened = try AEAD.open(
            unhex(Self.ciphertext + Self.tag), additionalData: unhex(Self.additionalData), nonce: Self.nonce,
            key: SecureBytes(Self.key))
        #expect(opened == Self.plaintext)
    }

    @Test("parameter sizes are those of the IETF XChaCha20-Poly1305 construction")
    func sizes() {
        #expect(AEAD.keyLength == 32)
        #expect(AEAD.nonceLength == 24)
        #expect(AEAD.tagLength == 16)
        let a = AEAD.randomNonce()
        let b = AEAD.randomNonce()
        #expect(a.count == 24)
        #expect(a != b)
    }

    @Test("authenticates checks the tag of the known answer without decrypting, and refuses every bit flipped")
    func authenticatesWithoutDecrypting() throws {
        let key = SecureBytes(Self.key)
        let aad = try unhex(Self.additionalData)
        let sealed = try unhex(Self.ciphertext + Self.tag)
        func check(_ bytes: [UInt8], _ aad: [UInt8], _ nonce: [UInt8], _ key: SecureBytes) -> Bool {
            bytes.withUnsafeBytes { AEAD.authenticates($0, additionalData: aad, nonce: nonce[...], key: key) }
        }
        #expect(check(sealed, aad, Self.nonce, key))
        for index in sealed.indices {
            #expect(!check(flipping(sealed, byte: index, bit: index % 8), aad, Self.nonce, key), "byte \(index)")
        }
        #expect(!check(sealed, aad + [0], Self.nonce, key))
        #expect(!check(sealed, aad, flipping(Self.nonce, byte: 0, bit: 0), key))
        #expect(!check(sealed, aad, Self.nonce, SecureBytes(flipping(Self.key, byte: 0, bit: 0))))
        #expect(!check(Array(sealed.prefix(AEAD.tagLength - 1)), aad, Self.nonce, key))
        #expect(!check(sealed, aad, Array(Self.nonce.prefix(23)), key))
    }

    @Test("every kind of alteration fails with .authenticationFailed")
    func alterationsFail() throws {
        let key = SecureBytes(Self.key)
        let aad = try unhex(Self.additionalData)
        let sealed = try unhex(Self.ciphertext + Self.tag)

        let randomKey = SecureBytes.random(count: 32)
        #expect(
            cryptoErrorCode { try AEAD.open(sealed, additionalData: aad, nonce: Self.nonce, key: randomKey) }
                == .authenticationFailed)
        let wrongKey = SecureBytes(flipping(Self.key, byte: 31, bit: 7))
        #expect(
            cryptoErrorCode { try AEAD.open(sealed, additionalData: aad, nonce: Self.nonce, key: wrongKey) }
                == .authenticationFailed)
        for index in Self.nonce.indices {
            let nonce = flipping(Self.nonce, byte: index, bit: index % 8)
            #expect(
                cryptoErrorCode { try AEAD.open(sealed, additionalData: aad, nonce: nonce, key: key) }
                    == .authenticationFailed, "nonce byte \(index)")
        }
        for index in aad.indices {
            for bit in 0..<8 {
                let other = flipping(aad, byte: index, bit: bit)
                #expect(
                    cryptoErrorCode { try AEAD.open(sealed, additionalData: other, nonce: Self.nonce, key: key) }
                        == .authenticationFailed, "associated data \(index).\(bit)")
            }
        }
        #expect(
            cryptoErrorCode { try AEAD.open(sealed, additionalData: [], nonce: Self.nonce, key: key) }
                == .authenticationFailed)
        #expect(
            cryptoErrorCode { try AEAD.open(sealed, additionalData: aad + [0], nonce: Self.nonce, key: key) }
                == .authenticationFailed)
        for index in sealed.indices.suffix(AEAD.tagLength) {
            for bit in 0..<8 {
                let forged = flipping(sealed, byte: index, bit: bit)
                #expect(
                    cryptoErrorCode { try AEAD.open(forged, additionalData: aad, nonce: Self.nonce, key: key) }
                        == .authenticationFailed, "tag \(index).\(bit)")
            }
        }
        for length in [0, 1, AEAD.tagLength - 1, AEAD.tagLength, sealed.count - 1] {
            let truncated = Array(sealed.prefix(length))
            #expect(
                cryptoErrorCode { try AEAD.open(truncated, additionalData: aad, nonce: Self.nonce, key: key) }
                    == .authenticationFailed, "truncated to \(length)")
        }
        #expect(
            cryptoErrorCode { try AEAD.open(sealed + [0], additionalData: aad, nonce: Self.nonce, key: key) }
                == .authenticationFailed)
    }

    @Test("flipping any bit of a short sealed message fails with .authenticationFailed")
    func everyBitOfShortMessage() throws {
        let key = SecureBytes.random(count: 32)
        let nonce = AEAD.randomNonce()
        let aad = Array("header".utf8)
        let message = Array("tip".utf8)
        let sealed = try AEAD.seal(message, additionalData: aad, nonce: nonce, key: key)
        #expect(try AEAD.open(sealed, additionalData: aad, nonce: nonce, key: key) == message)
        #expect(sealed.prefix(message.count).elementsEqual(message) == false)
        for index in sealed.indices {
            for bit in 0..<8 {
                let forged = flipping(sealed, byte: index, bit: bit)
                #expect(
                    cryptoErrorCode { try AEAD.open(forged, additionalData: aad, nonce: nonce, key: key) }
                        == .authenticationFailed, "byte \(index) bit \(bit)")
            }
        }
    }

    @Test("an empty plaintext still carries a tag that authenticates the associated data")
    func emptyPlaintext() throws {
        let key = SecureBytes.random(count: 32)
        let nonce = AEAD.randomNonce()
        let sealed = try AEAD.seal([], additionalData: [1, 2, 3], nonce: nonce, key: key)
        #expect(sealed.count == AEAD.tagLength)
        #expect(try AEAD.open(sealed, additionalData: [1, 2, 3], nonce: nonce, key: key) == [])
        #expect(
            cryptoErrorCode { try AEAD.open(sealed, additionalData: [1, 2, 4], nonce: nonce, key: key) }
                == .authenticationFailed)
    }

    @Test("the same plaintext under two nonces gives unrelated ciphertexts")
    func noncesMatter() throws {
        let key = SecureBytes.random(count: 32)
        let message = [UInt8](repeating: 0, count: 64)
        let a = try AEAD.seal(message, additionalData: [], nonce: AEAD.randomNonce(), key: key)
        let b = try AEAD.seal(message, additionalData: [], nonce: AEAD.randomNonce(), key: key)
        #expect(a != b)
        #expect(a.prefix(64) != message[...])
    }

    @Test("keys and nonces of the wrong length are rejected with .invalidInput")
    func wrongLengths() {
        let good = SecureBytes.random(count: 32)
        let nonce = AEAD.randomNonce()
        let sealed = [UInt8](repeating: 0, count: 17)
        for length in [0, 16, 31, 33, 64] {
            let key = SecureBytes.random(count: length)
            #expect(cryptoErrorCode { try AEAD.seal([1], additionalData: [], nonce: nonce, key: key) } == .invalidInput)
            #expect(
                cryptoErrorCode { try AEAD.open(sealed, additionalData: [], nonce: nonce, key: key) } == .invalidInput)
        }
        for length in [0, 12, 23, 25] {
            let badNonce = [UInt8](repeating: 7, count: length)
            #expect(
                cryptoErrorCode { try AEAD.seal([1], additionalData: [], nonce: badNonce, key: good) } == .invalidInput)
            #expect(
                cryptoErrorCode { try AEAD.open(sealed, additionalData: [], nonce: badNonce, key: good) }
                    == .invalidInput)
        }
    }
}

@Suite("AEAD over caller-held buffers")
struct AEADBufferTests {
    @Test("sealing into a buffer and opening from one give the same bytes as the array forms; alterations fail")
    func buffersMatchArrays() throws {
        let key = SecureBytes.random(count: AEAD.keyLength)
        let nonce = Sodium.randomBytes(AEAD.nonceLength)
        let ad = Array("amanat/chunk/v1".utf8)
        // From 16 KiB on, the buffer forms go through BoringSSL and the array forms through libsodium (AEAD.swift,
        // LargeMessages): each side of that threshold, and a whole attachment chunk, must give the same bytes.
        for length in [0, 1, 4095, 16_383, 16_384, 16_385, 65_537, (1 << 20) + 3] {
            let plaintext = Sodium.randomBytes(length)
            let expected = try AEAD.seal(plaintext, additionalData: ad, nonce: nonce, key: key)
            var out = [UInt8](repeating: 0, count: length + AEAD.tagLength)
            try plaintext.withUnsafeBytes { p in
                try out.withUnsafeMutableBytes { o in
                    try AEAD.seal(p, additionalData: ad, nonce: nonce[...], key: key, into: o)
                }
            }
            #expect(out == expected)
            let opened = try out.withUnsafeBytes {
                try AEAD.open($0, additionalData: ad, nonce: nonce[...], key: key)
            }
            #expect(opened == plaintext)
            var altered = out
            altered[altered.count - 1] ^= 1
            #expect(throws: CryptoError.self) {
                try altered.withUnsafeBytes { try AEAD.open($0, additionalData: ad, nonce: nonce[...], key: key) }
            }
            #expect(throws: CryptoError.self) {
                try out.withUnsafeBytes { try AEAD.open($0, additionalData: ad + [1], nonce: nonce[...], key: key) }
            }
            // Opened into a buffer: the same plaintext; altered, an error and a zeroed buffer (nothing
            // unauthenticated is left in it); a buffer of another size is refused, not overrun.
            var into = [UInt8](repeating: 0xEE, count: length)
            try out.withUnsafeBytes { c in
                try into.withUnsafeMutableBytes {
                    try AEAD.open(c, additionalData: ad, nonce: nonce[...], key: key, into: $0)
                }
            }
            #expect(into == plaintext)
            #expect(throws: CryptoError.self) {
                try altered.withUnsafeBytes { c in
                    try into.withUnsafeMutableBytes {
                        try AEAD.open(c, additionalData: ad, nonce: nonce[...], key: key, into: $0)
                    }
                }
            }
            #expect(into.allSatisfy { $0 == 0 })
            var wrong = [UInt8](repeating: 0, count: length + 1)
            #expect(throws: CryptoError.self) {
                try out.withUnsafeBytes { c in
                    try wrong.withUnsafeMutableBytes {
                        try AEAD.open(c, additionalData: ad, nonce: nonce[...], key: key, into: $0)
                    }
                }
            }
            // A buffer of the wrong size is refused, not overrun.
            var short = [UInt8](repeating: 0, count: length + AEAD.tagLength - 1)
            #expect(throws: CryptoError.self) {
                try plaintext.withUnsafeBytes { p in
                    try short.withUnsafeMutableBytes { o in
                        try AEAD.seal(p, additionalData: ad, nonce: nonce[...], key: key, into: o)
                    }
                }
            }
        }
    }
}
