import AmanatCrypto
import Testing

@testable import AmanatCore

/// The per-author run classification the vault and the relay share, without any storage.
@Suite struct RunClassifierTests {
    let vaultID = counting(from: 0xa0, count: 16)
    let key = VaultKey.generate(epoch: 1)
    let signer = SigningKeyPair.generate()

    /// A chain of `count` envelopes of `signer` from seq 1, each a one-field change with `label`.
    func chain(_ count: Int, label: String = "a", signer: SigningKeyPair? = nil) throws -> [Envelope] {
        let signer = signer ?? self.signer
        var out: [Envelope] = []
        var previous = ChainHead.empty.hash
        for seq in 1...UInt64(count) {
            let change = Change(
                record: try makeRecord(1), timestamp: HLCTimestamp(wallMillis: seq, counter: 0),
                operations: [.set(field: "title", value: "\(label)\(seq)", pred: [])])
            let e = try Envelope.seal(
                change, vaultID: vaultID, key: key, signer: signer, seq: seq, previousHash: previous)
            out.append(e)
            previous = e.hash
        }
        return out
    }

    func classify(_ run: [Envelope], held: [Envelope]) throws -> RunClassifier.Outcome {
        let head = held.last.map { ChainHead(seq: $0.header.seq, hash: $0.hash) } ?? .empty
        return try RunClassifier.classify(run, vaultID: vaultID, head: head) { seq in
            held.first { $0.header.seq == seq }?.hash
        }
    }

    @Test func heldEnvelopesAreDuplicatesAndTheRestIsFreshInAnyOrder() throws {
        let all = try chain(5)
        let outcome = try classify(all.reversed(), held: Array(all[0..<2]))
        #expect(outcome.duplicates == 2)
        #expect(outcome.fresh.map(\.header.seq) == [3, 4, 5])
        #expect(outcome.fork == nil)
    }

    @Test func aDifferentGenuineEnvelopeAtAHeldSeqIsAFork() throws {
        let honest = try chain(3)
        let other = try chain(3, label: "b")
        let outcome = try classify([other[1], other[2]], held: honest)
        #expect(outcome.fork == other[1])
        #expect(outcome.fresh.isEmpty, "nothing of a forked run is taken")
    }

    @Test func aGenuineEnvelopeThatDoesNotLinkToTheHeadIsAFork() throws {
        let honest = try chain(2)
        let other = try chain(3, label: "b")
        let outcome = try classify([other[2]], held: honest)
        #expect(outcome.fork == other[2])
    }

    @Test func aConflictingEnvelopeWithAForgedSignatureIsRefusedNeverRecorded() throws {
        let honest = try chain(2)
        let other = try chain(2, label: "b")
        let forged = Envelope(header: other[1].header, ciphertext: other[1].ciphertext, signature: honest[1].signature)
        #expect(throws: CoreError.self) { try classify([forged], held: honest) }
    }

    @Test func twoDifferentEnvelopesWithOneSeqInOneRunAreAFork() throws {
        let honest = try chain(2)
        let other = try chain(2, label: "b")
        let outcome = try classify([honest[0], honest[1], other[1]], held: [])
        #expect(outcome.fork != nil)
        #expect(outcome.fresh.isEmpty)
    }

    @Test func gapsForeignVaultsAndForgedRunsAreRefused() throws {
        let all = try chain(4)
        #expect(throws: CoreError.self) { try classify([all[0], all[2]], held: []) }
        var foreign = try chain(1)
        foreign = [
            try Envelope.seal(
                try foreign[0].open(with: key), vaultID: counting(from: 0x01, count: 16), key: key, signer: signer,
                seq: 1, previousHash: ChainHead.empty.hash)
        ]
        #expect(throws: CoreError.self) { try classify(foreign, held: []) }
        let last = all[3]
        let forged = Envelope(header: last.header, ciphertext: last.ciphertext, signature: all[0].signature)
        #expect(throws: CoreError.self) { try classify([all[0], all[1], all[2], forged], held: []) }
    }
}
