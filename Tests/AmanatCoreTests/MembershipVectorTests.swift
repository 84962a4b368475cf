import AmanatCrypto
import Foundation
import Testing

@testable import AmanatCore

// Test vectors of Protocol/membership.md, produced by this code. `AMANAT_WRITE_VECTORS=1 swift test --filter
// MembershipVectorTests` (re)writes Protocol/vectors/membership-v1.json; a normal run checks the code still
// produces exactly the same bytes, and consumes the file as another implementation would.

struct MembershipEntryVector: Codable, Equatable {
    var name: String
    var author: String
    var seq: UInt64
    /// The entry's canonical encoding, zero-padded to a multiple of 64 bytes (the authority envelope's plaintext).
    var encoded: String
}

struct MembershipVectorFile: Codable, Equatable {
    var description: String
    var founderSeed: String
    var founderPublicKey: String
    var salt: String
    /// BLAKE2b-128("amanat/vault-id/v1" ‖ founder ‖ salt).
    var vaultID: String
    /// BLAKE2b-256("amanat/authority/v1" ‖ vault id): the vault key of epoch 0.
    var authorityKey: String
    /// The envelope key of the founder's entry 1 under the authority key (Protocol/envelope.md §5).
    var authorityEnvelopeKey: String
    /// BLAKE2b-128("amanat/record-id/v1" ‖ founder ‖ u64 BE 2): the record created by the founder's change 2.
    var recordIDOfChange2: String
    /// The vault key of epoch 1, under which names are sealed (`amnt-nam` subkey 5).
    var vaultKey: String
    var invitationSeed: String
    var joinerSeed: String
    var joinerAgreementKey: String
    /// The invitation key's signature of "amanat/join/v1" ‖ vault id ‖ joiner ‖ joiner's agreement key.
    var joinProof: String
    var entries: [MembershipEntryVector]
    /// The founder's first envelope: the `found` entry sealed with the authority key and nonce below.
    var foundNonce: String
    var foundEnvelope: String
    var foundEnvelopeHash: String
}

@Suite("Membership test vectors", .serialized)
struct MembershipVectorTests {
    static var writing: Bool { ProcessInfo.processInfo.environment["AMANAT_WRITE_VECTORS"] == "1" }
    static let founderSeed = counting(from: 0x01, count: 32)
    static let invitationSeed = counting(from: 0x51, count: 32)
    static let joinerSeed = counting(from: 0x71, count: 32)
    static let joinerAgreementSecret = counting(from: 0x91, count: 32)
    static let salt = counting(from: 0xb0, count: 16)
    static let vaultKeyBytes = counting(from: 0x80, count: 32)
    static let stamp: UInt64 = 1_767_225_600_000

    /// A name sealed as `SealedName.seal` does, with a fixed nonce.
    static func name(_ text: String, device: DeviceID, vaultID: [UInt8], nonce: UInt8) throws -> SealedName {
        var plain = Array(text.utf8)
        plain.append(contentsOf: repeatElement(0, count: 32 - plain.count % 32))
        let key = VaultKey(epoch: 1, root: SecureBytes(vaultKeyBytes))
        let n = counting(from: nonce, count: 24)
        let ad = Array("amanat/name/v1".utf8) + vaultID + device.bytes + [0, 0, 0, 1]
        return SealedName(
            epoch: 1, nonce: n,
            ciphertext: try AEAD.seal(plain, additionalData: ad, nonce: n, key: key.subkey(id: 5, context: "amnt-nam")))
    }

    /// A purge note sealed as `SealedNote.seal` does, with a fixed nonce: `u16 length ‖ record ‖ reason`, zero-padded
    /// to 64 bytes, under the `amnt-prg` subkey 8 with `"amanat/purge-note/v1" ‖ vault id ‖ author ‖ u32 epoch`.
    static func purgeNote(record: RecordID, reason: String, author: DeviceID, vaultID: [UInt8]) throws -> SealedNote {
        var plain =
            [UInt8(reason.utf8.count >> 8), UInt8(reason.utf8.count & 0xff)] + record.bytes + Array(reason.utf8)
        plain.append(contentsOf: repeatElement(0, count: (64 - plain.count % 64) % 64))
        let key = VaultKey(epoch: 1, root: SecureBytes(vaultKeyBytes))
        let n = counting(from: 0x70, count: 24)
        let ad = Array("amanat/purge-note/v1".utf8) + vaultID + author.bytes + [0, 0, 0, 1]
        return SealedNote(
            epoch: 1, nonce: n,
            ciphertext: try AEAD.seal(plain, additionalData: ad, nonce: n, key: key.subkey(id: 8, context: "amnt-prg")))
    }

