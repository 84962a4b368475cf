import AmanatCrypto
import Testing

@Suite("KeyDerivation (crypto_kdf)")
struct KeyDerivationTests {
    static let master = SecureBytes(counting(from: 0, count: 32))

    // libsodium test/default/kdf.exp: master key 00..1f, context "KDF test".
    @Test(
        "libsodium known answers",
        arguments: [
            (
                0, 64,
                "a0c724404728c8bb95e5433eb6a9716171144d61efb23e74b873fcbeda51d807"
                    + "1b5d70aae12066dfc94ce943f145aa176c055040c3dd73b0a15e36254d450614"
            ),
            (
                1, 64,
                "02507f144fa9bf19010bf7c70b235b4c2663cc00e074f929602a5e2c10a78075"
                    + "7d2a3993d06debc378a90efdac196dd841817b977d67b786804f6d3cd585bab5"
            ),
            (16, 16, "a529216624ef9161e4cf117272aafff2"),
            (32, 32, "154b291f11196737f8b7f491e4ca11764e0227d34f94295408a869f007aa8618"),
        ])
    func knownAnswers(id: UInt64, length: Int, expected: String) {
        let key = KeyDerivation.deriveSubkey(from: Self.master, id: id, context: "KDF test", length: length)
        #expect(Hex.encode(key.copyBytes()) == expected)
    }

    @Test("subkeys are deterministic and differ by id, context and master key")
    func separation() {
        let a = KeyDerivation.deriveSubkey(from: Self.master, id: 1, context: "amnt-env")
        #expect(a.count == 32)
        #expect(a.constantTimeEquals(KeyDerivation.deriveSubkey(from: Self.master, id: 1, context: "amnt-env")))
        #expect(!a.constantTimeEquals(KeyDerivation.deriveSubkey(from: Self.master, id: 2, context: "amnt-env")))
        #expect(!a.constantTimeEquals(KeyDerivation.deriveSubkey(from: Self.master, id: 1, context: "amnt-prj")))
        let otherMaster = SecureBytes(flipping(counting(from: 0, count: 32), byte: 0))
        #expect(!a.constantTimeEquals(KeyDerivation.deriveSubkey(from: otherMaster, id: 1, context: "amnt-env")))
        #expect(!a.constantTimeEquals(Self.master))
        // The id is a full 64-bit number: ids that agree in their low bytes still differ.
        let low = KeyDerivation.deriveSubkey(from: Self.master, id: 1, context: "amnt-env")
        let high = KeyDerivation.deriveSubkey(from: Self.master, id: 1 | (1 << 56), context: "amnt-env")
        #expect(!low.constantTimeEquals(high))
    }
}
