import AmanatCrypto
import Foundation
import Testing

@testable import AmanatCore

/// A device of a simulated team: its signing and agreement keys, and its log position.
final class SimDevice {
    let signer = SigningKeyPair.generate()
    let agreement = AgreementKeyPair.generate()
    var seq: UInt64 = 0
    var id: DeviceID { try! DeviceID(signer.publicKey) }
}

/// Builds membership entries as real devices would write them, without storage.
struct MembershipScenario {
    let founder = SimDevice()
    let salt = Sodium.randomBytes(16)
    let vaultID: [UInt8]
    let nameKey = VaultKey.generate(epoch: 1)
    var entries: [AuthoredEntry] = []

    init() { vaultID = MembershipProof.vaultID(founder: try! DeviceID(founder.signer.publicKey), salt: salt) }

    func name(_ text: String, _ device: SimDevice) -> SealedName {
        try! SealedName.seal(text, key: nameKey, vaultID: vaultID, device: device.id)
    }

    @discardableResult
    mutating func write(_ device: SimDevice, at wall: UInt64, _ op: MembershipOperation) -> AuthoredEntry {
        device.seq += 1
        let entry = AuthoredEntry(
            author: device.id, seq: device.seq,
            entry: MembershipEntry(timestamp: HLCTimestamp(wallMillis: wall, counter: 0), operation: op))
        entries.append(entry)
        return entry
    }

    mutating func found(at wall: UInt64 = 1) {
        write(
            founder, at: wall, .found(salt: salt, agreementKey: founder.agreement.publicKey, name: name("f", founder)))
    }

    /// Issues an invitation by `coordinator` and returns its secret key.
    mutating func invite(by coordinator: SimDevice, role: Role = .member, at wall: UInt64, expires: UInt64 = .max)
        -> SigningKeyPair
    {
        let secret = SigningKeyPair.generate()
        write(coordinator, at: wall, .invite(key: secret.publicKey, role: role, expiresAt: expires))
        return secret
    }

    mutating func join(_ device: SimDevice, with secret: SigningKeyPair, at wall: UInt64) {
        let proof = secret.sign(
            MembershipProof.joinMessage(vaultID: vaultID, device: device.id, agreementKey: device.agreement.publicKey))
        write(
            device, at: wall,
            .join(
                invitation: secret.publicKey, proof: proof, agreementKey: device.agreement.publicKey,
                name: name("d", device)))
    }

    /// A rotation to a random epoch, with a random box for each of `grants`.
    func rotation(grants: [DeviceID] = []) -> KeyRotation {
        KeyRotation(
            epoch: UInt32.random(in: 2...UInt32.max), relayKey: Sodium.randomBytes(32),
            grants: Dictionary(uniqueKeysWithValues: grants.map { ($0, Sodium.randomBytes(80)) }))
    }

    func evaluate(_ entries: [AuthoredEntry]? = nil) -> MembershipState {
        MembershipState.evaluate(vaultID: vaultID, entries: entries ?? self.entries)
    }
}

@Suite struct MembershipTests {
    @Test func theFounderIsTheOnlyDeviceThatCanFoundTheVault() {
        var s = MembershipScenario()
        s.found()
        let impostor = SimDevice()
        s.write(
            impostor, at: 0,
            .found(salt: s.salt, agreementKey: impostor.agreement.publicKey, name: s.name("x", impostor)))
        let state = s.evaluate()
        #expect(state.members.keys.sorted() == [s.founder.id])
        #expect(state.members[s.founder.id]?.currentRole == .coordinator)
        #expect(state.void.map(\.author) == [impostor.id])
    }

