import Testing

@testable import AmanatCrypto

/// Failure handling: every damaged or mismatched input gets the right error class and releases nothing that did not
/// authenticate.
@Suite("age failures")
struct AgeNegativeTests {
    static let chunk = AgeStream.chunkSize
    static let sealedChunk = AgeStream.encryptedChunkSize

    /// A binary file of three full chunks and a 100-byte final chunk, with its identity and plaintext.
    struct Fixture {
        let identity = AgeX25519Identity.generate()
        let plaintext = AgeTestSupport.plaintext(3 * AgeStream.chunkSize + 100)
        let file: [UInt8]
        let payloadStart: Int

        init() throws {
            file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
            payloadStart = AgeTestSupport.headerLength(file) + 16
        }

        func decrypt(_ bytes: [UInt8]) -> AgeTestSupport.Outcome {
            AgeTestSupport.decrypt(bytes, identities: [identity])
        }
    }

    /// Builds a file chunk by chunk with internal helpers, to reach states our encryptor never produces.
    static func craft(
        to recipient: AgeX25519Recipient, chunks: [(plaintext: [UInt8], last: Bool)], trailing: [UInt8] = []
    ) throws -> [UInt8] {
        let fileKey = SecureBytes.random(count: 16)
        var out = try AgeHeader.encode(stanzas: recipient.wrap(fileKey: fileKey), fileKey: fileKey)
        let nonce = Sodium.randomBytes(16)
        out += nonce
        let key = try AgeStream.payloadKey(fileKey: fileKey, nonce: nonce)
        for (index, chunk) in chunks.enumerated() {
            let nonce = AgeStream.chunkNonce(counter: UInt64(index), last: chunk.last)
            out += chunk.plaintext.withUnsafeBytes { AgeStream.seal($0, key: key, nonce: nonce) }
        }
        return out + trailing
    }

    @Test("a wrong identity or passphrase is no match, and nothing is released")
    func wrongKeys() throws {
        let fixture = try Fixture()
        let stranger = AgeTestSupport.decrypt(fixture.file, identities: [AgeX25519Identity.generate()])
        #expect(stranger.code == .noMatch && stranger.released.isEmpty)
        let none = AgeTestSupport.decrypt(fixture.file, identities: [])
        #expect(none.code == .noMatch)
        let passphraseOnX25519 = AgeTestSupport.decrypt(
            fixture.file, identities: [try AgeTestSupport.scryptIdentity("hunter2")])
        #expect(passphraseOnX25519.code == .noMatch)

        let locked = try AgeEncryptor.encrypt([1, 2, 3], to: [AgeTestSupport.scryptRecipient("hunter2")])
        let wrong = AgeTestSupport.decrypt(locked, identities: [try AgeTestSupport.scryptIdentity("hunter3")])
        #expect(wrong.code == .noMatch && wrong.released.isEmpty)
        let x25519OnScrypt = AgeTestSupport.decrypt(locked, identities: [AgeX25519Identity.generate()])
        #expect(x25519OnScrypt.code == .noMatch)
        let lowLimit = try AgeScryptIdentity(passphrase: SecureBytes(Array("hunter2".utf8)), maxWorkFactor: 9)
        #expect(AgeTestSupport.decrypt(locked, identities: [lowLimit]).code == .headerFailure)
    }

    @Test("truncation at and between chunk boundaries releases exactly the whole chunks before the cut")
    func truncation() throws {
        let fixture = try Fixture()
        let start = fixture.payloadStart
        for k in 0...3 {
            for extra in [0, 1, 1000, Self.sealedChunk - 1] where k < 3 || extra < 100 + 16 {
                let cut = start + k * Self.sealedChunk + extra
                let outcome = fixture.decrypt(Array(fixture.file[..<cut]))
                #expect(outcome.code == .payloadFailure, "cut at \(cut)")
                #expect(same(outcome.released, fixture.plaintext[..<(k * Self.chunk)]), "cut at \(cut)")
            }
        }
        for cut in [0, 10, start - 17, start - 16, start - 1] {
            let outcome = fixture.decrypt(Array(fixture.file[..<cut]))
            #expect(outcome.code == .headerFailure, "cut at \(cut)")
            #expect(outcome.released.isEmpty)
        }
        #expect(same(fixture.decrypt(fixture.file).released, fixture.plaintext[...]))
    }