    static func produce() throws -> MembershipVectorFile {
        let founderKeys = try SigningKeyPair(seed: SecureBytes(founderSeed))
        let founder = try DeviceID(founderKeys.publicKey)
        let vaultID = MembershipProof.vaultID(founder: founder, salt: salt)
        let invitation = try SigningKeyPair(seed: SecureBytes(invitationSeed))
        let joinerKeys = try SigningKeyPair(seed: SecureBytes(joinerSeed))
        let joiner = try DeviceID(joinerKeys.publicKey)
        let agreement = try AgreementKeyPair(secretKey: SecureBytes(joinerAgreementSecret))
        let founderAgreement = try AgreementKeyPair(secretKey: SecureBytes(counting(from: 0x21, count: 32)))
        let proof = invitation.sign(
            MembershipProof.joinMessage(vaultID: vaultID, device: joiner, agreementKey: agreement.publicKey))
        func entry(_ wall: UInt64, _ op: MembershipOperation) -> MembershipEntry {
            MembershipEntry(timestamp: HLCTimestamp(wallMillis: stamp + wall, counter: 0), operation: op)
        }
        let box = counting(from: 0x33, count: 32 + SealedBox.overhead)
        let cases: [(String, DeviceID, UInt64, MembershipEntry)] = [
            (
                "found", founder, 1,
                entry(
                    0,
                    .found(
                        salt: salt, agreementKey: founderAgreement.publicKey,
                        name: try name("Coordinator laptop", device: founder, vaultID: vaultID, nonce: 0x10)))
            ),
            (
                "invite a reader", founder, 2,
                entry(1, .invite(key: invitation.publicKey, role: .reader, expiresAt: stamp + 7 * 86_400_000))
            ),
            (
                "join", joiner, 1,
                entry(
                    2,
                    .join(
                        invitation: invitation.publicKey, proof: proof, agreementKey: agreement.publicKey,
                        name: try name("Lawyer laptop", device: joiner, vaultID: vaultID, nonce: 0x20)))
            ),
            ("set role", founder, 3, entry(3, .setRole(device: joiner, role: .member, after: 1))),
            (
                "revoke with a key rotation", founder, 4,
                entry(
                    4,
                    .revoke(
                        device: joiner, after: 5,
                        rotation: KeyRotation(
                            epoch: 0x1234_5678, relayKey: counting(from: 0xd0, count: 32), grants: [founder: box])))
            ),
            (
                "rename", founder, 5,
                entry(5, .rename(try name("Herat office", device: founder, vaultID: vaultID, nonce: 0x30)))
            ),
            (
                "dismiss a fork", founder, 6,
                entry(6, .dismissFork(device: joiner, seq: 9, hash: counting(from: 0x44, count: 32)))
            ),
            (
                "recover", joiner, 7,
                entry(
                    7,
                    .recover(
                        previous: founder, proof: counting(from: 0x55, count: 64), agreementKey: agreement.publicKey,
                        name: try name("Restored laptop", device: joiner, vaultID: vaultID, nonce: 0x40)))
            ),
            (
                "adopt a first-release vault", founder, 8,
                entry(
                    8,
                    .adopt(
                        coordinator: founder,
                        members: [LegacyMember(device: founder, head: 7), LegacyMember(device: joiner, head: 300)],
                        agreementKey: founderAgreement.publicKey,
                        name: try name("Coordinator laptop", device: founder, vaultID: vaultID, nonce: 0x50)))
            ),
            (
                "purge a record", founder, 9,
                entry(
                    9,
                    .purge(
                        Purge(
                            targets: [
                                PurgeTarget(author: founder, seq: 2, ciphertextHash: counting(from: 0x61, count: 32)),
                                PurgeTarget(author: joiner, seq: 4, ciphertextHash: counting(from: 0x62, count: 32)),
                            ], chunks: [counting(from: 0x63, count: 32)],
                            note: try purgeNote(
                                record: RecordID.derived(author: founder, seq: 2), reason: "consent withdrawn",
                                author: founder, vaultID: vaultID))))
            ),
        ]
        let authority = VaultKey.authority(vaultID: vaultID)
        let nonce = counting(from: 0x60, count: 24)
        let found = try ProtocolVectorTests.seal(
            cases[0].3.encoded(), key: authority, signer: founderKeys, seq: 1, previousHash: ChainHead.empty.hash,
            nonce: nonce, vaultID: vaultID)
        return MembershipVectorFile(
            description:
                "Amanat membership v1 (Protocol/membership.md): derivations, every entry type's bytes, and a founding authority envelope.",
            founderSeed: Hex.encode(founderSeed), founderPublicKey: founder.hex, salt: Hex.encode(salt),
            vaultID: Hex.encode(vaultID), authorityKey: Hex.encode(authority.root.copyBytes()),
            authorityEnvelopeKey: Hex.encode(authority.envelopeKey(author: founder, seq: 1).copyBytes()),
            recordIDOfChange2: RecordID.derived(author: founder, seq: 2).hex, vaultKey: Hex.encode(vaultKeyBytes),
            invitationSeed: Hex.encode(invitationSeed), joinerSeed: Hex.encode(joinerSeed),
            joinerAgreementKey: Hex.encode(agreement.publicKey), joinProof: Hex.encode(proof),
            entries: cases.map {
                MembershipEntryVector(name: $0.0, author: $0.1.hex, seq: $0.2, encoded: Hex.encode($0.3.encoded()))
            },
            foundNonce: Hex.encode(nonce), foundEnvelope: Hex.encode(found.encoded()),
            foundEnvelopeHash: Hex.encode(found.hash))
    }

