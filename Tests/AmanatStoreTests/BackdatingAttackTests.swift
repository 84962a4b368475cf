import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// Attacks by revoked, demoted or hostile members that backdate their stamps or plant unusable keys, as a hostile
/// client would write them: none of them takes effect, and coordinators keep syncing.
@Suite struct BackdatingAttackTests {
    func before(_ t: HLCTimestamp) -> HLCTimestamp { HLCTimestamp(wallMillis: t.wallMillis - 1, counter: 0) }

    /// b (coordinator) is revoked by a; b backdates an invite before the revocation and joins a sock puppet.
    @Test func aRevokedCoordinatorCannotAdmitASockPuppetWithABackdatedInvite() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b, c) = (team[0], team[1], team[2])
        let sync = dir.path("team.sync")
        for v in [a, b, c, a, b, c] { try await fileSync(v, sync) }
        try a.revoke(b.deviceID)
        for v in [a, b, c] { try await fileSync(v, sync) }
        let revokedAt = try #require(b.membership.members[b.deviceID]!.revokedAt)
        var hostile = ForgedChain(vaultID: b.vaultID, signer: b.keyring.device, head: try ownHead(of: b))
        let secret = SigningKeyPair.generate()
        let invite = try hostile.entry(
            .invite(key: secret.publicKey, role: .coordinator, expiresAt: UInt64.max), at: before(revokedAt))
        var puppet = ForgedChain(vaultID: b.vaultID, signer: SigningKeyPair.generate())
        let agreement = AgreementKeyPair.generate()
        let key = writingKey(of: b)
        let proof = secret.sign(
            MembershipProof.joinMessage(vaultID: b.vaultID, device: puppet.device, agreementKey: agreement.publicKey))
        let name = try SealedName.seal("puppet", key: key, vaultID: b.vaultID, device: puppet.device)
        let join = try puppet.entry(
            .join(invitation: secret.publicKey, proof: proof, agreementKey: agreement.publicKey, name: name),
            at: stampNow())
        let rid = RecordID.derived(author: puppet.device, seq: 2)
        let change = try puppet.change(
            rid, key: key, at: stampNow(),
            [.create(kind: "statement"), .set(field: "title", value: "PUPPET WROTE THIS", pred: [])])
        let file = dir.path("hostile.sync")
        try await fileSync(b, file)
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [invite, join, change]) == 3)
        for v in [a, c] { try await fileSync(v, file) }
        for v in [a, c] {
            let m = v.membership.members[puppet.device]
            let shown = try v.visibleRecords().contains { $0.fields["title"] == "PUPPET WROTE THIS" }
            #expect(m == nil && !shown)
            #expect(try v.verify().problems == [])
        }
        // does any rotation now grant the puppet?
        try await fileSync(a, sync); try await fileSync(a, file)
        let granted = a.membership.allRotations.filter { !$0.boxes(for: puppet.device).isEmpty }.map(
            \.rotation.epoch)
        #expect(granted.isEmpty, "no key is ever sealed to the puppet")
    }

    /// c is a member demoted to reader; it backdates a recover entry before the demotion to get a member identity.
    @Test func aReaderCannotEscapeItsDemotionWithABackdatedRecover() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, c) = (team[0], team[1])
        let sync = dir.path("team.sync")
        for v in [a, c, a, c] { try await fileSync(v, sync) }
        try a.setRole(c.deviceID, .reader)
        for v in [a, c] { try await fileSync(v, sync) }
        #expect(c.membership.members[c.deviceID]!.currentRole == .reader)
        // the demotion's stamp: the setRole entry is a's latest entry; approximate by c's join + read a's head stamp
        let joinStamp = c.membership.members[c.deviceID]!.admittedAt
        var fresh = ForgedChain(vaultID: c.vaultID, signer: SigningKeyPair.generate())
        let agreement = AgreementKeyPair.generate()
        let proof = c.keyring.device.sign(
            MembershipProof.recoverMessage(vaultID: c.vaultID, device: fresh.device, agreementKey: agreement.publicKey))
        let key = writingKey(of: c)
        let name = try SealedName.seal("fresh", key: key, vaultID: c.vaultID, device: fresh.device)
        let recover = try fresh.entry(
            .recover(previous: c.deviceID, proof: proof, agreementKey: agreement.publicKey, name: name),
            at: HLCTimestamp(wallMillis: joinStamp.wallMillis, counter: joinStamp.counter + 1))
        let rid = RecordID.derived(author: fresh.device, seq: 2)
        let change = try fresh.change(
            rid, key: key, at: stampNow(),
            [.create(kind: "statement"), .set(field: "title", value: "READER WROTE THIS", pred: [])])
        let file = dir.path("hostile.sync")
        #expect(try writeSyncFile(file, vaultID: c.vaultID, [recover, change]) == 2)
        try await fileSync(a, file)
        let m = a.membership.members[fresh.device]
        let shown = try a.visibleRecords().contains { $0.fields["title"] == "READER WROTE THIS" }
        #expect(m?.currentRole == .reader, "a reader's recovery is a reader")
        #expect(!shown)
    }

    /// c (member) is revoked by a; c, having seen the revocation's public rotation epoch, backdates a key-only
    /// revoke with the same epoch so the real rotation is void.
    @Test func aRevokedMemberCannotVoidTheRotationBySquattingItsEpoch() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let sync = dir.path("team.sync")
        for v in [a, b, c, a, b, c] { try await fileSync(v, sync) }
        try a.revoke(c.deviceID)
        for v in [a, b, c] { try await fileSync(v, sync) }
        let real = try #require(c.membership.currentRotation)
        let revokedAt = try #require(c.membership.members[c.deviceID]!.revokedAt)
        var hostile = ForgedChain(vaultID: c.vaultID, signer: c.keyring.device, head: try ownHead(of: c))
        let squat = try hostile.entry(
            .revoke(
                device: b.deviceID, after: 0,
                rotation: KeyRotation(epoch: real.epoch, relayKey: Sodium.randomBytes(32), grants: [:])),
            at: HLCTimestamp(wallMillis: revokedAt.wallMillis - 1, counter: 0))
        let file = dir.path("hostile.sync")
        try await fileSync(c, file)
        #expect(try writeSyncFile(file, vaultID: c.vaultID, [squat]) == 1)
        for v in [a, b] { try await fileSync(v, file) }
        for v in [a, b] {
            #expect(v.membership.members[c.deviceID]?.isRevoked == true)
            #expect(v.membership.currentRotation?.epoch == real.epoch, "the squatted epoch did not void the rotation")
            #expect(writingKey(of: v).epoch == real.epoch && c.key(epoch: real.epoch) == nil)
            #expect(try v.verify().problems == [])
        }
        let id = try a.createRecord(
            kind: "statement", fields: [("title", "SECRET AFTER REVOCATION")], tags: [], seal: false)
        try await fileSync(a, file)
        // what c can open: read the envelope from a's log with the keys c holds
        let envs = try a.envelopes(of: a.deviceID, after: 0, limit: 10_000)
        let last = envs.last!
        #expect(last.header.keyEpoch == real.epoch, "the real rotation is still written with")
        #expect(
            c.key(epoch: last.header.keyEpoch) == nil
                && id == RecordID.derived(author: a.deviceID, seq: last.header.seq))
    }

    /// A member makes a recovered identity whose X25519 agreement key is all zeros (a low-order point).
    @Test func anAllZeroMemberKeyNeverStopsACoordinatorFromSyncing() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(4, in: dir)
        let (a, b, c, d) = (team[0], team[1], team[2], team[3])
        let sync = dir.path("team.sync")
        for v in [a, b, c, d, a, b, c, d] { try await fileSync(v, sync) }
        try a.revoke(d.deviceID)  // a rotation exists
        for v in [a, b, c] { try await fileSync(v, sync) }
        var fresh = ForgedChain(vaultID: c.vaultID, signer: SigningKeyPair.generate())
        let zero = [UInt8](repeating: 0, count: 32)
        let proof = c.keyring.device.sign(
            MembershipProof.recoverMessage(vaultID: c.vaultID, device: fresh.device, agreementKey: zero))
        let key = writingKey(of: c)
        let name = try SealedName.seal("c2", key: key, vaultID: c.vaultID, device: fresh.device)
        let recover = try fresh.entry(
            .recover(previous: c.deviceID, proof: proof, agreementKey: zero, name: name), at: stampNow())
        let file = dir.path("hostile.sync")
        try await fileSync(c, file)
        #expect(try writeSyncFile(file, vaultID: c.vaultID, [recover]) == 1)
        _ = try await fileSync(b, file)
        _ = try await fileSync(a, file)
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST B")], tags: [], seal: false)
        try await fileSync(b, sync)
        _ = try await fileSync(a, sync)
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST B" }, "the coordinator still syncs")
        try a.revoke(c.deviceID)
        _ = try await fileSync(a, sync)
        let reopened = try Vault.open(at: dir.path("r0"), passphrase: passphrase)
        #expect(try reopened.visibleRecords().contains { $0.fields["title"] == "HONEST B" })
        #expect(reopened.membership.members[fresh.device]?.isRevoked == true, "it shares c's revocation")
    }

    /// An invited device joins with an all-zero agreement key after a rotation exists.
    @Test func anInviteeWithAnAllZeroKeyCanBeRevokedAndLocksNobodyOut() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, b, d) = (team[0], team[1], team[2])
        let sync = dir.path("team.sync")
        for v in [a, b, d, a, b, d] { try await fileSync(v, sync) }
        try a.revoke(d.deviceID)  // a rotation exists
        var grant = try a.invite(role: .member, validFor: 86_400)
        grant.authority = try a.authorityEnvelopes()
        for v in [a, b] { try await fileSync(v, sync) }
        var j = ForgedChain(vaultID: a.vaultID, signer: SigningKeyPair.generate())
        let zero = [UInt8](repeating: 0, count: 32)
        let proof = grant.secret.sign(
            MembershipProof.joinMessage(vaultID: a.vaultID, device: j.device, agreementKey: zero))
        let name = try SealedName.seal("j", key: grant.keys.last!, vaultID: a.vaultID, device: j.device)
        let join = try j.entry(
            .join(invitation: grant.secret.publicKey, proof: proof, agreementKey: zero, name: name), at: stampNow())
        try writeSyncFile(sync, vaultID: a.vaultID, [join])
        _ = try await fileSync(b, sync)
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST B")], tags: [], seal: false)
        try await fileSync(b, sync)
        _ = try await fileSync(a, sync)
        try a.revoke(j.device)
        _ = try await fileSync(a, sync)
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST B" }, "the coordinator still syncs")
        #expect(a.membership.members[j.device]?.isRevoked == true)
    }
}