    @Test("every single flipped header byte is refused before any plaintext is released")
    func flippedHeaderBytes() throws {
        let fixture = try Fixture()
        let headerLength = fixture.payloadStart - 16
        for index in 0..<headerLength {
            var damaged = fixture.file
            damaged[index] ^= 0x01
            let outcome = fixture.decrypt(damaged)
            #expect([.headerFailure, .hmacFailure, .noMatch].contains(outcome.code), "byte \(index)")
            #expect(outcome.released.isEmpty, "byte \(index)")
        }
    }

    @Test("a changed MAC, or a changed stanza of another recipient, is an HMAC failure")
    func hmacFailures() throws {
        let me = AgeX25519Identity.generate()
        let other = AgeX25519Identity.generate()
        let file = try AgeEncryptor.encrypt([1, 2, 3], to: [me.recipient, AgeGreaseRecipient(), other.recipient])
        let text = String(decoding: file[..<AgeTestSupport.headerLength(file)], as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)

        func replacingLine(_ index: Int, _ transform: (String) -> String) -> [UInt8] {
            var changed = lines
            changed[index] = transform(changed[index])
            return Array((changed.joined(separator: "\n") + "\n").utf8) + file[AgeTestSupport.headerLength(file)...]
        }
        // Swap two base64 characters in the middle of the MAC, keeping it canonical.
        let macLine = lines.count - 1
        let changedMAC = replacingLine(macLine) { line in
            var chars = Array(line)
            chars[10] = chars[10] == "A" ? "B" : "A"
            return String(chars)
        }
        #expect(AgeTestSupport.decrypt(changedMAC, identities: [me]).code == .hmacFailure)
        // The other recipient's stanza body (line 6: version, me ×2, grease ×2, other's argument line, body).
        let otherBody = lines.firstIndex { $0.hasPrefix("-> X25519") && $0 != lines[1] }.map { $0 + 1 } ?? 0
        let changedStanza = replacingLine(otherBody) { line in
            var chars = Array(line)
            chars[5] = chars[5] == "A" ? "B" : "A"
            return String(chars)
        }
        #expect(AgeTestSupport.decrypt(changedStanza, identities: [me]).code == .hmacFailure)
        #expect(AgeTestSupport.decrypt(changedStanza, identities: [other]).code == .noMatch)
        let changedGrease = replacingLine(3) { $0.replacingOccurrences(of: "a!", with: "a?") }
        #expect(AgeTestSupport.decrypt(changedGrease, identities: [me]).code == .hmacFailure)
    }

    @Test("a flipped payload byte fails at its chunk; earlier chunks alone are released")
    func flippedPayloadBytes() throws {
        let fixture = try Fixture()
        let start = fixture.payloadStart
        let cases: [(offset: Int, releasedChunks: Int)] = [
            (start - 16, 0),  // nonce
            (start, 0),  // first chunk's first byte
            (start + Self.sealedChunk - 1, 0),  // first chunk's tag
            (start + Self.sealedChunk + 500, 1),
            (start + 3 * Self.sealedChunk, 3),  // final chunk
            (fixture.file.count - 1, 3),  // final chunk's tag
        ]
        for (offset, releasedChunks) in cases {
            var damaged = fixture.file
            damaged[offset] ^= 0x80
            let outcome = fixture.decrypt(damaged)
            #expect(outcome.code == .payloadFailure, "offset \(offset)")
            #expect(same(outcome.released, fixture.plaintext[..<(releasedChunks * Self.chunk)]), "offset \(offset)")
        }
    }

    @Test("swapped, duplicated or dropped chunks are refused")
    func reorderedChunks() throws {
        let fixture = try Fixture()
        let start = fixture.payloadStart
        let sealed = (0..<3).map { index in
            Array(fixture.file[(start + index * Self.sealedChunk)..<(start + (index + 1) * Self.sealedChunk)])
        }
        let final = Array(fixture.file[(start + 3 * Self.sealedChunk)...])
        let head = Array(fixture.file[..<start])
        let variants: [(bytes: [UInt8], releasedChunks: Int)] = [
            (head + sealed[1] + sealed[0] + sealed[2] + final, 0),
            (head + sealed[0] + sealed[2] + sealed[1] + final, 1),
            (head + sealed[0] + sealed[0] + sealed[1] + sealed[2] + final, 1),
            (head + sealed[0] + sealed[2] + final, 1),
            (head + sealed[0] + sealed[1] + sealed[2] + sealed[2] + final, 3),
        ]
        for (bytes, releasedChunks) in variants {
            let outcome = fixture.decrypt(bytes)
            #expect(outcome.code == .payloadFailure)
            #expect(same(outcome.released, fixture.plaintext[..<(releasedChunks * Self.chunk)]))
        }
    }