    @Test("membership-v1.json matches what the code produces, and another implementation can check it")
    func membershipVectors() throws {
        let produced = try Self.produce()
        if Self.writing { try ProtocolVectorTests.write(produced, "membership-v1.json") }
        let file = try ProtocolVectorTests.load(MembershipVectorFile.self, "membership-v1.json")
        #expect(file == produced, "Protocol/vectors/membership-v1.json is stale: rerun with AMANAT_WRITE_VECTORS=1")

        // Restate every derivation from the primitives.
        let founder = try DeviceID(try unhex(file.founderPublicKey))
        let vaultID = try unhex(file.vaultID)
        #expect(
            BLAKE2b.hash(Array("amanat/vault-id/v1".utf8) + founder.bytes + (try unhex(file.salt)), outputLength: 16)
                == vaultID)
        #expect(BLAKE2b.hash(Array("amanat/authority/v1".utf8) + vaultID) == (try unhex(file.authorityKey)))
        var message = Array("amanat/record-id/v1".utf8) + founder.bytes
        withUnsafeBytes(of: UInt64(2).bigEndian) { message.append(contentsOf: $0) }
        #expect(Hex.encode(BLAKE2b.hash(message, outputLength: 16)) == file.recordIDOfChange2)
        let invitation = try SigningKeyPair(seed: SecureBytes(try unhex(file.invitationSeed)))
        let joiner = try DeviceID(try SigningKeyPair(seed: SecureBytes(try unhex(file.joinerSeed))).publicKey)
        let joinMessage = Array("amanat/join/v1".utf8) + vaultID + joiner.bytes + (try unhex(file.joinerAgreementKey))
        #expect(SigningKeyPair.verify(try unhex(file.joinProof), of: joinMessage, publicKey: invitation.publicKey))

        // Every entry decodes and re-encodes to its bytes; names open with the vault key.
        let key = VaultKey(epoch: 1, root: SecureBytes(try unhex(file.vaultKey)))
        var authored: [AuthoredEntry] = []
        for vector in file.entries {
            let bytes = try unhex(vector.encoded)
            #expect(bytes.count % 64 == 0, "\(vector.name)")
            let entry = try MembershipEntry(decoding: bytes)
            #expect(entry.encoded() == bytes, "\(vector.name)")
            authored.append(
                AuthoredEntry(author: try DeviceID(try unhex(vector.author)), seq: vector.seq, entry: entry))
        }
        if case .found(_, _, let name) = authored[0].entry.operation {
            #expect(name.open(key: key, vaultID: vaultID, device: founder) == "Coordinator laptop")
        } else {
            Issue.record("the first entry is not a found entry")
        }
        // The purge's note opens with the vault key to the record and the reason.
        if case .purge(let purge) = authored.last?.entry.operation {
            let opened = purge.note.open(key: key, vaultID: vaultID, author: founder)
            #expect(opened?.record == RecordID.derived(author: founder, seq: 2))
            #expect(opened?.reason == "consent withdrawn")
            #expect(purge.targets.count == 2 && purge.chunks.count == 1)
        } else {
            Issue.record("the last entry is not a purge")
        }
        // The founding envelope decrypts with the authority key alone and chains from zero.
        let envelope = try Envelope(decoding: try unhex(file.foundEnvelope))
        #expect(envelope.isAuthority && envelope.hasValidSignature())
        #expect(Hex.encode(envelope.hash) == file.foundEnvelopeHash)
        #expect(try envelope.openEntry().entry == authored[0].entry)
        // The first three entries admit the joiner as a reader, then make it a member.
        let state = MembershipState.evaluate(vaultID: vaultID, entries: Array(authored[0..<4]))
        #expect(state.members[founder]?.currentRole == .coordinator)
        #expect(state.members[joiner]?.role(at: 1) == .reader)
        #expect(state.members[joiner]?.role(at: 2) == .member)
    }
}
