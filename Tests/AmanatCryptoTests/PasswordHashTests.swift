import AmanatCrypto
import Testing

/// An Argon2id v1.3 known answer with parallelism 1, no secret and no associated data (what libsodium computes).
struct Argon2idVector: Sendable, CustomTestStringConvertible {
    var passphrase: String
    var opsLimit: UInt64
    var memLimitKiB: UInt64
    var expected: String

    var testDescription: String { "\(passphrase) t=\(opsLimit) m=\(memLimitKiB)KiB" }
}

@Suite("Argon2id (PasswordHash)")
struct PasswordHashTests {
    static let salt = Array("ABCDEFGHIJKLMNOP".utf8)
    static let cheapOps: UInt64 = 1
    static let cheapMem: UInt64 = 64 * 1024

    // From the reference `argon2` command line (`echo -n 123 | argon2 ABCDEFGHIJKLMNOP -id -v 13 -k 1024 -t 5`,
    // parallelism 1, 32-byte output), as published in the iov-core test suite, which checks them against libsodium.
    static let vectors: [Argon2idVector] = [
        Argon2idVector(
            passphrase: "123", opsLimit: 5, memLimitKiB: 1024,
            expected: "3c5d010180ba0cf5b6b858cba23b318e42d33088983c404598599c3b029ecac6"),
        Argon2idVector(
            passphrase: "ö", opsLimit: 5, memLimitKiB: 1024,
            expected: "b113fc7863dbc87b7d1366c3b468d3864a2473ce46e90ed3641fff87ada561f7"),
        Argon2idVector(
            passphrase: "123", opsLimit: 2, memLimitKiB: 8 * 1024,
            expected: "3ee950488d26ce691657b1d753f562139857b61a58f234d6cb0ce84c4cc27328"),
    ]

    static func derive(_ passphrase: String, salt: [UInt8] = salt, ops: UInt64 = cheapOps, mem: UInt64 = cheapMem)
        throws -> [UInt8]
    {
        try PasswordHash.deriveKey(
            passphrase: SecureBytes(Array(passphrase.utf8)), salt: salt, opsLimit: ops, memLimit: mem
        ).copyBytes()
    }

    @Test("known answers of the reference Argon2id implementation", arguments: vectors)
    func knownAnswer(_ vector: Argon2idVector) throws {
        let key = try Self.derive(vector.passphrase, ops: vector.opsLimit, mem: vector.memLimitKiB * 1024)
        #expect(Hex.encode(key) == vector.expected)
    }

    @Test("derivation is deterministic and depends on the salt and the passphrase")
    func deterministic() throws {
        let a = try Self.derive("correct horse")
        #expect(a.count == 32)
        #expect(try Self.derive("correct horse") == a)
        #expect(try Self.derive("correct horsf") != a)
        #expect(try Self.derive("correct horse", salt: flipping(Self.salt, byte: 15)) != a)
        #expect(try Self.derive("correct horse", ops: 2) != a)
        #expect(try Self.derive("correct horse", mem: 2 * Self.cheapMem) != a)
    }

    @Test("the output length is honoured")
    func length() throws {
        let key = try PasswordHash.deriveKey(
            passphrase: SecureBytes(Array("pw".utf8)), salt: Self.salt, opsLimit: Self.cheapOps,
            memLimit: Self.cheapMem, length: 64)
        #expect(key.count == 64)
    }

    @Test("a salt that is not 16 bytes is rejected with .invalidInput", arguments: [0, 8, 15, 17, 32])
    func saltLength(_ length: Int) {
        #expect(PasswordHash.saltLength == 16)
        let salt = [UInt8](repeating: 1, count: length)
        #expect(cryptoErrorCode { try Self.derive("pw", salt: salt) } == .invalidInput)
    }

    @Test("out-of-range cost parameters are rejected with .invalidInput")
    func outOfRange() {
        #expect(cryptoErrorCode { try Self.derive("pw", ops: 0) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", ops: 65) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", ops: UInt64.max) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", mem: 0) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", mem: 8191) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", mem: (1 << 32) + 1) } == .invalidInput)
        #expect(cryptoErrorCode { try Self.derive("pw", mem: UInt64.max) } == .invalidInput)
    }

    @Test("the named strengths are libsodium's Argon2id cost levels")
    func strengths() {
        #expect(PasswordHash.Strength.interactive.opsLimit == 2)
        #expect(PasswordHash.Strength.interactive.memLimit == 64 << 20)
        #expect(PasswordHash.Strength.moderate.opsLimit == 3)
        #expect(PasswordHash.Strength.moderate.memLimit == 256 << 20)
        #expect(PasswordHash.Strength.sensitive.opsLimit == 4)
        #expect(PasswordHash.Strength.sensitive.memLimit == 1 << 30)
        #expect(PasswordHash.Strength(rawValue: "moderate") == .moderate)
    }
}
