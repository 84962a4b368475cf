import AmanatCrypto
import Testing

@testable import AmanatCore

/// One device's log: envelopes sealed in order, each naming the previous one's hash.
struct TestLog {
    let vaultID: [UInt8]
    let key: VaultKey
    let signer: SigningKeyPair
    private(set) var envelopes: [Envelope] = []

    init(
        vaultID: [UInt8] = counting(from: 0xa0, count: 16), key: VaultKey = .generate(),
        signer: SigningKeyPair = .generate()
    ) {
        self.vaultID = vaultID
        self.key = key
        self.signer = signer
    }

    var author: DeviceID {
        get throws { try DeviceID(signer.publicKey) }
    }

    var head: ChainHead {
        envelopes.last.map { ChainHead(seq: $0.header.seq, hash: $0.hash) } ?? .empty
    }

    /// Seals `change` as the next envelope of the log.
    @discardableResult
    mutating func append(_ change: Change) throws -> Envelope {
        let e = try Envelope.seal(
            change, vaultID: vaultID, key: key, signer: signer, seq: head.seq + 1, previousHash: head.hash)
        envelopes.append(e)
        return e
    }

    /// Appends `count` small changes.
    mutating func append(count: Int) throws {
        let record = try makeRecord(1)
        for i in 0..<count {
            try append(
                Change(
                    record: record, timestamp: HLCTimestamp(wallMillis: 1000 + UInt64(i), counter: 0),
                    operations: [.set(field: "n", value: "\(i)", pred: [])]))
        }
    }
}

@Suite("Envelopes and chain verification")
struct EnvelopeTests {
    static func sampleChange() throws -> Change {
        Change(
            record: try makeRecord(2), timestamp: HLCTimestamp(wallMillis: 1_735_000_000_000, counter: 1),
            operations: [.create(kind: "testimony"), .set(field: "witness", value: "W-17", pred: []), .addTag("kabul")])
    }

    static func verifyAlone(_ e: Envelope, _ log: TestLog) throws -> ChainHead {
        try ChainVerifier.verifyRun([e], vaultID: log.vaultID, after: .empty)
    }

    @Test("seal, encode, decode, verify and open give back the change")
    func roundTrip() throws {
        var log = TestLog()
        let change = try Self.sampleChange()
        let e = try log.append(change)
        let bytes = e.encoded()
        #expect(bytes.count == EnvelopeHeader.length + change.encoded().count + AEAD.tagLength + 64)
        #expect(Array(bytes.prefix(5)) == Array("AMNE".utf8) + [1])
        let decoded = try Envelope(decoding: bytes)
        #expect(decoded == e)
        #expect(decoded.header.seq == 1)
        #expect(decoded.header.previousHash == [UInt8](repeating: 0, count: 32))
        #expect(decoded.header.author.bytes == log.signer.publicKey)
        #expect(decoded.header.keyEpoch == log.key.epoch)
        #expect(decoded.header.vaultID == log.vaultID)
        #expect(decoded.headerBytes.count == EnvelopeHeader.length)
        #expect(decoded.hasValidSignature())
        let head = try Self.verifyAlone(decoded, log)
        #expect(head == ChainHead(seq: 1, hash: e.hash))
        #expect(try decoded.open(with: log.key) == change)
        let authored = try decoded.openAuthored(with: log.key)
        #expect(authored.author == (try log.author))
        #expect(authored.seq == 1)
        #expect(authored.change == change)
    }

