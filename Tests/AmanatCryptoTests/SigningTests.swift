import AmanatCrypto
import CSodium
import Testing

/// One Ed25519 known answer of RFC 8032 §7.1.
struct Ed25519Vector: Sendable, CustomTestStringConvertible {
    var name: String
    var seed: String
    var publicKey: String
    var message: String
    var signature: String

    var testDescription: String { name }
}

@Suite("Ed25519 signing (SigningKeyPair)")
struct SigningTests {
    static let rfc8032: [Ed25519Vector] = [
        Ed25519Vector(
            name: "RFC 8032 TEST 1",
            seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Ed25519Vector(
            name: "RFC 8032 TEST 2",
            seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        Ed25519Vector(
            name: "RFC 8032 TEST 3",
            seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            message: "af82",
            signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                + "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        Ed25519Vector(
            name: "RFC 8032 TEST SHA(abc)",
            seed: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
            publicKey: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
            message: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            signature: "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
                + "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
    ]

    @Test("seed gives the published public key and signature", arguments: rfc8032)
    func knownAnswer(_ vector: Ed25519Vector) throws {
        let pair = try SigningKeyPair(seed: SecureBytes(unhex(vector.seed)))
        let message = try unhex(vector.message)
        #expect(Hex.encode(pair.publicKey) == vector.publicKey)
        #expect(Hex.encode(pair.sign(message)) == vector.signature)
        #expect(Hex.encode(pair.seed.copyBytes()) == vector.seed)
        #expect(SigningKeyPair.verify(try unhex(vector.signature), of: message, publicKey: pair.publicKey))
    }

    @Test("a flipped bit in message, signature or public key fails verification", arguments: rfc8032)
    func flippedBitsFail(_ vector: Ed25519Vector) throws {
        let message = try unhex(vector.message)
        let signature = try unhex(vector.signature)
        let publicKey = try unhex(vector.publicKey)
        for index in message.indices {
            for bit in 0..<8 {
                let forged = flipping(message, byte: index, bit: bit)
                #expect(!SigningKeyPair.verify(signature, of: forged, publicKey: publicKey), "message byte \(index)")
            }
        }
        // A longer or shorter message is a different message.
        #expect(!SigningKeyPair.verify(signature, of: message + [0], publicKey: publicKey))
        if !message.isEmpty {
            #expect(!SigningKeyPair.verify(signature, of: Array(message.dropLast()), publicKey: publicKey))
        }
        for index in signature.indices {
            for bit in 0..<8 {
                let forged = flipping(signature, byte: index, bit: bit)
                #expect(!SigningKeyPair.verify(forged, of: message, publicKey: publicKey), "signature \(index).\(bit)")
            }
        }
        for index in publicKey.indices {
            for bit in 0..<8 {
                let other = flipping(publicKey, byte: index, bit: bit)
                #expect(!SigningKeyPair.verify(signature, of: message, publicKey: other), "public key \(index).\(bit)")
            }
        }
    }

    @Test("signatures and keys of the wrong length are rejected, not truncated")
    func wrongLengths() throws {
        let vector = Self.rfc8032[2]
        let message = try unhex(vector.message)
        let signature = try unhex(vector.signature)
        let publicKey = try unhex(vector.publicKey)
        #expect(!SigningKeyPair.verify(signature + [0], of: message, publicKey: publicKey))
        #expect(!SigningKeyPair.verify(Array(signature.dropLast()), of: message, publicKey: publicKey))
        #expect(!SigningKeyPair.verify(signature, of: message, publicKey: publicKey + [0]))
        #expect(!SigningKeyPair.verify(signature, of: message, publicKey: Array(publicKey.dropLast())))
        #expect(!SigningKeyPair.verify([], of: message, publicKey: publicKey))
        #expect(cryptoErrorCode { try SigningKeyPair(seed: SecureBytes(count: 31)) } == .invalidInput)
        #expect(cryptoErrorCode { try SigningKeyPair(seed: SecureBytes(count: 33)) } == .invalidInput)
    }

    @Test("a signature from another key does not verify")
    func otherSigner() {
        let alice = SigningKeyPair.generate()
        let mallory = SigningKeyPair.generate()
        let message = Array("a testimony".utf8)
        #expect(alice.publicKey != mallory.publicKey)
        #expect(SigningKeyPair.verify(alice.sign(message), of: message, publicKey: alice.publicKey))
        #expect(!SigningKeyPair.verify(mallory.sign(message), of: message, publicKey: alice.publicKey))
    }

    @Test("signing is deterministic and a pair rebuilt from its seed is the same pair")
    func deterministic() throws {
        let pair = SigningKeyPair.generate()
        let again = try SigningKeyPair(seed: SecureBytes(pair.seed.copyBytes()))
        let message = Array(0..<200).map { UInt8($0) }
        #expect(again.publicKey == pair.publicKey)
        #expect(again.sign(message) == pair.sign(message))
        #expect(pair.sign(message) != pair.sign(message + [1]))
    }

    @Test("the X25519 public key of a pair is the base-point multiple of its X25519 secret key")
    func x25519Conversion() throws {
        for _ in 0..<16 {
            let pair = SigningKeyPair.generate()
            let converted = try SigningKeyPair.x25519PublicKey(fromEd25519: pair.publicKey)
            let secret = pair.x25519SecretKey()
            #expect(secret.count == 32)
            var fromSecret = [UInt8](repeating: 0, count: 32)
            let rc = secret.withUnsafePointer { crypto_scalarmult_base(&fromSecret, $0) }
            #expect(rc == 0)
            #expect(converted == fromSecret)
            #expect(converted != pair.publicKey)
        }
    }

    @Test("the X25519 secret key is the clamped SHA-512 of the seed (RFC 7748 / libsodium)")
    func x25519SecretFromSeed() throws {
        let vector = Self.rfc8032[0]
        let pair = try SigningKeyPair(seed: SecureBytes(unhex(vector.seed)))
        var digest = [UInt8](repeating: 0, count: 64)
        let seed = try unhex(vector.seed)
        _ = crypto_hash_sha512(&digest, seed, UInt64(seed.count))
        var expected = Array(digest[0..<32])
        expected[0] &= 248
        expected[31] &= 127
        expected[31] |= 64
        #expect(pair.x25519SecretKey().copyBytes() == expected)
    }

    @Test("invalid Ed25519 public keys cannot be converted to X25519")
    func invalidConversion() throws {
        // Wrong lengths.
        #expect(
            cryptoErrorCode { try SigningKeyPair.x25519PublicKey(fromEd25519: [UInt8](repeating: 9, count: 31)) }
                == .invalidInput)
        #expect(
            cryptoErrorCode { try SigningKeyPair.x25519PublicKey(fromEd25519: [UInt8](repeating: 9, count: 33)) }
                == .invalidInput)
        // The identity point (y = 1) has small order: converting it would give a useless recipient.
        let identity = [UInt8(1)] + [UInt8](repeating: 0, count: 31)
        #expect(cryptoErrorCode { try SigningKeyPair.x25519PublicKey(fromEd25519: identity) } == .invalidInput)
    }
}