    @Test func anInvitationAdmitsOneDeviceOnlyAndTheSecondAttemptIsReported() {
        var s = MembershipScenario()
        s.found()
        let secret = s.invite(by: s.founder, role: .reader, at: 10)
        let first = SimDevice()
        let second = SimDevice()
        s.join(first, with: secret, at: 20)
        s.join(second, with: secret, at: 30)
        let state = s.evaluate()
        #expect(state.members[first.id]?.currentRole == .reader)
        #expect(state.members[first.id]?.admittedBy == s.founder.id)
        #expect(state.members[second.id] == nil)
        #expect(
            state.reusedInvitations == [.init(invitation: secret.publicKey, admitted: first.id, refused: second.id)])
    }

    @Test func aJoinWithAForgedProofOrAnInvitationNobodyIssuedAdmitsNobody() {
        var s = MembershipScenario()
        s.found()
        let issued = s.invite(by: s.founder, at: 10)
        let forger = SimDevice()
        let wrongProof = SigningKeyPair.generate().sign(
            MembershipProof.joinMessage(vaultID: s.vaultID, device: forger.id, agreementKey: forger.agreement.publicKey)
        )
        s.write(
            forger, at: 20,
            .join(
                invitation: issued.publicKey, proof: wrongProof, agreementKey: forger.agreement.publicKey,
                name: s.name("x", forger)))
        let stranger = SimDevice()
        s.join(stranger, with: SigningKeyPair.generate(), at: 30)
        let state = s.evaluate()
        #expect(state.members.count == 1)
        #expect(state.invitations[issued.publicKey]?.usedBy == nil, "the real invitation stays unused")
    }

    @Test func onlyCoordinatorsInviteChangeRolesAndRevoke() {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 10), at: 20)
        let victim = SimDevice()
        s.join(victim, with: s.invite(by: s.founder, at: 11), at: 21)
        let rogue = s.invite(by: member, at: 30)
        s.write(member, at: 31, .setRole(device: member.id, role: .coordinator, after: 0))
        s.write(member, at: 32, .revoke(device: victim.id, after: 0, rotation: s.rotation()))
        let outsider = SimDevice()
        s.join(outsider, with: rogue, at: 40)
        let state = s.evaluate()
        #expect(state.members[member.id]?.currentRole == .member)
        #expect(state.members[victim.id]?.isRevoked == false)
        #expect(state.members[outsider.id] == nil)
        #expect(state.epochs.isEmpty)
        #expect(state.void.count == 4)
    }

    @Test func aRevokedDevicesChangesAfterTheCutAreHeldBack() throws {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 10), at: 20)
        s.write(s.founder, at: 50, .revoke(device: member.id, after: 5, rotation: s.rotation()))
        let state = s.evaluate()
        let record = try makeRecord(1)
        #expect(state.verdict(author: member.id, seq: 5, record: record, creates: false) == nil)
        #expect(state.verdict(author: member.id, seq: 6, record: record, creates: false) == .revoked)
        #expect(state.verdict(author: member.id, seq: 1, record: record, creates: false) == .notMember)
        #expect(state.verdict(author: SimDevice().id, seq: 2, record: record, creates: false) == .notMember)
    }

    @Test func aReadersWritesAreHeldBackUntilItIsPromotedAndOnlyAfterThePromotion() throws {
        var s = MembershipScenario()
        s.found()
        let reader = SimDevice()
        s.join(reader, with: s.invite(by: s.founder, role: .reader, at: 10), at: 20)
        s.write(s.founder, at: 30, .setRole(device: reader.id, role: .member, after: 4))
        let state = s.evaluate()
        let record = try makeRecord(1)
        #expect(state.verdict(author: reader.id, seq: 3, record: record, creates: false) == .reader)
        #expect(state.verdict(author: reader.id, seq: 5, record: record, creates: false) == nil)
    }

    @Test func twoCoordinatorsRevokingEachOtherTheEarlierRevocationWins() {
        var s = MembershipScenario()
        s.found()
        let other = SimDevice()
        s.join(other, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        // Concurrent: each names the other's last entry it had seen (the founder's invite, the other's join).
        s.write(other, at: 100, .revoke(device: s.founder.id, after: 2, rotation: s.rotation()))
        s.write(s.founder, at: 101, .revoke(device: other.id, after: 1, rotation: s.rotation()))
        let state = s.evaluate()
        #expect(state.members[s.founder.id]?.isRevoked == true)
        #expect(state.members[other.id]?.isRevoked == false, "the later revocation's author was already revoked")
        #expect(state.epochs.count == 1)
    }

    @Test func aRoleChangeConcurrentWithARevocationNeverUndoesIt() {
        for order in [(100, 101), (101, 100)] {
            var s = MembershipScenario()
            s.found()
            let second = SimDevice()
            s.join(second, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
            let member = SimDevice()
            s.join(member, with: s.invite(by: s.founder, at: 11), at: 21)
            s.write(s.founder, at: UInt64(order.0), .revoke(device: member.id, after: 1, rotation: s.rotation()))
            s.write(second, at: UInt64(order.1), .setRole(device: member.id, role: .coordinator, after: 1))
            let state = s.evaluate()
            #expect(state.members[member.id]?.isRevoked == true)
        }
    }

    @Test func onlyTheChangeAnIdDerivesFromMayCreateThatRecord() throws {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 10), at: 20)
        let state = s.evaluate()
        let own = RecordID.derived(author: member.id, seq: 2)
        let others = RecordID.derived(author: s.founder.id, seq: 2)
        #expect(state.verdict(author: member.id, seq: 2, record: own, creates: true) == nil)
        #expect(state.verdict(author: member.id, seq: 2, record: others, creates: true) == .notCreator)
        #expect(state.verdict(author: member.id, seq: 3, record: own, creates: true) == .notCreator)
        #expect(state.verdict(author: member.id, seq: 3, record: others, creates: false) == nil, "editing is fine")
    }

    @Test func anAdoptTakesEffectOnlyFromADeviceThatWroteBeforeIt() {
        let legacy = SimDevice()
        let other = SimDevice()
        let minted = SimDevice()
        let vaultID = Sodium.randomBytes(16)
        let key = VaultKey.generate(epoch: 1)
        func adopt(_ device: SimDevice, seq: UInt64, listing: [LegacyMember]) -> AuthoredEntry {
            AuthoredEntry(
                author: device.id, seq: seq,
                entry: MembershipEntry(
                    timestamp: HLCTimestamp(wallMillis: 5, counter: 0),
                    operation: .adopt(
                        coordinator: legacy.id, members: listing, agreementKey: device.agreement.publicKey,
                        name: try! SealedName.seal("n", key: key, vaultID: vaultID, device: device.id))))
        }
        let entries = [
            adopt(legacy, seq: 4, listing: [.init(device: legacy.id, head: 3), .init(device: other.id, head: 7)]),
            adopt(minted, seq: 1, listing: [.init(device: minted.id, head: 0)]),
        ]
        let state = MembershipState.evaluate(
            vaultID: vaultID, entries: entries, legacyAuthors: [legacy.id: 1, other.id: 1])
        #expect(state.members[legacy.id]?.currentRole == .coordinator)
        #expect(state.members[other.id]?.currentRole == .member)
        #expect(state.members[other.id]?.legacyHead == 7)
        #expect(state.members[minted.id] == nil)
    }

    @Test func everyEntryEncodesAndDecodesToItself() throws {
        var s = MembershipScenario()
        s.found()
        let secret = s.invite(by: s.founder, role: .reader, at: 10, expires: 99)
        let joiner = SimDevice()
        s.join(joiner, with: secret, at: 20)
        s.write(s.founder, at: 30, .setRole(device: joiner.id, role: .coordinator, after: 300))
        let box = try SealedBox.seal(Sodium.randomBytes(32), to: joiner.agreement.publicKey)
        s.write(
            s.founder, at: 40,
            .revoke(
                device: joiner.id, after: 7,
                rotation: KeyRotation(epoch: 77, relayKey: Sodium.randomBytes(32), grants: [joiner.id: box])))
        s.write(joiner, at: 50, .rename(s.name("new name", joiner)))
        s.write(s.founder, at: 60, .dismissFork(device: joiner.id, seq: 9, hash: Sodium.randomBytes(32)))
        s.write(
            joiner, at: 70,
            .recover(
                previous: s.founder.id, proof: Sodium.randomBytes(64), agreementKey: Sodium.randomBytes(32),
                name: s.name("r", joiner)))
        s.write(
            joiner, at: 80,
            .adopt(
                coordinator: s.founder.id, members: [.init(device: s.founder.id, head: 3)],
                agreementKey: Sodium.randomBytes(32), name: s.name("a", joiner)))
        for entry in s.entries {
            let bytes = entry.entry.encoded()
            #expect(bytes.count % 64 == 0)
            #expect(try MembershipEntry(decoding: bytes) == entry.entry)
        }
        #expect(throws: CoreError.self) { try MembershipEntry(decoding: [1] + [UInt8](repeating: 0, count: 12) + [42]) }
    }

    @Test func aNameOpensOnlyWithItsKeyAndDevice() throws {
        let s = MembershipScenario()
        let device = SimDevice()
        let sealed = s.name("Farzana's laptop", device)
        #expect(sealed.open(key: s.nameKey, vaultID: s.vaultID, device: device.id) == "Farzana's laptop")
        #expect(sealed.open(key: s.nameKey, vaultID: s.vaultID, device: SimDevice().id) == nil)
        #expect(sealed.open(key: VaultKey.generate(epoch: 1), vaultID: s.vaultID, device: device.id) == nil)
        #expect(sealed.ciphertext.count == 32 + AEAD.tagLength, "names are padded to 32 bytes")
    }

    @Test func aCoordinatorRevokedWhileItInvitesAdmitsNobodyAfterItsCut() {
        var s = MembershipScenario()
        s.found()
        let second = SimDevice()
        s.join(second, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        // The founder revokes the second coordinator after its join (seq 1); concurrently it invites (seq 2).
        s.write(s.founder, at: 100, .revoke(device: second.id, after: 1, rotation: s.rotation()))
        let late = s.invite(by: second, at: 101)
        let guest = SimDevice()
        s.join(guest, with: late, at: 102)
        let state = s.evaluate()
        #expect(state.members[second.id]?.isRevoked == true)
        #expect(state.members[guest.id] == nil)
    }

    @Test func twoConcurrentRotationsAreBothKeptAndTheLastEvaluatedIsWrittenWith() {
        var s = MembershipScenario()
        s.found()
        let other = SimDevice()
        s.join(other, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        let a = SimDevice()
        s.join(a, with: s.invite(by: s.founder, at: 11), at: 21)
        let b = SimDevice()
        s.join(b, with: s.invite(by: s.founder, at: 12), at: 22)
        let first = s.rotation()
        let second = s.rotation()
        s.write(s.founder, at: 100, .revoke(device: a.id, after: 1, rotation: first))
        s.write(other, at: 101, .revoke(device: b.id, after: 1, rotation: second))
        let state = s.evaluate()
        #expect(state.epochs.map(\.rotation.epoch) == [first.epoch, second.epoch])
        #expect(state.currentRotation?.epoch == second.epoch)
        #expect(state.members[a.id]?.isRevoked == true && state.members[b.id]?.isRevoked == true)
    }

    @Test func aRevocationWithoutAuthorityKeepsItsKeyReadableButNeverForWriting() {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 10), at: 20)
        let rotation = s.rotation()
        s.write(member, at: 30, .revoke(device: s.founder.id, after: 1, rotation: rotation))
        let state = s.evaluate()
        #expect(state.members[s.founder.id]?.isRevoked == false)
        #expect(state.epochs.isEmpty && state.currentRotation == nil)
        #expect(state.keyOnlyEpochs.map(\.rotation.epoch) == [rotation.epoch])
        // A coordinator can grant that key on; a stranger's revoke does not even count as key-only.
        let stranger = SimDevice()
        s.write(stranger, at: 40, .revoke(device: s.founder.id, after: 1, rotation: s.rotation()))
        s.write(s.founder, at: 50, .grant(epoch: rotation.epoch, grants: [s.founder.id: Sodium.randomBytes(80)]))
        let after = s.evaluate()
        #expect(after.keyOnlyEpochs.count == 1)
        #expect(after.hasAuthorityBox(after.keyOnlyEpochs[0], for: s.founder.id))
    }

    /// Nobody but a box's recipient can tell the rotation's key from garbage: every granter's box is kept (one per
    /// granter and member) for the recipient to try, and only an authority's counts as the member holding the key —
    /// an effective rotation's own box, or a grant by a device the final state says was a coordinator at it.
    @Test func everyGrantersBoxIsKeptAndOnlyAnAuthoritysCountsAsHoldingTheKey() throws {
        var s = MembershipScenario()
        s.found()
        let coordinator = SimDevice()
        s.join(coordinator, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        let demoted = SimDevice()
        s.join(demoted, with: s.invite(by: s.founder, role: .coordinator, at: 11), at: 21)
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 12), at: 22)
        let hostile = SimDevice()
        s.join(hostile, with: s.invite(by: s.founder, at: 13), at: 23)
        let newcomer = SimDevice()
        s.join(newcomer, with: s.invite(by: s.founder, at: 14), at: 24)
        // The coordinator, demoted first, revokes the founder: a key-only rotation that grants only itself.
        s.write(s.founder, at: 30, .setRole(device: coordinator.id, role: .member, after: 1))
        let rotation = s.rotation(grants: [coordinator.id])
        s.write(coordinator, at: 40, .revoke(device: s.founder.id, after: 1, rotation: rotation))
        let garbage = Sodium.randomBytes(80)
        let honest = Sodium.randomBytes(80)
        s.write(hostile, at: 50, .grant(epoch: rotation.epoch, grants: [newcomer.id: garbage]))
        s.write(hostile, at: 51, .grant(epoch: rotation.epoch, grants: [newcomer.id: Sodium.randomBytes(80)]))
        // A coordinator demoted (stamp 100) from its first entry on backdates a grant before its demotion: while
        // evaluated it looked like a coordinator's, but the final state says it was a member's.
        s.write(demoted, at: 55, .grant(epoch: rotation.epoch, grants: [newcomer.id: Sodium.randomBytes(80)]))
        s.write(s.founder, at: 100, .setRole(device: demoted.id, role: .member, after: 1))
        s.write(member, at: 60, .grant(epoch: rotation.epoch, grants: [newcomer.id: honest]))
        let state = s.evaluate()
        let grant = try #require(state.keyOnlyEpochs.first)
        #expect(state.members[demoted.id]?.currentRole == .member)
        #expect(grant.boxes(for: newcomer.id).count == 3, "a later box was dropped, or a granter's second kept")
        #expect(grant.boxes(for: newcomer.id).first == garbage && grant.boxes(for: newcomer.id).last == honest)
        #expect(grant.boxes(for: coordinator.id) == [rotation.grants[coordinator.id]!])
        #expect(!state.hasAuthorityBox(grant, for: coordinator.id), "a key-only rotation's own box counted")
        #expect(!state.hasAuthorityBox(grant, for: newcomer.id), "a member's box counted as holding the key")
        s.write(s.founder, at: 70, .grant(epoch: rotation.epoch, grants: [newcomer.id: Sodium.randomBytes(80)]))
        let after = s.evaluate()
        let granted = try #require(after.keyOnlyEpochs.first)
        #expect(granted.boxes(for: newcomer.id).count == 4)
        #expect(after.hasAuthorityBox(granted, for: newcomer.id), "a coordinator's grant did not count")
        // An effective rotation's own box is its coordinator's.
        let effective = s.rotation(grants: [member.id])
        s.write(s.founder, at: 80, .revoke(device: hostile.id, after: 1, rotation: effective))
        let last = s.evaluate()
        let inEffect = try #require(last.epochs.last)
        #expect(inEffect.rotation.epoch == effective.epoch && last.hasAuthorityBox(inEffect, for: member.id))
    }

    /// Found by seed 2609750951284611051 of the randomized vault test: a coordinator revokes a device whose join
    /// is later found void (its invitation came from a coordinator demoted before it). The revocation has no
    /// effect, but its author wrote with the new key meanwhile: the key stays readable (key-only), not dropped.
    @Test func aRevocationOfADeviceWhoseJoinTurnsOutVoidKeepsItsKeyReadable() {
        var s = MembershipScenario()
        s.found()
        let coordinator = SimDevice()
        s.join(coordinator, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 11)
        s.write(s.founder, at: 12, .setRole(device: coordinator.id, role: .member, after: 1))
        let stranger = SimDevice()
        s.join(stranger, with: s.invite(by: coordinator, at: 15), at: 20)
        let rotation = s.rotation(grants: [s.founder.id])
        s.write(s.founder, at: 30, .revoke(device: stranger.id, after: 1, rotation: rotation))
        let state = s.evaluate()
        #expect(state.members[stranger.id] == nil, "the join with a demoted coordinator's invitation took effect")
        #expect(state.epochs.isEmpty)
        #expect(state.keyOnlyEpochs.map(\.rotation.epoch) == [rotation.epoch], "the used key was dropped")
    }

    @Test func aRevocationExcludedByAConcurrentDemotionStillKeepsItsKeyReadable() {
        var s = MembershipScenario()
        s.found()
        let other = SimDevice()
        s.join(other, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 11), at: 21)
        // The founder revokes the member (its seq 4) and seals changes with the new key; the other coordinator,
        // having seen only the founder's first three entries, demotes it a moment later. The first pass evaluates
        // the revoke with authority, the final state says the founder was no coordinator at seq 4: the revoke is
        // excluded, but its key was used, so it stays key-only.
        let rotation = s.rotation()
        s.write(s.founder, at: 100, .revoke(device: member.id, after: 1, rotation: rotation))
        s.write(other, at: 101, .setRole(device: s.founder.id, role: .member, after: 3))
        let state = s.evaluate()
        #expect(state.members[member.id]?.isRevoked == false)
        #expect(state.members[s.founder.id]?.currentRole == .member)
        #expect(state.epochs.isEmpty && state.currentRotation == nil)
        #expect(state.keyOnlyEpochs.map(\.rotation.epoch) == [rotation.epoch])
        #expect(state.void.contains { $0.author == s.founder.id && $0.seq == 4 })
        // Any order of the same entries gives the same state.
        #expect(s.evaluate(s.entries.reversed()) == state)
        // A founder that was no member at all at that seq (revoked before it) keeps nothing.
        var t = MembershipScenario()
        t.found()
        let coordinator = SimDevice()
        t.join(coordinator, with: t.invite(by: t.founder, role: .coordinator, at: 10), at: 20)
        let target = SimDevice()
        t.join(target, with: t.invite(by: t.founder, at: 11), at: 21)
        t.write(t.founder, at: 100, .revoke(device: target.id, after: 1, rotation: t.rotation()))
        t.write(coordinator, at: 101, .revoke(device: t.founder.id, after: 3, rotation: t.rotation()))
        let revoked = t.evaluate()
        #expect(revoked.members[t.founder.id]?.isRevoked == true)
        #expect(revoked.members[target.id]?.isRevoked == false)
        #expect(revoked.keyOnlyEpochs.isEmpty && revoked.epochs.count == 1)
    }

    /// From the attack review: a member backdates a revoke without authority to the epoch of a coordinator's
    /// rotation. Its key-only rotation must not take the number and cancel the coordinator's.
    @Test func aKeyOnlyRotationNeverTakesAnEffectiveRotationsEpoch() {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, at: 10), at: 20)
        let target = SimDevice()
        s.join(target, with: s.invite(by: s.founder, at: 11), at: 21)
        let rotation = s.rotation()
        s.write(s.founder, at: 100, .revoke(device: target.id, after: 1, rotation: rotation))
        let stolen = KeyRotation(epoch: rotation.epoch, relayKey: Sodium.randomBytes(32), grants: [:])
        s.write(member, at: 50, .revoke(device: s.founder.id, after: 1, rotation: stolen))
        let state = s.evaluate()
        #expect(state.members[target.id]?.isRevoked == true)
        #expect(state.currentRotation?.relayKey == rotation.relayKey, "the coordinator's rotation was cancelled")
        #expect(state.keyOnlyEpochs.isEmpty)
        #expect(s.evaluate(s.entries.reversed()) == state)
    }

    /// From the attack review: a demoted coordinator's revocation whose rotation reuses an epoch in use (so the
    /// rotation has no effect) must still face the final-state check, as it does in the Python verifier.
    @Test func aRevocationWhoseRotationHadNoEffectIsStillCheckedAgainstTheFinalState() {
        var s = MembershipScenario()
        s.found()
        let demoted = SimDevice()
        s.join(demoted, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        let victim = SimDevice()
        s.join(victim, with: s.invite(by: s.founder, at: 11), at: 21)
        let gone = SimDevice()
        s.join(gone, with: s.invite(by: s.founder, at: 12), at: 22)
        let founders = s.rotation()
        s.write(s.founder, at: 30, .revoke(device: gone.id, after: 1, rotation: founders))
        // The founder demotes it from its seq 2 on; it backdates a revoke before the demotion, reusing the epoch of
        // the founder's rotation (which it saw), so that its rotation has no effect but its revocation does.
        let reused = KeyRotation(epoch: founders.epoch, relayKey: Sodium.randomBytes(32), grants: [:])
        s.write(demoted, at: 36, .revoke(device: victim.id, after: 0, rotation: reused))
        s.write(s.founder, at: 40, .setRole(device: demoted.id, role: .member, after: 1))
        let state = s.evaluate()
        #expect(state.members[demoted.id]?.currentRole == .member)
        #expect(state.members[victim.id]?.isRevoked == false, "a demoted coordinator revoked a member by backdating")
        #expect(state.members[gone.id]?.revokedBy == s.founder.id)
    }

    @Test func aRecoveredIdentitySharesItsPreviousIdentitysRevocationWhateverTheStamps() {
        var s = MembershipScenario()
        s.found()
        let member = SimDevice()
        s.join(member, with: s.invite(by: s.founder, role: .coordinator, at: 10), at: 20)
        s.write(s.founder, at: 100, .revoke(device: member.id, after: 1, rotation: s.rotation()))
        // The revoked device hands over to a new identity with a stamp from before its revocation.
        let escape = SimDevice()
        let proof = member.signer.sign(
            MembershipProof.recoverMessage(
                vaultID: s.vaultID, device: escape.id, agreementKey: escape.agreement.publicKey))
        s.write(
            escape, at: 25,
            .recover(
                previous: member.id, proof: proof, agreementKey: escape.agreement.publicKey, name: s.name("e", escape)))
        let state = s.evaluate()
        #expect(state.members[escape.id]?.isRevoked == true)
        #expect(state.members[escape.id]?.currentRole == .member, "never a coordinator by itself")
        #expect(
            state.verdict(author: escape.id, seq: 2, record: RecordID.derived(author: escape.id, seq: 2), creates: true)
                == .revoked)
    }

    /// Membership converges: any order of the same entries gives the same state. Replays from the printed seed.
    @Test func randomMembershipHistoriesConvergeInAnyOrder() {
        let seed = UInt64(ProcessInfo.processInfo.environment["AMANAT_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("membership convergence seed: \(seed) (AMANAT_SEED=\(seed) replays it)")
        var rng = SplitMix64(seed: seed)
        for round in 0..<40 {
            var s = MembershipScenario()
            s.found()
            var devices = [s.founder]
            var secrets: [SigningKeyPair] = []
            for step in 0..<30 {
                let wall = UInt64(10 + step * 3 + Int(rng.next() % 7))
                let actor = devices[Int(rng.next() % UInt64(devices.count))]
                switch rng.next() % 5 {
                case 0:
                    secrets.append(s.invite(by: actor, role: Role.allCases[Int(rng.next() % 3)], at: wall))
                case 1 where !secrets.isEmpty:
                    let joiner = SimDevice()
                    s.join(joiner, with: secrets[Int(rng.next() % UInt64(secrets.count))], at: wall)
                    devices.append(joiner)
                case 2:
                    let target = devices[Int(rng.next() % UInt64(devices.count))]
                    s.write(
                        actor, at: wall,
                        .setRole(device: target.id, role: Role.allCases[Int(rng.next() % 3)], after: rng.next() % 6))
                case 3 where rng.chance(40):
                    let target = devices[Int(rng.next() % UInt64(devices.count))]
                    s.write(actor, at: wall, .revoke(device: target.id, after: rng.next() % 6, rotation: s.rotation()))
                default:
                    s.write(actor, at: wall, .rename(s.name("n\(step)", actor)))
                }
            }
            let reference = s.evaluate()
            for _ in 0..<4 {
                var shuffled = s.entries
                shuffled.shuffle(using: &rng)
                let other = s.evaluate(shuffled)
                #expect(other == reference, "seed \(seed), round \(round)")
                #expect(other.authorizationDigest == reference.authorizationDigest, "seed \(seed), round \(round)")
            }
        }
    }
}
