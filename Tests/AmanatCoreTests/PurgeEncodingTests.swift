import AmanatCrypto
import Testing

@testable import AmanatCore

/// The purged envelope form (Protocol/envelope.md §7) and the purge entry (Protocol/membership.md §3.11), against
/// the inputs a hostile carrier or a modified client could make.
@Suite struct PurgeEncodingTests {
    func change(_ n: UInt8) throws -> Change {
        Change(
            record: try makeRecord(n), timestamp: HLCTimestamp(wallMillis: 1_700_000_000_000, counter: 0),
            operations: [.create(kind: "testimony")])
    }

    @Test func aPurgedEnvelopeKeepsItsHashSignatureAndPlaceInTheChain() throws {
        var log = TestLog()
        try log.append(try change(1))
        try log.append(try change(2))
        try log.append(try change(3))
        let purged = log.envelopes.map { $0.header.seq == 2 ? $0.purged() : $0 }
        #expect(purged[1].isPurged && purged[1].ciphertext.isEmpty && purged[1].hash == log.envelopes[1].hash)
        #expect(purged[1].hasValidSignature())
        #expect(try ChainVerifier.verifyRun(purged[...], vaultID: log.vaultID, after: .empty) == log.head)
        let wire = purged[1].encoded()
        #expect(wire.count == Envelope.purgedLength)
        let decoded = try Envelope(decoding: wire)
        #expect(decoded == purged[1] && decoded.isPurged)
        #expect(throws: CoreError.self) { try decoded.open(with: log.key) }
        // A purged envelope purged again is itself.
        #expect(decoded.purged() == decoded)
    }

    @Test func aStrippedEnvelopeWithAnotherHashOrAMangledFormIsRefusedOrFailsItsSignature() throws {
        var log = TestLog()
        let e = try log.append(try change(1))
        // Someone without the key "purges" it with a made-up hash: the signature no longer verifies.
        let forged = Envelope(
            header: e.header, purgedCiphertextHash: counting(from: 1, count: 32), signature: e.signature)
        #expect(!forged.hasValidSignature() && forged.hash != e.hash)
        // Cut or padded purged forms, and the marker without the right length, do not decode.
        let wire = e.purged().encoded()
        for bad in [Array(wire.dropLast()), wire + [0], Array(wire.prefix(EnvelopeHeader.length + 4))] {
            #expect(throws: CoreError.self) { try Envelope(decoding: bad) }
        }
    }

    func entry(_ purge: Purge) -> MembershipEntry {
        MembershipEntry(timestamp: HLCTimestamp(wallMillis: 1_700_000_000_000, counter: 1), operation: .purge(purge))
    }

    @Test func aPurgeEntryRoundTripsAndHostileListsAreRefused() throws {
        let a = try makeDevice(1)
        let b = try makeDevice(2)
        let note = SealedNote(epoch: 1, nonce: counting(from: 0, count: 24), ciphertext: counting(from: 9, count: 80))
        let good = Purge(
            targets: [
                PurgeTarget(author: b, seq: 3, ciphertextHash: counting(from: 3, count: 32)),
                PurgeTarget(author: a, seq: 7, ciphertextHash: counting(from: 7, count: 32)),
            ], chunks: [counting(from: 5, count: 32), counting(from: 4, count: 32)], note: note)
        let bytes = entry(good).encoded()
        #expect(try MembershipEntry(decoding: bytes) == entry(good))

        // Out of order or duplicated targets, no target, seq 0: hand-encoded as a modified client would.
        func encoded(_ targets: [(DeviceID, UInt64)]) -> [UInt8] {
            var w = ByteWriter()
            w.write(MembershipEntry.formatVersion)
            w.write(bigEndian: UInt64(1_700_000_000_000))
            w.write(bigEndian: UInt32(1))
            w.write(UInt8(11))
            w.write(varint: UInt64(targets.count))
            for (device, seq) in targets {
                w.write(raw: device.bytes)
                w.write(varint: seq)
                w.write(raw: counting(from: 1, count: 32))
            }
            w.write(varint: 0)
            w.write(bigEndian: note.epoch)
            w.write(raw: note.nonce)
            w.write(lengthPrefixed: note.ciphertext)
            return Change.pad(w.bytes)
        }
        #expect(try MembershipEntry(decoding: encoded([(a, 1), (b, 2)])).operation != entry(good).operation)
        let hostile: [[(DeviceID, UInt64)]] = [[(b, 2), (a, 1)], [(a, 1), (a, 1)], [], [(a, 0)], [(a, UInt64.max)]]
        for bad in hostile {
            #expect(throws: CoreError.self) { try MembershipEntry(decoding: encoded(bad)) }
        }
    }
}
