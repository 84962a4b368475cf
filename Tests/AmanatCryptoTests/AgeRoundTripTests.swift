import Testing

@testable import AmanatCrypto

/// A recipient of an unknown type, as a stand-in for other implementations' stanzas ("grease").
struct AgeGreaseRecipient: AgeRecipient {
    var bodyLength = 10

    func wrap(fileKey: SecureBytes) throws -> [AgeStanza] {
        [AgeStanza(type: "example.org/grease", arguments: ["a!", "~b"], body: AgeTestSupport.plaintext(bodyLength))]
    }
}

/// Our encryptor and decryptor together: recipients, armor, sizes and streaming behaviour.
@Suite("age round trips")
struct AgeRoundTripTests {
    static let sizes = [0, 1, 100, 65535, 65536, 65537, 131_072, 200_000]

    @Test("several X25519 recipients, each can decrypt", arguments: sizes, [false, true])
    func multipleRecipients(size: Int, armor: Bool) throws {
        let identities = (0..<3).map { _ in AgeX25519Identity.generate() }
        let plaintext = AgeTestSupport.plaintext(size)
        let file = try AgeEncryptor.encrypt(plaintext, to: identities.map(\.recipient), armor: armor)
        if armor {
            #expect(file.starts(with: Array("-----BEGIN AGE ENCRYPTED FILE-----\n".utf8)))
            #expect(file.allSatisfy { $0 < 0x80 })
        } else {
            #expect(file.starts(with: Array("age-encryption.org/v1\n-> X25519 ".utf8)))
        }
        for identity in identities {
            let outcome = AgeTestSupport.decrypt(file, identities: [identity])
            #expect(outcome.code == nil)
            let roundTripped = outcome.released == plaintext
            #expect(roundTripped)
            let chunks = max(1, (size + AgeStream.chunkSize - 1) / AgeStream.chunkSize)
            #expect(outcome.chunkSizes.count == chunks)
            #expect(outcome.chunkSizes.allSatisfy { $0 <= AgeStream.chunkSize })
        }
        if !armor {
            let chunks = max(1, (size + AgeStream.chunkSize - 1) / AgeStream.chunkSize)
            #expect(file.count == AgeTestSupport.headerLength(file) + 16 + chunks * 16 + size)
        }
    }

    @Test("passphrase round trip, binary and armored", arguments: [false, true])
    func passphrase(armor: Bool) throws {
        let plaintext = AgeTestSupport.plaintext(70000)
        let file = try AgeEncryptor.encrypt(plaintext, to: [AgeTestSupport.scryptRecipient("hunter2")], armor: armor)
        let outcome = AgeTestSupport.decrypt(file, identities: [try AgeTestSupport.scryptIdentity("hunter2")])
        let roundTripped = outcome.released == plaintext
        #expect(outcome.code == nil && roundTripped)
    }

    @Test("the first matching identity is used; non-matching ones are skipped")
    func identityOrder() throws {
        let stranger = AgeX25519Identity.generate()
        let owner = AgeX25519Identity.generate()
        let file = try AgeEncryptor.encrypt([1, 2, 3], to: [owner.recipient])
        let identities: [any AgeIdentity] = [stranger, try AgeTestSupport.scryptIdentity("x"), owner]
        #expect(try AgeDecryption.decrypt(file, identities: identities) == [1, 2, 3])
    }

    @Test("unknown stanzas are written and ignored, however placed")
    func grease() throws {
        let identity = AgeX25519Identity.generate()
        for body in [0, 47, 48, 49, 96, 500] {
            let recipients: [any AgeRecipient] = [
                AgeGreaseRecipient(bodyLength: body), identity.recipient, AgeGreaseRecipient(bodyLength: body),
            ]
            let file = try AgeEncryptor.encrypt([9, 9, 9], to: recipients)
            #expect(try AgeDecryption.decrypt(file, identities: [identity]) == [9, 9, 9])
        }
    }

    @Test("streaming writes of uneven sizes give the same plaintext, with output bounded to one batch of chunks")
    func streaming() throws {
        let identity = AgeX25519Identity.generate()
        let plaintext = AgeTestSupport.plaintext(400_000)
        for armor in [false, true] {
            var file = [UInt8]()
            var largestWrite = 0
            let encryptor = try AgeEncryptor(recipients: [identity.recipient], armor: armor) { bytes in
                file += bytes
                largestWrite = max(largestWrite, bytes.count)
            }
            var index = 0
            var step = 1
            while index < plaintext.count {
                let end = min(plaintext.count, index + step)
                try encryptor.write(Array(plaintext[index..<end]))
                index = end
                step = step * 7 + 3
                // Everything but at most one chunk of plaintext has already been encrypted and written out.
                let emittedPlaintext = armor ? file.count * 3 / 4 : file.count
                #expect(emittedPlaintext + 2 * AgeStream.encryptedChunkSize >= index)
            }
            try encryptor.finish()
            // A write that brings several full chunks seals up to `parallelChunks` of them at once.
            #expect(largestWrite <= AgeEncryptor.parallelChunks * AgeStream.encryptedChunkSize * 4 / 3 + 2000)
            #expect(largestWrite > AgeStream.encryptedChunkSize * 4 / 3 + 2000, "the 176 KiB write sealed in one batch")
            #expect(AgeTestSupport.code { try encryptor.write([1]) } == .invalidUse)
            #expect(AgeTestSupport.code { try encryptor.finish() } == .invalidUse)

            // Decrypt reading the input a few bytes at a time, to exercise the buffered reader.
            var position = 0
            var released = [UInt8]()
            let source = AgeClosureSource { maxCount in
                let end = min(file.count, position + min(maxCount, 997))
                defer { position = end }
                return Array(file[position..<end])
            }
            try AgeDecryption.decrypt(input: source, identities: [identity]) { chunk in
                #expect(chunk.count <= AgeStream.chunkSize)
                released += chunk
            }
            let roundTripped = released == plaintext
            #expect(roundTripped)
        }
    }

    @Test("a one-byte-at-a-time input source still parses header, armor and payload")
    func tinyReads() throws {
        let identity = AgeX25519Identity.generate()
        for armor in [false, true] {
            let file = try AgeEncryptor.encrypt(AgeTestSupport.plaintext(1000), to: [identity.recipient], armor: armor)
            var position = 0
            let source = AgeClosureSource { _ in
                guard position < file.count else { return [] }
                position += 1
                return [file[position - 1]]
            }
            var released = [UInt8]()
            try AgeDecryption.decrypt(input: source, identities: [identity]) { released += $0 }
            #expect(released == AgeTestSupport.plaintext(1000))
        }
    }

    @Test("armored output follows the strict layout: 64 columns, padded last line, END line")
    func armorLayout() throws {
        let identity = AgeX25519Identity.generate()
        for size in [0, 1, 2, 3, 100, 1000] {
            let file = try AgeEncryptor.encrypt(AgeTestSupport.plaintext(size), to: [identity.recipient], armor: true)
            let lines = String(decoding: file, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.first == "-----BEGIN AGE ENCRYPTED FILE-----")
            #expect(lines[lines.count - 2] == "-----END AGE ENCRYPTED FILE-----" && lines.last == "")
            let body = lines[1..<(lines.count - 2)]
            #expect(body.dropLast().allSatisfy { $0.count == 64 })
            #expect((1...64).contains(body.last?.count ?? 0) && (body.last?.count ?? 0) % 4 == 0)
        }
    }
}