    @Test("data after the final chunk is a payload failure; only a full-length final chunk is released first")
    func trailingData() throws {
        let fixture = try Fixture()
        for trailing in [[UInt8(0)], Array(repeating: 0, count: 16), Array(fixture.file.suffix(116))] {
            // The short final chunk absorbs the trailing bytes and no longer authenticates.
            let outcome = fixture.decrypt(fixture.file + trailing)
            #expect(outcome.code == .payloadFailure)
            #expect(same(outcome.released, fixture.plaintext[..<(3 * Self.chunk)]))
        }
        let identity = AgeX25519Identity.generate()
        let plaintext = AgeTestSupport.plaintext(2 * Self.chunk)
        let file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
        for trailing in [[UInt8(0)], Array(repeating: 0, count: 17), Array(file.suffix(Self.sealedChunk))] {
            // A full-length final chunk authenticates as final before the trailing bytes are seen.
            let outcome = AgeTestSupport.decrypt(file + trailing, identities: [identity])
            #expect(outcome.code == .payloadFailure)
            #expect(same(outcome.released, plaintext[...]))
        }
    }

    @Test("final-chunk rules: empty only when alone, flagged exactly once, short chunks are final")
    func finalChunkRules() throws {
        let identity = AgeX25519Identity.generate()
        let full = AgeTestSupport.plaintext(Self.chunk)
        func run(_ chunks: [(plaintext: [UInt8], last: Bool)], trailing: [UInt8] = []) throws
            -> AgeTestSupport.Outcome
        {
            AgeTestSupport.decrypt(
                try Self.craft(to: identity.recipient, chunks: chunks, trailing: trailing), identities: [identity])
        }
        let emptyAlone = try run([([], true)])
        #expect(emptyAlone.code == nil && emptyAlone.released.isEmpty)
        let fullFinal = try run([(full, true)])
        #expect(fullFinal.code == nil && same(fullFinal.released, full[...]))
        let emptyAfterFull = try run([(full, false), ([], true)])
        #expect(emptyAfterFull.code == .payloadFailure && same(emptyAfterFull.released, full[...]))
        let shortMiddle = try run([([1, 2, 3], false), ([4], true)])
        #expect(shortMiddle.code == .payloadFailure && shortMiddle.released.isEmpty)
        let noFinal = try run([(full, false)])
        #expect(noFinal.code == .payloadFailure && same(noFinal.released, full[...]))
        let emptyNotFinal = try run([([], false)])
        #expect(emptyNotFinal.code == .payloadFailure && emptyNotFinal.released.isEmpty)
        let twoFinals = try run([([1], true), ([2], true)])
        #expect(twoFinals.code == .payloadFailure && twoFinals.released.isEmpty)
        let noChunk = try run([])
        #expect(noChunk.code == .payloadFailure && noChunk.released.isEmpty)
    }

    @Test("scrypt must stand alone, both when writing and when reading")
    func scryptAlone() throws {
        let scrypt = try AgeTestSupport.scryptRecipient("hunter2")
        let x25519 = AgeX25519Identity.generate()
        let mixed: [any AgeRecipient] = [scrypt, x25519.recipient]
        #expect(AgeTestSupport.code { _ = try AgeEncryptor.encrypt([1], to: mixed) } == .invalidUse)
        #expect(AgeTestSupport.code { _ = try AgeEncryptor.encrypt([1], to: [scrypt, scrypt]) } == .invalidUse)
        #expect(AgeTestSupport.code { _ = try AgeEncryptor.encrypt([1], to: []) } == .invalidUse)

        // Hand-build a header with an scrypt and an X25519 stanza under one file key.
        let fileKey = SecureBytes.random(count: 16)
        let stanzas = try x25519.recipient.wrap(fileKey: fileKey) + scrypt.wrap(fileKey: fileKey)
        let file = try AgeHeader.encode(stanzas: stanzas, fileKey: fileKey) + [UInt8](repeating: 0, count: 40)
        // Stricter than required: refused even for an identity that only knows the X25519 stanza.
        #expect(AgeTestSupport.decrypt(file, identities: [x25519]).code == .headerFailure)
        let passphrase = try AgeTestSupport.scryptIdentity("hunter2")
        #expect(AgeTestSupport.decrypt(file, identities: [passphrase]).code == .headerFailure)
    }