    @Test("the hashes are BLAKE2b-256 of what Protocol/envelope.md says they cover")
    func hashes() throws {
        var log = TestLog()
        let e = try log.append(try Self.sampleChange())
        #expect(e.ciphertextHash == BLAKE2b.hash(e.ciphertext))
        #expect(e.hash == BLAKE2b.hash(e.headerBytes + BLAKE2b.hash(e.ciphertext) + e.signature))
        #expect(e.signedMessage == e.headerBytes + e.ciphertextHash)
        #expect(
            SigningKeyPair.verify(e.signature, of: e.headerBytes + e.ciphertextHash, publicKey: log.signer.publicKey))
    }

    @Test("the ciphertext hides the change: no plaintext field appears in the wire bytes")
    func confidentiality() throws {
        var log = TestLog()
        let change = try Self.sampleChange()
        let wire = try log.append(change).encoded()
        for secret in ["testimony", "witness", "W-17", "kabul"] {
            let needle = Array(secret.utf8)
            let found = (0...(wire.count - needle.count)).contains { Array(wire[$0..<$0 + needle.count]) == needle }
            #expect(!found, "\(secret) is readable in the envelope")
        }
        #expect(!wire.contains(subsequence: change.record.bytes))
    }

    @Test("flipping any single bit of an envelope is detected")
    func everyBitFlip() throws {
        var log = TestLog()
        let change = try Self.sampleChange()
        let bytes = try log.append(change).encoded()
        let signatureStart = bytes.count - 64
        var undetected: [String] = []
        var openedAltered: [String] = []
        for index in bytes.indices {
            for bit in 0..<8 {
                let forged = flipping(bytes, byte: index, bit: bit)
                let decoded = try? Envelope(decoding: forged)
                let verified = decoded.flatMap { try? Self.verifyAlone($0, log) }
                let opened = decoded.flatMap { try? $0.open(with: log.key) }
                // Authenticity never depends on decrypting: the chain and the signature alone reject it.
                if verified != nil { undetected.append("\(index).\(bit)") }
                // The header and ciphertext are bound by the AEAD too; only the signature is outside it.
                if index < signatureStart, let opened {
                    openedAltered.append("\(index).\(bit)\(opened == change ? "" : " (different change!)")")
                }
            }
        }
        #expect(undetected.isEmpty, "flips that verified: \(undetected)")
        #expect(openedAltered.isEmpty, "flips that still decrypted: \(openedAltered)")
    }

    @Test("truncated or extended envelopes do not decode")
    func lengths() throws {
        var log = TestLog()
        let bytes = try log.append(try Self.sampleChange()).encoded()
        for length in [0, 4, 5, EnvelopeHeader.length - 1, EnvelopeHeader.length, bytes.count - 64, bytes.count - 1] {
            #expect(throws: CoreError.self, "length \(length)") { try Envelope(decoding: Array(bytes.prefix(length))) }
        }
        #expect(coreErrorCode { try Envelope(decoding: bytes + [0]) } == .malformed)
        var version = bytes
        version[4] = 2
        #expect(coreErrorCode { try Envelope(decoding: version) } == .unsupportedVersion)
        var magic = bytes
        magic[0] = UInt8(ascii: "X")
        #expect(coreErrorCode { try Envelope(decoding: magic) } == .malformed)
    }

    @Test("an envelope of another vault is rejected with .wrongVault")
    func wrongVault() throws {
        var log = TestLog()
        let e = try log.append(try Self.sampleChange())
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e], vaultID: counting(from: 0xb0, count: 16), after: .empty) }
                == .wrongVault)
        #expect(coreErrorCode { try ChainVerifier.verifyRun([e], vaultID: [], after: .empty) } == .wrongVault)
    }

    @Test("gaps, reordering, replays and forks are rejected with .brokenChain")
    func brokenChains() throws {
        var log = TestLog()
        try log.append(count: 4)
        let e = log.envelopes
        let id = log.vaultID
        #expect(try ChainVerifier.verifyRun(e[...], vaultID: id, after: .empty) == ChainHead(seq: 4, hash: e[3].hash))
        // Gap.
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[0], e[2]], vaultID: id, after: .empty) } == .brokenChain)
        #expect(coreErrorCode { try ChainVerifier.verifyRun([e[1]], vaultID: id, after: .empty) } == .brokenChain)
        // Reordered.
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[1], e[0]], vaultID: id, after: .empty) } == .brokenChain)
        // Replayed.
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[0], e[0]], vaultID: id, after: .empty) } == .brokenChain)
        let afterTwo = ChainHead(seq: 2, hash: e[1].hash)
        #expect(coreErrorCode { try ChainVerifier.verifyRun([e[1]], vaultID: id, after: afterTwo) } == .brokenChain)
        // Continuing from a head: the right one works, a head with the wrong hash does not.
        #expect(
            try ChainVerifier.verifyRun(e[2...], vaultID: id, after: afterTwo) == ChainHead(seq: 4, hash: e[3].hash))
        let wrongHead = ChainHead(seq: 2, hash: e[0].hash)
        #expect(coreErrorCode { try ChainVerifier.verifyRun(e[2...], vaultID: id, after: wrongHead) } == .brokenChain)
        // A properly signed envelope that names the wrong previous hash (a fork).
        let fork = try Envelope.seal(
            try Self.sampleChange(), vaultID: id, key: log.key, signer: log.signer, seq: 3,
            previousHash: e[0].hash)
        #expect(fork.hasValidSignature())
        #expect(coreErrorCode { try ChainVerifier.verifyRun([fork], vaultID: id, after: afterTwo) } == .brokenChain)
        let randomPrevious = try Envelope.seal(
            try Self.sampleChange(), vaultID: id, key: log.key, signer: log.signer, seq: 1,
            previousHash: Sodium.randomBytes(32))
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([randomPrevious], vaultID: id, after: .empty) } == .brokenChain)
        // An empty run changes nothing.
        #expect(try ChainVerifier.verifyRun([], vaultID: id, after: afterTwo) == afterTwo)
    }

    @Test("a forged or foreign signature on the last envelope of a run is rejected with .badSignature")
    func forgedSignature() throws {
        var log = TestLog()
        try log.append(count: 3)
        let e = log.envelopes
        let last = e[2]
        var flipped = last.signature
        flipped[10] ^= 0x04
        let forged = Envelope(header: last.header, ciphertext: last.ciphertext, signature: flipped)
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[0], e[1], forged], vaultID: log.vaultID, after: .empty) }
                == .badSignature)
        // A valid signature, but by another device over the same bytes.
        let mallory = SigningKeyPair.generate()
        let foreign = Envelope(
            header: last.header, ciphertext: last.ciphertext, signature: mallory.sign(last.signedMessage))
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[0], e[1], foreign], vaultID: log.vaultID, after: .empty) }
                == .badSignature)
        // An all-zero signature.
        let zeros = Envelope(
            header: last.header, ciphertext: last.ciphertext, signature: [UInt8](repeating: 0, count: 64))
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun([e[0], e[1], zeros], vaultID: log.vaultID, after: .empty) }
                == .badSignature)
    }

    @Test("altering any earlier envelope of a run breaks the chain, though only the last signature is checked")
    func earlierEnvelopesAreCovered() throws {
        var log = TestLog()
        try log.append(count: 5)
        let e = log.envelopes
        for index in 0..<4 {
            var ciphertext = e[index].ciphertext
            ciphertext[0] ^= 1
            var signature = e[index].signature
            signature[0] ^= 1
            for altered in [
                Envelope(header: e[index].header, ciphertext: ciphertext, signature: e[index].signature),
                Envelope(header: e[index].header, ciphertext: e[index].ciphertext, signature: signature),
            ] {
                var run = e
                run[index] = altered
                #expect(
                    coreErrorCode { try ChainVerifier.verifyRun(run[...], vaultID: log.vaultID, after: .empty) }
                        == .brokenChain, "envelope \(index)")
            }
        }
    }

    @Test("a run of 50 verifies with one signature check: earlier signatures are vouched for by the chain")
    func longRun() throws {
        var log = TestLog()
        try log.append(count: 50)
        let e = log.envelopes
        let head = try ChainVerifier.verifyRun(e[...], vaultID: log.vaultID, after: .empty)
        #expect(head == ChainHead(seq: 50, hash: e[49].hash))
        // Split into two runs, the result is the same.
        let first = try ChainVerifier.verifyRun(e[..<20], vaultID: log.vaultID, after: .empty)
        #expect(try ChainVerifier.verifyRun(e[20...], vaultID: log.vaultID, after: first) == head)

        // Build a run whose first 49 envelopes carry garbage signatures but are correctly chained, and whose last
        // envelope is properly signed: the last signature commits to all of them, so the run verifies.
        var previous = ChainHead.empty
        var unsigned: [Envelope] = []
        for original in e.dropLast() {
            var header = original.header
            header.previousHash = previous.hash
            let env = Envelope(
                header: header, ciphertext: original.ciphertext, signature: [UInt8](repeating: 7, count: 64))
            unsigned.append(env)
            previous = ChainHead(seq: header.seq, hash: env.hash)
        }
        var lastHeader = e[49].header
        lastHeader.previousHash = previous.hash
        let lastBytes = lastHeader.encoded()
        let lastSigned = Envelope(
            header: lastHeader, ciphertext: e[49].ciphertext,
            signature: log.signer.sign(lastBytes + BLAKE2b.hash(e[49].ciphertext)))
        let run = unsigned + [lastSigned]
        #expect(try ChainVerifier.verifyRun(run[...], vaultID: log.vaultID, after: .empty).seq == 50)
        // Verified on its own, an envelope with a garbage signature is rejected.
        #expect(
            coreErrorCode { try ChainVerifier.verifyRun(run[..<1], vaultID: log.vaultID, after: .empty) }
                == .badSignature)
    }

    @Test("a run mixing two authors is rejected")
    func mixedAuthors() throws {
        let vaultID = counting(from: 0xa0, count: 16)
        let key = VaultKey.generate()
        var alice = TestLog(vaultID: vaultID, key: key)
        var bob = TestLog(vaultID: vaultID, key: key)
        try alice.append(count: 1)
        try bob.append(count: 2)
        let run = [alice.envelopes[0], bob.envelopes[1]]
        #expect(throws: CoreError.self) { try ChainVerifier.verifyRun(run[...], vaultID: vaultID, after: .empty) }
        #expect(
            coreErrorCode {
                try ChainVerifier.verifyRun([alice.envelopes[0], bob.envelopes[0]], vaultID: vaultID, after: .empty)
            }
                == .malformed)
    }

    @Test("envelope keys differ per (author, seq) and one envelope's key does not open another")
    func perEnvelopeKeys() throws {
        let vaultID = counting(from: 0xa0, count: 16)
        let key = VaultKey.generate()
        var alice = TestLog(vaultID: vaultID, key: key)
        var bob = TestLog(vaultID: vaultID, key: key)
        try alice.append(count: 2)
        try bob.append(count: 1)
        let a = try alice.author
        let b = try bob.author
        let keys = [
            key.envelopeKey(author: a, seq: 1), key.envelopeKey(author: a, seq: 2), key.envelopeKey(author: b, seq: 1),
            key.envelopeKey(author: a, seq: 1 << 32 | 1),
        ]
        for i in keys.indices {
            #expect(keys[i].count == 32)
            for j in keys.indices where j != i {
                #expect(!keys[i].constantTimeEquals(keys[j]), "keys \(i) and \(j)")
            }
        }
        #expect(keys[0].constantTimeEquals(key.envelopeKey(author: a, seq: 1)), "derivation is deterministic")
        #expect(!keys[0].constantTimeEquals(key.root))
        #expect(!keys[0].constantTimeEquals(VaultKey.generate().envelopeKey(author: a, seq: 1)))

        let e1 = alice.envelopes[0]
        #expect(try e1.open(withEnvelopeKey: keys[0]).operations.count == 1)
        #expect(coreErrorCode { try e1.open(withEnvelopeKey: keys[1]) } == .tampered)
        #expect(coreErrorCode { try e1.open(withEnvelopeKey: keys[2]) } == .tampered)
        #expect(coreErrorCode { try alice.envelopes[1].open(withEnvelopeKey: keys[0]) } == .tampered)
        #expect(coreErrorCode { try bob.envelopes[0].open(withEnvelopeKey: keys[0]) } == .tampered)
        // The same vault key, rebuilt from its bytes, derives the same envelope keys.
        let rebuilt = VaultKey(epoch: key.epoch, root: SecureBytes(key.root.copyBytes()))
        #expect(try e1.open(with: rebuilt) == (try e1.open(with: key)))
    }

    @Test("a wrong vault key or epoch does not open an envelope")
    func wrongVaultKey() throws {
        var log = TestLog(key: .generate(epoch: 3))
        let e = try log.append(try Self.sampleChange())
        #expect(e.header.keyEpoch == 3)
        #expect(coreErrorCode { try e.open(with: VaultKey.generate(epoch: 3)) } == .tampered)
        let sameRootOtherEpoch = VaultKey(epoch: 4, root: SecureBytes(log.key.root.copyBytes()))
        #expect(coreErrorCode { try e.open(with: sameRootOtherEpoch) } == .unknownKeyEpoch)
    }

    @Test("a ciphertext moved under another header of the same author does not open")
    func transplantedCiphertext() throws {
        var log = TestLog()
        try log.append(count: 2)
        let e = log.envelopes
        let moved = Envelope(header: e[1].header, ciphertext: e[0].ciphertext, signature: e[1].signature)
        #expect(coreErrorCode { try moved.open(with: log.key) } == .tampered)
        #expect(!moved.hasValidSignature())
    }

    @Test(
        "Envelope.seal rejects a vault id or previous hash of the wrong length instead of writing bytes nobody can read"
    )
    func sealValidatesLengths() throws {
        let key = VaultKey.generate()
        let signer = SigningKeyPair.generate()
        let change = try Self.sampleChange()
        let short: Envelope? = try? Envelope.seal(
            change, vaultID: [1, 2, 3], key: key, signer: signer, seq: 1, previousHash: ChainHead.empty.hash)
        let sealedShort: Bool = short != nil
        #expect(!sealedShort, "sealed an envelope with a 3-byte vault id")
        if let short {
            let wire: [UInt8] = short.encoded()
            #expect(throws: CoreError.self) { try Envelope(decoding: wire) }
        }
        let badPrevious: Envelope? = try? Envelope.seal(
            change, vaultID: counting(from: 0, count: 16), key: key, signer: signer, seq: 1, previousHash: [0])
        let sealedBadPrevious: Bool = badPrevious != nil
        #expect(!sealedBadPrevious, "sealed an envelope with a 1-byte previous hash")
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs contiguously in the array.
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { self[$0..<$0 + needle.count].elementsEqual(needle) }
    }
}