    @Test("oversized headers are refused")
    func oversizedHeader() throws {
        let identity = AgeX25519Identity.generate()
        let ok = try AgeEncryptor.encrypt([1], to: [AgeGreaseRecipient(bodyLength: 500_000), identity.recipient])
        #expect(try AgeDecryption.decrypt(ok, identities: [identity]) == [1])
        let big = try AgeEncryptor.encrypt([1], to: [AgeGreaseRecipient(bodyLength: 800_000), identity.recipient])
        #expect(AgeTestSupport.decrypt(big, identities: [identity]).code == .headerFailure)
    }

    @Test("armor is strict: consistent line endings, nothing but whitespace around, correct mode")
    func armorStrictness() throws {
        let identity = AgeX25519Identity.generate()
        let plaintext = AgeTestSupport.plaintext(500)
        let armored = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient], armor: true)
        let binary = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
        func outcome(_ bytes: [UInt8], _ mode: AgeArmorMode = .auto) -> AgeTestSupport.Outcome {
            AgeTestSupport.decrypt(bytes, identities: [identity], armor: mode)
        }
        let text = String(decoding: armored, as: UTF8.self)
        let crlf = Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        #expect(same(outcome(crlf).released, plaintext[...]))
        #expect(same(outcome(Array(" \t\r\n".utf8) + armored + Array("\n\n  ".utf8)).released, plaintext[...]))
        var mixed = crlf
        mixed.remove(at: mixed.firstIndex(of: 0x0d, after: 40))
        #expect(outcome(mixed).code == .armorFailure)
        #expect(outcome(armored + Array("x".utf8)).code == .armorFailure)
        #expect(outcome(Array("\n".utf8) + binary).code == .armorFailure)
        #expect(outcome(armored, .binary).code == .headerFailure)
        #expect(outcome(binary, .armored).code == .armorFailure)
        #expect(same(outcome(armored, .armored).released, plaintext[...]))
        #expect(outcome([], .auto).code == .headerFailure)
        #expect(outcome([], .armored).code == .armorFailure)
        // A body line moved from 64 to 60 columns (re-wrapped) is refused.
        let lines = text.split(separator: "\n").map(String.init)
        let joined = lines[1..<(lines.count - 1)].joined()
        var rewrapped = [lines[0]]
        var index = joined.startIndex
        while index < joined.endIndex {
            let end = joined.index(index, offsetBy: 60, limitedBy: joined.endIndex) ?? joined.endIndex
            rewrapped.append(String(joined[index..<end]))
            index = end
        }
        rewrapped.append(lines[lines.count - 1])
        #expect(outcome(Array((rewrapped.joined(separator: "\n") + "\n").utf8)).code == .armorFailure)
    }

    /// A vector in the C2SP CCTV format: a valid armor around nothing. The reference implementation decodes the armor
    /// to zero bytes and then fails on the missing header, so this is a header failure, not an armor failure.
    @Test("an armored file with an empty body is a header failure, as in the reference implementation")
    func armorWithAnEmptyBody() throws {
        let identity = AgeX25519Identity.generate()
        for text in [
            "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n",
            "-----BEGIN AGE ENCRYPTED FILE-----\r\n-----END AGE ENCRYPTED FILE-----\r\n",
            "\n-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n  \n",
        ] {
            for mode in [AgeArmorMode.auto, .armored] {
                let outcome = AgeTestSupport.decrypt(Array(text.utf8), identities: [identity], armor: mode)
                #expect(outcome.code == .headerFailure, "\(mode): \(text.debugDescription)")
                #expect(outcome.released.isEmpty)
            }
        }
        // Still armor failures: no END line, and data after it.
        let noEnd = Array("-----BEGIN AGE ENCRYPTED FILE-----\n".utf8)
        #expect(AgeTestSupport.decrypt(noEnd, identities: [identity], armor: .armored).code == .armorFailure)
        let trailing = Array("-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\nx".utf8)
        #expect(AgeTestSupport.decrypt(trailing, identities: [identity], armor: .armored).code == .armorFailure)
    }
}

/// Compares byte strings without printing megabytes when an expectation fails.
private func same(_ released: [UInt8], _ expected: ArraySlice<UInt8>) -> Bool {
    released.count == expected.count && released.elementsEqual(expected)
}

extension Array where Element == UInt8 {
    fileprivate func firstIndex(of byte: UInt8, after start: Int) -> Int {
        self[start...].firstIndex(of: byte) ?? start
    }
}
