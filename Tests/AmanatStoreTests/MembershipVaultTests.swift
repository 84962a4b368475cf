import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// Membership enforced by real vaults on what arrives in sync files written by hand, as an attacker, a
/// modified client or a restored laptop would write them.
@Suite struct MembershipVaultTests {
    /// Whether `vault` sees itself as an active coordinator.
    func isCoordinator(_ vault: Vault) -> Bool {
        vault.membership.members[vault.deviceID].map { !$0.isRevoked && $0.currentRole == .coordinator } ?? false
    }

    /// Every vault syncs with every file in turn, for at most `rounds` rounds, until a round moves nothing; returns
    /// whether that happened.
    func syncUntilQuiet(_ vaults: [Vault], through files: [URL], rounds: Int) async throws -> Bool {
        for _ in 0..<rounds {
            var moved = 0
            for vault in vaults {
                for file in files {
                    let report = try await fileSync(vault, file)
                    moved += report.pulled + report.pushed + report.keptApart
                }
            }
            if moved == 0 { return true }
        }
        return false
    }

    /// A team of two; `b` wrote a sealed testimony that `a` has. Returns the testimony's id and narrative.
    func teamWithTestimony(_ dir: TemporaryDirectory) async throws -> (Vault, Vault, RecordID, String) {
        let team = try makeTeam(2, in: dir)
        let narrative = "They held me at the checkpoint for two days."
        let id = try team[1].createRecord(
            kind: "testimony", fields: [("witness", "W-031"), ("narrative", narrative)], tags: [], seal: true)
        try await fileSync(team[1], dir.path("team.sync"))
        try await fileSync(team[0], dir.path("team.sync"))
        return (team[0], team[1], id, narrative)
    }

    /// The record `id` on `vault` still shows the real narrative, its seal is the real author's creating change,
    /// and `verify` finds no problem.
    func expectTruth(
        _ vault: Vault, _ id: RecordID, narrative: String, author: DeviceID,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let state = try #require(try vault.allStates().first { $0.id == id }, sourceLocation: sourceLocation)
        #expect(state.view?.fields["narrative"] == narrative, sourceLocation: sourceLocation)
        #expect(state.view?.kind == "testimony", sourceLocation: sourceLocation)
        #expect(state.seal?.op.device == author, sourceLocation: sourceLocation)
        #expect(state.creationOp?.device == author, sourceLocation: sourceLocation)
        #expect(state.changes.allSatisfy { $0.author == author }, "\(state.changes)", sourceLocation: sourceLocation)
        #expect(try vault.verify().problems == [], sourceLocation: sourceLocation)
    }

    // MARK: 1. Devices minted with the vault key

    @Test func aMintedDeviceCannotAdoptItselfIntoTheVaultAndRewriteATestimony() async throws {
        let dir = try TemporaryDirectory()
        let (a, b, id, narrative) = try await teamWithTestimony(dir)
        let key = writingKey(of: b)
        var minted = ForgedChain(vaultID: b.vaultID, signer: mintFirstSortingDevice())
        let mintedID = minted.device
        let fabricated = [("witness", "W-031"), ("narrative", "Nothing happened at the checkpoint.")]
        // A record change that decrypts with the vault key, then an upgrade entry naming itself coordinator of a
        // "first-release" vault with a legacy head high enough to create any record id, then the re-creation again.
        let first = try minted.change(id, key: key, at: stamp(daysAgo: 30), testimonyOperations(fabricated))
        let adopt = try minted.entry(
            .adopt(
                coordinator: mintedID, members: [LegacyMember(device: mintedID, head: 1_000)],
                agreementKey: AgreementKeyPair.generate().publicKey,
                name: try SealedName.seal("coordinator", key: key, vaultID: b.vaultID, device: mintedID)),
            at: stamp(daysAgo: 30))
        let again = try minted.change(id, key: key, at: stamp(daysAgo: 29), testimonyOperations(fabricated))
        let file = dir.path("forged.sync")
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [first, adopt, again]) == 3)
        try await fileSync(a, file)
        #expect(!a.membership.isKnown(mintedID), "a minted device became a member: \(a.members())")
        #expect(a.members().map(\.device).sorted() == [a.deviceID, b.deviceID].sorted())
        try expectTruth(a, id, narrative: narrative, author: b.deviceID)
        #expect(try a.heldBackSummary().contains { $0.device == mintedID })
    }

    @Test func anOutsiderWhoKnowsOnlyTheVaultIDCannotAdoptItselfOrRevokeTheCoordinator() async throws {
        let dir = try TemporaryDirectory()
        let (a, b, id, narrative) = try await teamWithTestimony(dir)
        // A courier or relay sees the vault id, never the vault key: its "record change" is of an epoch nobody
        // holds, which no replica can check.
        var outsider = ForgedChain(vaultID: a.vaultID, signer: mintFirstSortingDevice())
        let outsiderID = outsider.device
        let unreadable = try outsider.unreadable(epoch: 4_242)
        let adopt = try outsider.entry(
            .adopt(
                coordinator: outsiderID, members: [LegacyMember(device: outsiderID, head: 1_000)],
                agreementKey: AgreementKeyPair.generate().publicKey,
                name: SealedName(epoch: 1, nonce: Sodium.randomBytes(24), ciphertext: Sodium.randomBytes(48))),
            at: stamp(daysAgo: 30))
        let revoke = try outsider.entry(
            .revoke(
                device: a.deviceID, after: 0,
                rotation: KeyRotation(epoch: 4_243, relayKey: Sodium.randomBytes(32), grants: [:])),
            at: stampNow())
        let file = dir.path("planted.sync")
        #expect(try writeSyncFile(file, vaultID: a.vaultID, [unreadable, adopt, revoke]) == 3)
        for vault in [a, b] { try await fileSync(vault, file) }
        for vault in [a, b] {
            #expect(!vault.membership.isKnown(outsiderID), "an outsider became a member")
            #expect(vault.membership.members[a.deviceID]?.isRevoked == false, "an outsider revoked the coordinator")
            #expect(vault.membership.epochs.isEmpty, "an outsider started a key epoch")
            try expectTruth(vault, id, narrative: narrative, author: b.deviceID)
        }
        #expect(isCoordinator(a))
        _ = try b.createRecord(kind: "statement", fields: [("title", "still writing")], tags: [], seal: false)
    }

    @Test func aMemberCannotRecreateAnotherMembersTestimonyOrARecordsKind() async throws {
        let dir = try TemporaryDirectory()
        let (a, b, id, narrative) = try await teamWithTestimony(dir)
        let c = try addMember(to: a, at: dir.path("c"), name: "c")
        let statement = try a.createRecord(kind: "statement", fields: [("title", "A statement")], tags: [], seal: false)
        try await fileSync(a, dir.path("team.sync"))
        try await fileSync(c, dir.path("team.sync"))
        var hostile = ForgedChain(vaultID: c.vaultID, signer: c.keyring.device, head: try ownHead(of: c))
        let key = writingKey(of: c)
        let fabricated = [("witness", "W-031"), ("narrative", "Nothing happened at the checkpoint.")]
        let forged = [
            try hostile.change(id, key: key, at: stamp(daysAgo: 30), testimonyOperations(fabricated)),
            try hostile.change(
                try RecordID(Sodium.randomBytes(16)), key: key, at: stampNow(),
                [.create(kind: "statement"), .set(field: "title", value: "not derived", pred: [])]),
            try hostile.change(statement, key: key, at: stamp(daysAgo: 30), [.create(kind: "testimony")]),
        ]
        #expect(try writeSyncFile(dir.path("team.sync"), vaultID: c.vaultID, forged) == 3)
        for vault in [a, b] {
            try await fileSync(vault, dir.path("team.sync"))
            try expectTruth(vault, id, narrative: narrative, author: b.deviceID)
            let views = try vault.visibleRecords()
            #expect(views.first { $0.id == statement }?.kind == "statement")
            #expect(!views.contains { $0.fields["title"] == "not derived" })
            let held = try vault.verify().heldBack
            #expect(
                held.contains { $0.device == c.deviceID && $0.reason == .notCreator && $0.changes == 3 }, "\(held)")
        }
    }

    // MARK: 2. Forks of devices that are not members

    @Test func forksOfAKeyThatIsNotAMemberAreNotRecorded() async throws {
        let dir = try TemporaryDirectory()
        let (a, _, _, _) = try await teamWithTestimony(dir)
        let signer = mintFirstSortingDevice()
        var one = ForgedChain(vaultID: a.vaultID, signer: signer)
        var two = ForgedChain(vaultID: a.vaultID, signer: signer)
        let device = try DeviceID(signer.publicKey)
        let name = { (text: String) in
            try SealedName.seal(text, key: .generate(epoch: 1), vaultID: a.vaultID, device: device)
        }
        let first = try one.entry(.rename(try name("one")), at: stampNow())
        let second = try two.entry(.rename(try name("two")), at: stampNow())
        let third = try two.entry(.rename(try name("three")), at: stampNow())
        _ = try a.ingest([first])
        let direct = try a.ingest([second])
        #expect(direct.forks == [])
        let continued = try a.ingest([third])
        #expect(continued.forks == [])
        #expect(try a.forks() == [])
        #expect(try a.verify().problems == [])
        #expect(try a.status().forks == [])
    }

    // MARK: 5. Revocation with key rotation

    @Test func aRevokedDeviceReadsNothingNewAndItsLaterChangesAreHeldBackEverywhere() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let stick = dir.path("team.sync")
        for vault in [a, b, c, a, b, c] { try await fileSync(vault, stick) }
        // b writes after the last change of b that a has seen, before b learns of its revocation.
        _ = try b.createRecord(kind: "statement", fields: [("title", "after the cut")], tags: [], seal: false)
        try a.revoke(b.deviceID)
        let revokeSeq = try ownHead(of: a).seq
        let secret = "Written after the revocation: the safe house moved."
        let testimony = try a.createRecord(
            kind: "testimony", fields: [("witness", "W-077"), ("narrative", secret)], tags: [], seal: true)
        _ = try a.createRecord(kind: "statement", fields: [("title", "also new")], tags: [], seal: false)
        let usb = dir.path("usb.sync")
        try await fileSync(a, usb)
        // c was offline during the revocation and catches up from the USB file alone.
        try await fileSync(c, usb)
        #expect(try c.visibleRecords().first { $0.id == testimony }?.fields["narrative"] == secret)
        try await fileSync(b, usb)
        #expect(try !b.visibleRecords().contains { $0.id == testimony })

        // Everything a wrote after the revocation, as b received it.
        let after = try b.envelopes(of: a.deviceID, after: revokeSeq, limit: 100)
        #expect(after.count == 2)
        var keys: [VaultKey] = b.allKeys + b.keyring.keys + [.authority(vaultID: b.vaultID)]
        if let rotation = b.membership.currentRotation, let agreement = b.keyring.agreement {
            for box in rotation.grants.values {
                if let root = try? SealedBox.open(box, with: agreement) {
                    keys.append(VaultKey(epoch: rotation.epoch, root: root))
                }
            }
        }
        for envelope in after {
            #expect(!envelope.isAuthority)
            for key in keys {
                // The key as it is, and relabelled with the envelope's epoch, so no epoch check stops the attempt.
                #expect((try? envelope.open(with: key)) == nil)
                let relabelled = VaultKey(epoch: envelope.header.keyEpoch, root: key.root)
                #expect((try? envelope.open(with: relabelled)) == nil, "b decrypted with a key of epoch \(key.epoch)")
            }
        }
        #expect(b.key(epoch: try #require(after.first).header.keyEpoch) == nil)

        // b's change after the cut reaches the others and is held back there.
        try await fileSync(a, usb)
        try await fileSync(c, usb)
        for vault in [a, c] {
            #expect(try !vault.visibleRecords().contains { $0.fields["title"] == "after the cut" })
            let held = try vault.heldBackSummary()
            #expect(held.contains { $0.device == b.deviceID && $0.reason == .revoked && $0.changes == 1 }, "\(held)")
            #expect(try vault.verify().problems == [])
        }
        #expect(try a.status().stateDigest == c.status().stateDigest)
        #expect(a.members() == c.members())
        // Once b knows, it cannot write.
        #expect(throws: StoreError.self) {
            _ = try b.createRecord(kind: "statement", fields: [("title", "once more")], tags: [], seal: false)
        }
        // Only a coordinator revokes; nobody revokes or demotes the last coordinator.
        #expect(throws: StoreError.self) { try c.revoke(a.deviceID) }
        #expect(throws: StoreError.self) { try a.setRole(a.deviceID, .member) }
        #expect(isCoordinator(a))
    }

    @Test func twoCoordinatorsRevokingEachOtherLeaveOneCoordinator() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b, c) = (team[0], team[1], team[2])
        let stick = dir.path("team.sync")
        for vault in [a, b, c, a, b, c] { try await fileSync(vault, stick) }
        try a.revoke(b.deviceID)
        try b.revoke(a.deviceID)
        try await fileSync(a, dir.path("a.sync"))
        try await fileSync(b, dir.path("b.sync"))
        for vault in [c, a, b] {
            try await fileSync(vault, dir.path("a.sync"))
            try await fileSync(vault, dir.path("b.sync"))
        }
        let revoked = c.members().filter(\.revoked).map(\.device)
        #expect(revoked.count == 1, "\(c.members())")
        #expect(c.membership.activeMembers.contains { $0.currentRole == .coordinator })
        for vault in [a, b] where !revoked.contains(vault.deviceID) {
            #expect(vault.members() == c.members())
            #expect(try vault.status().stateDigest == c.status().stateDigest)
        }
    }

    /// A coordinator admits a member while another coordinator, who has not heard of it yet, revokes someone: the
    /// new member is active everywhere once the logs merge, so it must not be locked out of the new key epoch.
    @Test func aMemberAdmittedConcurrentlyWithARevocationIsNotLockedOut() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b, c) = (team[0], team[1], team[2])
        let stick = dir.path("team.sync")
        for vault in [a, b, c, a, b, c] { try await fileSync(vault, stick) }
        let d = try addMember(to: a, at: dir.path("d"), name: "d")
        try b.revoke(c.deviceID)
        for vault in [a, b, d, a, b, d] { try await fileSync(vault, stick) }
        let rotation = try #require(a.membership.currentRotation)
        #expect(a.membership.members[d.deviceID].map { !$0.isRevoked } == true, "d is an active member")
        let id = try b.createRecord(kind: "statement", fields: [("title", "after the rotation")], tags: [], seal: false)
        for vault in [b, a, d, b, a, d] { try await fileSync(vault, stick) }
        #expect(d.key(epoch: rotation.epoch) != nil, "d, an active member, was never given the key of the rotation")
        #expect(try d.visibleRecords().contains { $0.id == id })
        #expect(try d.status().stateDigest == a.status().stateDigest)
        #expect(try b.status().stateDigest == a.status().stateDigest)
    }

    /// One coordinator: it invites d, d joins offline, and the coordinator revokes b before d's join reaches it.
    /// Once d's join arrives, d is an active member and must receive the key of the new epoch.
    @Test func aMemberWhoseJoinArrivesAfterARevocationIsNotLockedOut() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let stick = dir.path("team.sync")
        for vault in [a, b, a] { try await fileSync(vault, stick) }
        let d = try addMember(to: a, at: dir.path("d"), name: "d")
        try a.revoke(b.deviceID)
        let id = try a.createRecord(kind: "statement", fields: [("title", "after the rotation")], tags: [], seal: false)
        for vault in [d, a, d, a] { try await fileSync(vault, stick) }
        let rotation = try #require(a.membership.currentRotation)
        #expect(a.membership.members[d.deviceID].map { !$0.isRevoked } == true, "d is an active member")
        #expect(d.key(epoch: rotation.epoch) != nil, "d, an active member, was never given the key of the rotation")
        #expect(try d.visibleRecords().contains { $0.id == id })
        #expect(try d.status().stateDigest == a.status().stateDigest)
    }

    /// A revoked device hands over to a new identity with `recover`, stamped before its revocation: the new
    /// identity must not be an active member, its record changes must be held back, and no later rotation may
    /// grant it a key.
    @Test func aRevokedDeviceCannotEscapeItsRevocationWithABackdatedRecover() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let stick = dir.path("team.sync")
        for vault in [a, b, c, a, b, c] { try await fileSync(vault, stick) }
        try a.revoke(b.deviceID)
        for vault in [a, b, c] { try await fileSync(vault, stick) }
        #expect(b.membership.members[b.deviceID]?.isRevoked == true)

        // b's modified client: a new identity admitted by b's own signature, stamped just after b's own admission,
        // so it sorts before the revocation.
        let admitted = try #require(b.membership.members[b.deviceID]).admittedAt
        let joined = HLCTimestamp(wallMillis: admitted.wallMillis, counter: admitted.counter + 1)
        let signer = SigningKeyPair.generate()
        let newID = try DeviceID(signer.publicKey)
        let agreement = AgreementKeyPair.generate()
        let proof = b.keyring.device.sign(
            MembershipProof.recoverMessage(vaultID: b.vaultID, device: newID, agreementKey: agreement.publicKey))
        let oldKey = try #require(b.key(epoch: 1))
        var chain = ForgedChain(vaultID: b.vaultID, signer: signer)
        let forged = [
            try chain.entry(
                .recover(
                    previous: b.deviceID, proof: proof, agreementKey: agreement.publicKey,
                    name: try SealedName.seal("b", key: oldKey, vaultID: b.vaultID, device: newID)),
                at: joined),
            try chain.change(
                RecordID.derived(author: newID, seq: 2), key: oldKey, at: stampNow(),
                [.create(kind: "statement"), .set(field: "title", value: "written after the revocation", pred: [])]),
        ]
        #expect(try writeSyncFile(stick, vaultID: b.vaultID, forged) == 2)
        for vault in [a, c] {
            try await fileSync(vault, stick)
            let member = vault.membership.members[newID]
            #expect(member == nil || member?.isRevoked == true, "a revoked device's new identity is active")
            #expect(try !vault.visibleRecords().contains { $0.fields["title"] == "written after the revocation" })
        }
        // The next rotation grants nothing to it.
        try a.revoke(c.deviceID)
        #expect(
            a.membership.epochs.last?.boxes(for: newID).isEmpty == true,
            "a later rotation gave the revoked device a key")
    }

    /// Someone who knows only the vault id fills the store of kept-apart envelopes with invented devices; a member
    /// invited afterwards must still be admitted everywhere (every new member's first entry arrives from a device
    /// nobody knows yet).
    @Test func keptApartEnvelopesOfInventedDevicesDoNotLockOutNewMembers() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let stick = dir.path("team.sync")
        for vault in [a, b, a] { try await fileSync(vault, stick) }
        let flood = dir.path("flood.sync")
        for _ in 0..<10 {
            var chain = ForgedChain(vaultID: a.vaultID, signer: SigningKeyPair.generate())
            let run = try (0..<1_000).map { _ in try chain.unreadable(epoch: 777) }
            #expect(try writeSyncFile(flood, vaultID: a.vaultID, run) == 1_000)
        }
        try await fileSync(b, flood)
        let d = try addMember(to: a, at: dir.path("d"), name: "d")
        for vault in [a, d, b, a] { try await fileSync(vault, stick) }
        #expect(b.membership.isKnown(d.deviceID), "b never admitted the new member d")
        _ = try d.createRecord(kind: "statement", fields: [("title", "from d")], tags: [], seal: false)
        for vault in [d, b] { try await fileSync(vault, stick) }
        #expect(try b.visibleRecords().contains { $0.fields["title"] == "from d" })
    }

    // MARK: 6. A restored copy

    @Test func aRestoredCopyIsToldItForkedRecoversAndItsWorkReachesTheOthers() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let stick = dir.path("team.sync")
        _ = try b.createRecord(kind: "statement", fields: [("title", "before the backup")], tags: [], seal: false)
        for vault in [b, a] { try await fileSync(vault, stick) }
        let restored = try cloneVault(b, to: dir.path("restored"))
        _ = try b.createRecord(kind: "statement", fields: [("title", "original laptop")], tags: [], seal: false)
        try await fileSync(b, stick)
        for i in 0..<2 {
            _ = try restored.createRecord(
                kind: "statement", fields: [("title", "restored \(i)")], tags: [], seal: false)
        }
        let told = try await fileSync(restored, stick)
        #expect(told.forks.map(\.device) == [b.deviceID], "the restored copy is told its own identity forked")
        let old = restored.deviceID
        let result = try restored.recover(passphrase: passphrase)
        #expect(result.resigned == 2)
        #expect(restored.deviceID != old)
        for vault in [restored, a, b, restored] { try await fileSync(vault, stick) }
        let titles = try a.visibleRecords().compactMap { $0.fields["title"] }.sorted()
        #expect(titles == ["before the backup", "original laptop", "restored 0", "restored 1"])
        let newcomer = try #require(a.members().first { $0.device == result.device })
        #expect(newcomer.admittedBy == old && !newcomer.revoked && newcomer.role == .member)
        #expect(try a.verify().problems == [])
        #expect(try a.status().stateDigest == b.status().stateDigest)
        #expect(try a.status().stateDigest == restored.status().stateDigest)
        #expect(a.members() == restored.members())
        _ = try b.createRecord(kind: "statement", fields: [("title", "original still works")], tags: [], seal: false)
        try await fileSync(b, stick)
        try await fileSync(a, stick)
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "original still works" })
    }

    // MARK: 8. Randomized convergence

    /// Found by seed 17088949165628510631 of the randomized test below: a coordinator revokes a member and writes
    /// with the new key while another coordinator, not yet aware of it, demotes it. The revocation has no effect,
    /// but its key sealed a testimony: every replica, the member that was nearly revoked included, must read it.
    @Test func aRevocationUndoneByAConcurrentDemotionKeepsWhatItsKeySealedReadableEverywhere() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b, c) = (team[0], team[1], team[2])
        try a.revoke(c.deviceID)
        let id = try a.createRecord(
            kind: "statement", fields: [("title", "after the revocation")], tags: [], seal: false)
        try b.setRole(a.deviceID, .member)  // b has not seen the revocation
        #expect(try await syncUntilQuiet(team, through: [file], rounds: 8))
        for vault in team {
            #expect(vault.membership.members[c.deviceID]?.isRevoked == false, "\(vault.keyring.deviceName)")
            #expect(vault.membership.members[a.deviceID]?.currentRole == .member)
            #expect(vault.membership.keyOnlyEpochs.count == 1, "\(vault.keyring.deviceName)")
            #expect(
                try vault.visibleRecords().contains { $0.id == id && $0.fields["title"] == "after the revocation" },
                "\(vault.keyring.deviceName) cannot read what the revocation's key sealed")
            #expect(try vault.status().stateDigest == a.status().stateDigest, "\(vault.keyring.deviceName)")
            #expect(try vault.verify().problems == [], "\(vault.keyring.deviceName)")
        }
    }

    /// Found by seed 9433002537304639165: a coordinator demoted concurrently revokes the only other coordinator.
    /// Its rotation is key-only and grants everyone but that coordinator, so no coordinator holds the key: the
    /// members that do grant it, and the coordinator reads what the key sealed.
    @Test func aKeyOnlyRotationNoCoordinatorHoldsIsGrantedByTheMembersThatHoldIt() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b) = (team[0], team[1])
        try a.setRole(b.deviceID, .member)
        try b.revoke(a.deviceID)  // b has not seen its demotion
        let id = try b.createRecord(
            kind: "statement", fields: [("title", "sealed with b's key")], tags: [], seal: false)
        #expect(try await syncUntilQuiet(team, through: [file], rounds: 8))
        let rotation = try #require(a.membership.keyOnlyEpochs.first)
        #expect(a.membership.members[a.deviceID]?.isRevoked == false)
        #expect(a.membership.members[b.deviceID]?.currentRole == .member)
        #expect(!rotation.boxes(for: a.deviceID).isEmpty, "nobody granted the coordinator the key-only rotation's key")
        for vault in team {
            #expect(
                try vault.visibleRecords().contains { $0.id == id && $0.fields["title"] == "sealed with b's key" },
                "\(vault.keyring.deviceName) cannot read what the key-only rotation sealed")
            #expect(try vault.status().stateDigest == a.status().stateDigest, "\(vault.keyring.deviceName)")
            #expect(try vault.verify().problems == [], "\(vault.keyring.deviceName)")
        }
    }

    /// From the attack review: a member's client grants the coordinator a key-only rotation left out a box of
    /// garbage, before any honest member could grant the real key. A member's box never counts as the coordinator
    /// holding the key, so the honest members still grant it, and the coordinator tries every box it was given.
    @Test func aMembersGarbageBoxNeverKeepsTheRealKeyFromACoordinator() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(4, in: dir, roles: [.coordinator, .member, .member])
        let (a, b, c, e) = (team[0], team[1], team[2], team[3])
        // b's rotation grants everyone but a.
        let (id, epoch) = try await keyOnlyRotation(demoting: b, by: a, revoking: a, through: file)
        let garbage = try garbageGrant(from: e, to: a, epoch: epoch, through: file)
        let honest = [a, b, c]
        #expect(try await syncUntilQuiet(honest, through: [file], rounds: 8))
        let keyOnly = try #require(a.membership.keyOnlyEpochs.first)
        #expect(keyOnly.rotation.epoch == epoch && keyOnly.boxes(for: a.deviceID).first == garbage)
        #expect(a.key(epoch: epoch) != nil, "the coordinator never got the key-only rotation's key")
        try expectConverged(honest, reading: id, like: a)
    }

    /// From the attack review: the first box no longer wins. A newcomer joins after a key-only rotation a
    /// coordinator holds; a member's client grants it garbage first. The coordinator still grants it the real
    /// key, and the newcomer reads what that key sealed.
    @Test func aMembersGarbageBoxNeverKeepsTheRealKeyFromANewcomer() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(4, in: dir, roles: [.coordinator, .member, .member])
        let (a, b, c, e) = (team[0], team[1], team[2], team[3])
        let invitation = try a.invite(role: .member, validFor: 86_400)
        // b's rotation grants a, b and e, not c.
        let (id, epoch) = try await keyOnlyRotation(demoting: b, by: a, revoking: c, through: file)
        let d = try Vault.join(
            invitation, at: dir.path("d"), passphrase: passphrase, deviceName: "d", strength: .interactive)
        try await fileSync(d, file)
        let garbage = try garbageGrant(from: e, to: d, epoch: epoch, through: file)
        let honest = [a, b, c, d]
        #expect(try await syncUntilQuiet(honest, through: [file], rounds: 8))
        let keyOnly = try #require(d.membership.keyOnlyEpochs.first)
        #expect(keyOnly.rotation.epoch == epoch && keyOnly.boxes(for: d.deviceID).first == garbage)
        #expect(d.membership.members[c.deviceID]?.isRevoked == false)
        #expect(d.key(epoch: epoch) != nil, "the newcomer never got the key-only rotation's key")
        try expectConverged(honest, reading: id, like: a)
        // The coordinator granted the newcomer; the members, who hold the key, granted only the coordinator and
        // members without any box (c, left out by the rotation).
        #expect(try grantsWritten(by: a, epoch: epoch).contains(d.deviceID))
        for member in [b, c] {
            #expect(try grantsWritten(by: member, epoch: epoch).allSatisfy { $0 == a.deviceID || $0 == c.deviceID })
        }
    }

    /// From the attack review: a member can make a key-only rotation whenever it likes (a revoke it has no authority
    /// for) and grant its key to everyone. Members' boxes never count, so honest devices must not each answer by
    /// granting everyone: members grant only the coordinators, which grant the rest — a handful of boxes, not n².
    @Test func aMembersKeyOnlyRotationCostsHonestDevicesAFewGrantsNotOnePerPair() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(6, in: dir)
        let (a, h) = (team[0], team[5])
        let honest = Array(team[0..<5])
        let root = Sodium.randomBytes(32)
        let epoch = UInt32(424_242)
        let key = VaultKey(epoch: epoch, root: SecureBytes(root))
        func box(_ vault: Vault) throws -> [UInt8] {
            try SealedBox.seal(root, to: try #require(vault.keyring.agreement?.publicKey))
        }
        let rotation = KeyRotation(
            epoch: epoch, relayKey: key.relaySigningKey().publicKey, grants: [h.deviceID: try box(h)])
        var hostile = ForgedChain(vaultID: h.vaultID, signer: h.keyring.device, head: try ownHead(of: h))
        let revoke = try hostile.entry(.revoke(device: team[4].deviceID, after: 1, rotation: rotation), at: stampNow())
        var everyone: [DeviceID: [UInt8]] = [:]
        for vault in honest { everyone[vault.deviceID] = try box(vault) }
        let grant = try hostile.entry(.grant(epoch: epoch, grants: everyone), at: stampNow())
        #expect(try writeSyncFile(file, vaultID: h.vaultID, [revoke, grant]) == 2)
        // Members settle first, before the coordinator's grant can reach them.
        #expect(try await syncUntilQuiet(Array(honest.dropFirst()) + [a], through: [file], rounds: 8))
        for vault in honest {
            #expect(vault.membership.keyOnlyEpochs.map(\.rotation.epoch) == [epoch], "\(vault.keyring.deviceName)")
            #expect(vault.key(epoch: epoch) != nil, "\(vault.keyring.deviceName) cannot open the key")
            #expect(vault.membership == a.membership, "\(vault.keyring.deviceName) disagrees on the membership")
        }
        var boxes = try grantsWritten(by: a, epoch: epoch).count
        #expect(boxes <= honest.count + 1, "the coordinator granted \(boxes) boxes")
        for member in honest.dropFirst() {
            let recipients = try grantsWritten(by: member, epoch: epoch)
            #expect(recipients.allSatisfy { $0 == a.deviceID }, "a member granted another member")
            boxes += recipients.count
        }
        #expect(boxes <= 2 * honest.count, "honest devices wrote \(boxes) boxes for one hostile key-only rotation")
    }

    /// A purge's note (which record, and why: a witness's safety, say) is sealed with the key the vault writes with,
    /// so a device revoked before the purge, that still reads the stick, learns neither. Before, it was sealed with
    /// the keyring's first key, which every device ever admitted holds.
    @Test func aPurgeReasonIsSealedFromADeviceRevokedBeforeIt() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let file = dir.path("team.sync")
        let id = try a.createRecord(kind: "statement", fields: [("title", "to be purged")], tags: [], seal: false)
        for vault in team + team { try await fileSync(vault, file) }
        try a.revoke(c.deviceID)
        let info = try a.purge(record: id, reason: "the witness asked: her safety")
        #expect(info.reason == "the witness asked: her safety")
        let epoch = try #require(a.membership.currentRotation?.epoch)
        #expect(a.membership.purges.last?.purge.note.epoch == epoch, "the note is not sealed with the write key")
        for vault in [a, b, c] { try await fileSync(vault, file) }
        #expect(b.purges().map(\.reason) == ["the witness asked: her safety"])
        #expect(c.membership.purges.count == 1, "the revoked device did not even receive the purge entry")
        #expect(c.purges().isEmpty, "the revoked device read the purge's record and reason")
    }

    /// From the second attack review: members hand a key-only key to coordinators, but a coordinator may be away
    /// for good (its laptop seized). A member the rotation left out, and one that joined after it, hold no box at
    /// all: the members that hold the key grant it to them, and they read what it sealed without the coordinator.
    @Test func membersWithoutAnyBoxGetAKeyOnlyKeyWhileTheCoordinatorIsAway() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(4, in: dir, roles: [.coordinator, .member, .member])
        let (a, b, c, e) = (team[0], team[1], team[2], team[3])
        let invitation = try a.invite(role: .member, validFor: 86_400)
        // b's rotation grants a, b and e, not c.
        let (id, epoch) = try await keyOnlyRotation(demoting: b, by: a, revoking: c, through: file)
        try await fileSync(a, file)  // a's last sync: it is away from now on
        let d = try Vault.join(
            invitation, at: dir.path("d"), passphrase: passphrase, deviceName: "d", strength: .interactive)
        let present = [b, c, e, d]
        #expect(try await syncUntilQuiet(present, through: [file], rounds: 8))
        for vault in present {
            #expect(vault.membership.keyOnlyEpochs.map(\.rotation.epoch) == [epoch], "\(vault.keyring.deviceName)")
            #expect(vault.key(epoch: epoch) != nil, "\(vault.keyring.deviceName) never got the key-only key")
        }
        try expectConverged(present, reading: id, like: b)
    }

    /// From the second attack review: a newcomer's name was sealed with its keyring's highest epoch number, which
    /// may be an older rotation's key that a device revoked since still holds. It is sealed with the key the vault
    /// writes with, so that device cannot read who joined.
    @Test func aNewcomersNameIsSealedFromADeviceRevokedBeforeItJoined() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(4, in: dir, roles: [.coordinator, .member, .member])
        let (a, b, c, e) = (team[0], team[1], team[2], team[3])
        // Coordinator b rotates twice, the second time to a smaller epoch number: e, revoked by the second, holds the
        // first rotation's key, the highest epoch number a newcomer's keyring will hold.
        var chain = ForgedChain(vaultID: b.vaultID, signer: b.keyring.device, head: try ownHead(of: b))
        let first = try chain.entry(
            .revoke(
                device: c.deviceID, after: try ownHead(of: c).seq,
                rotation: forgedRotation(4_000_000_000, to: [a, b, e])),
            at: stampNow())
        let second = try chain.entry(
            .revoke(device: e.deviceID, after: try ownHead(of: e).seq, rotation: forgedRotation(7, to: [a, b])),
            at: stampNow())
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [first, second]) == 2)
        try await fileSync(a, file)
        #expect(a.membership.currentRotation?.epoch == 7)
        let d = try addMember(to: a, at: dir.path("d"), name: "d")
        #expect(d.allKeys.map(\.epoch) == [1, 7, 4_000_000_000])
        for vault in [d, a, e] { try await fileSync(vault, file) }
        let join = try #require(
            try d.envelopes(of: d.deviceID, after: 0, limit: 10).compactMap { try? $0.openEntry() }.first)
        guard case .join(_, _, _, let name) = join.entry.operation else {
            Issue.record("d's first entry is not its join")
            return
        }
        #expect(name.epoch == 7, "the newcomer's name is sealed with epoch \(name.epoch)")
        #expect(a.members().first { $0.device == d.deviceID }?.name == "d")
        #expect(e.membership.members[d.deviceID] != nil, "e did not receive the join")
        #expect(
            e.members().first { $0.device == d.deviceID }?.name == nil, "the revoked device read the newcomer's name")
    }

    /// From the second attack review: a member the newest rotation left out (its grant still on its way) wrote with
    /// the original key, which every device revoked since holds. It writes with the last rotation's key it holds,
    /// as Protocol/membership.md §8 says, so a device revoked by that rotation cannot read it.
    @Test func aMemberWithoutTheNewestKeyWritesWithTheLastRotationItHoldsNotTheOriginal() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(5, in: dir, roles: [.coordinator, .member, .member, .member])
        let (a, b, c, e, m) = (team[0], team[1], team[2], team[3], team[4])
        // Coordinator b revokes c (m is granted the new key), then e, leaving m out by mistake.
        var chain = ForgedChain(vaultID: b.vaultID, signer: b.keyring.device, head: try ownHead(of: b))
        let first = try chain.entry(
            .revoke(
                device: c.deviceID, after: try ownHead(of: c).seq, rotation: forgedRotation(500, to: [a, b, e, m])),
            at: stampNow())
        let second = try chain.entry(
            .revoke(device: e.deviceID, after: try ownHead(of: e).seq, rotation: forgedRotation(600, to: [a, b])),
            at: stampNow())
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [first, second]) == 2)
        try await fileSync(m, file)
        #expect(m.membership.currentRotation?.epoch == 600 && m.key(epoch: 600) == nil && m.key(epoch: 500) != nil)
        let id = try m.createRecord(kind: "statement", fields: [("title", "written by m")], tags: [], seal: false)
        let written = try #require(try m.envelopes(of: m.deviceID, after: 0, limit: 100).last { !$0.isAuthority })
        #expect(written.header.keyEpoch == 500, "m wrote with epoch \(written.header.keyEpoch)")
        for vault in [m, c, a] { try await fileSync(vault, file) }
        #expect(try !c.visibleRecords().contains { $0.id == id }, "a device revoked by the first rotation read it")
        #expect(try a.visibleRecords().contains { $0.id == id })
    }

    /// A team of `count` (`makeTeam`) in which everyone has synced twice through one file, so all know everyone.
    func syncedTeam(_ count: Int, in dir: TemporaryDirectory, roles: [Role] = []) async throws -> ([Vault], URL) {
        let team = try makeTeam(count, in: dir, roles: roles)
        let file = dir.path("team.sync")
        for vault in team + team { try await fileSync(vault, file) }
        return (team, file)
    }

    /// A rotation to `epoch` with a fresh key, sealed to each of `members`, as a coordinator's client makes one.
    func forgedRotation(_ epoch: UInt32, to members: [Vault]) throws -> KeyRotation {
        let root = Sodium.randomBytes(32)
        var boxes: [DeviceID: [UInt8]] = [:]
        for m in members {
            boxes[m.deviceID] = try SealedBox.seal(root, to: try #require(m.keyring.agreement?.publicKey))
        }
        let key = VaultKey(epoch: epoch, root: SecureBytes(root))
        return KeyRotation(epoch: epoch, relayKey: key.relaySigningKey().publicKey, grants: boxes)
    }

    /// `coordinator` demotes `b` while `b`, not aware of it, revokes `target` and seals a record with the new key,
    /// then syncs through `file`: once both are known, b's rotation is key-only. Returns the record and the epoch.
    func keyOnlyRotation(demoting b: Vault, by coordinator: Vault, revoking target: Vault, through file: URL)
        async throws -> (RecordID, UInt32)
    {
        try coordinator.setRole(b.deviceID, .member)
        try b.revoke(target.deviceID)
        let id = try b.createRecord(
            kind: "statement", fields: [("title", "sealed with b's key")], tags: [], seal: false)
        try await fileSync(b, file)
        return (id, try #require(b.membership.currentRotation?.epoch))
    }

    /// `hostile`'s modified client, at its own chain head, grants `target` a box of garbage for `epoch` through
    /// `file`. Returns the box.
    func garbageGrant(from hostile: Vault, to target: Vault, epoch: UInt32, through file: URL) throws -> [UInt8] {
        let agreement = try #require(target.keyring.agreement?.publicKey)
        var chain = ForgedChain(
            vaultID: hostile.vaultID, signer: hostile.keyring.device, head: try ownHead(of: hostile))
        let garbage = try SealedBox.seal(Sodium.randomBytes(32), to: agreement)
        let grant = try chain.entry(.grant(epoch: epoch, grants: [target.deviceID: garbage]), at: stampNow())
        #expect(try writeSyncFile(file, vaultID: hostile.vaultID, [grant]) == 1)
        return garbage
    }

    /// Every vault reads the record `id` that b's key-only rotation sealed, and agrees with `reference` on the records
    /// and the membership; none finds a problem.
    func expectConverged(_ vaults: [Vault], reading id: RecordID, like reference: Vault) throws {
        for vault in vaults {
            #expect(
                try vault.visibleRecords().contains { $0.id == id && $0.fields["title"] == "sealed with b's key" },
                "\(vault.keyring.deviceName) cannot read what the key-only rotation sealed")
            #expect(try vault.status().stateDigest == reference.status().stateDigest, "\(vault.keyring.deviceName)")
            #expect(vault.membership == reference.membership, "\(vault.keyring.deviceName) disagrees on the membership")
            #expect(try vault.verify().problems == [], "\(vault.keyring.deviceName)")
        }
    }

    /// The members `vault`'s own grant entries of `epoch` name, in the order written.
    func grantsWritten(by vault: Vault, epoch: UInt32) throws -> [DeviceID] {
        try vault.envelopes(of: vault.deviceID, after: 0, limit: 10_000).flatMap { envelope -> [DeviceID] in
            guard envelope.isAuthority, let entry = try? envelope.openEntry(),
                case .grant(let granted, let grants) = entry.entry.operation, granted == epoch
            else { return [] }
            return grants.keys.sorted()
        }
    }

    /// A hostile coordinator grants a newcomer a box holding a key that is not the rotation's. The newcomer never
    /// uses it: it would judge the honest author's changes by a wrong key and hold them back as its fault.
    @Test func aGrantOfAWrongKeyIsNeverUsedToJudgeHonestChanges() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(3, in: dir, roles: [.coordinator, .member])
        let (a, b, c) = (team[0], team[1], team[2])
        // d is invited before the rotation and joins after it: no box of the new key is d's yet.
        let invitation = try a.invite(role: .member, validFor: 86_400)
        try a.revoke(c.deviceID)
        let id = try a.createRecord(kind: "statement", fields: [("title", "after the rotation")], tags: [], seal: false)
        try await fileSync(a, file)
        let d = try Vault.join(
            invitation, at: dir.path("d"), passphrase: passphrase, deviceName: "d", strength: .interactive)
        try await fileSync(d, file)
        let epoch = try #require(a.membership.currentRotation?.epoch)
        let agreement = try #require(d.keyring.agreement?.publicKey)
        // b's modified client, at b's own chain head, before its honest client could grant d the real key.
        var hostile = ForgedChain(vaultID: b.vaultID, signer: b.keyring.device, head: try ownHead(of: b))
        let wrong = try SealedBox.seal(Sodium.randomBytes(32), to: agreement)
        let grant = try hostile.entry(.grant(epoch: epoch, grants: [d.deviceID: wrong]), at: stampNow())
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [grant]) == 1)
        for vault in [a, d, a, d] { try await fileSync(vault, file) }
        #expect(d.membership.epochs.last?.boxes(for: d.deviceID) == [wrong])
        #expect(d.key(epoch: epoch) == nil, "the newcomer took the wrong key")
        let held = try d.verify().heldBack
        #expect(!held.contains { $0.device == a.deviceID }, "an honest change was judged by a wrong key: \(held)")
        #expect(try !d.visibleRecords().contains { $0.id == id })
        #expect(try a.visibleRecords().contains { $0.id == id })
    }

    /// From the attack review: a member's key-only rotation stamped an hour ahead. A member's grant of it, written
    /// now, sorts before the rotation and has no effect; it must not be written again at every sync.
    @Test func aGrantThatHadNoEffectIsNotWrittenAgainAndAgain() async throws {
        let dir = try TemporaryDirectory()
        let (team, file) = try await syncedTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let root = Sodium.randomBytes(32)
        let epoch = UInt32(77_777)
        let agreement = try #require(c.keyring.agreement?.publicKey)
        let rotation = KeyRotation(
            epoch: epoch, relayKey: VaultKey(epoch: epoch, root: SecureBytes(root)).relaySigningKey().publicKey,
            grants: [c.deviceID: try SealedBox.seal(root, to: agreement)])
        var hostile = ForgedChain(vaultID: b.vaultID, signer: b.keyring.device, head: try ownHead(of: b))
        let ahead = HLCTimestamp(wallMillis: stampNow().wallMillis + 3_600_000, counter: 0)
        let revoke = try hostile.entry(.revoke(device: a.deviceID, after: 1, rotation: rotation), at: ahead)
        #expect(try writeSyncFile(file, vaultID: b.vaultID, [revoke]) == 1)
        try await fileSync(c, file)
        // Every open settles the membership (and writes the grants a device owes).
        var reopened = c
        for _ in 0..<3 { reopened = try Vault.open(at: c.directory, passphrase: passphrase) }
        let grants = try reopened.envelopes(of: c.deviceID, after: 0, limit: 1000).filter { envelope in
            guard envelope.isAuthority, let entry = try? envelope.openEntry(),
                case .grant(let granted, _) = entry.entry.operation
            else { return false }
            return granted == epoch
        }
        #expect(reopened.membership.keyOnlyEpochs.map(\.rotation.epoch) == [epoch])
        #expect(grants.count == 1, "c wrote \(grants.count) grants of the same key to the same member")
    }

    @Test func randomInvitationsRolesRevocationsAndEditsConverge() async throws {
        let seed =
            ProcessInfo.processInfo.environment["AMANAT_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print(
            "MembershipVaultTests.randomInvitationsRolesRevocationsAndEditsConverge seed \(seed) (AMANAT_SEED=\(seed))")
        var rng = SeededGenerator(seed: seed)
        let dir = try TemporaryDirectory()
        var vaults = [
            try Vault.create(at: dir.path("v0"), passphrase: passphrase, deviceName: "v0", strength: .interactive)
        ]
        let files = [dir.path("s0.sync"), dir.path("s1.sync"), dir.path("s2.sync")]
        var log: [String] = []
        var revocations = 0
        for step in 0..<80 {
            let index = Int.random(in: 0..<vaults.count, using: &rng)
            let actor = vaults[index]
            let roll = Int.random(in: 0..<12, using: &rng)
            // Targets in the order of the vaults' names, not of their random keys, so a seed replays the same choices.
            let names = Dictionary(uniqueKeysWithValues: vaults.map { ($0.deviceID, $0.keyring.deviceName) })
            let others = actor.membership.activeMembers.filter { $0.device != actor.deviceID }
                .sorted { (names[$0.device] ?? $0.device.hex) < (names[$1.device] ?? $1.device.hex) }
            if roll == 0 && vaults.count < 4 && isCoordinator(actor) {
                let role = [Role.member, .member, .reader, .coordinator].randomElement(using: &rng)!
                let name = "v\(vaults.count)"
                vaults.append(try addMember(to: actor, at: dir.path(name), name: name, role: role))
                log.append("\(step): v\(index) invites \(name) as \(role)")
            } else if roll == 1 && isCoordinator(actor) && !others.isEmpty {
                let target = others.randomElement(using: &rng)!.device
                let role = Role.allCases.randomElement(using: &rng)!
                let done = (try? actor.setRole(target, role)) != nil
                log.append("\(step): v\(index) sets \(names[target] ?? target.hex) to \(role): \(done)")
            } else if roll == 2 && revocations < 1 && isCoordinator(actor) && others.count >= 2 {
                let target = others.randomElement(using: &rng)!.device
                let done = (try? actor.revoke(target)) != nil
                if done { revocations += 1 }
                log.append("\(step): v\(index) revokes \(names[target] ?? target.hex): \(done)")
            } else if roll < 7 {
                let records = try actor.visibleRecords()
                if let record = records.randomElement(using: &rng), Bool.random(using: &rng) {
                    let done =
                        (try? actor.commit(record: record.id) { state in
                            [.set(field: "title", value: "edit \(step)", pred: state?.values["title"]?.map(\.op) ?? [])]
                        }) != nil
                    log.append("\(step): v\(index) edits \(record.id.hex.prefix(6)): \(done)")
                } else {
                    let done =
                        (try? actor.createRecord(
                            kind: "statement", fields: [("title", "s\(step)")], tags: ["t\(step % 3)"], seal: false))
                        != nil
                    log.append("\(step): v\(index) creates s\(step): \(done)")
                }
            } else {
                let file = Int.random(in: 0..<files.count, using: &rng)
                let report = try await fileSync(actor, files[file])
                log.append("\(step): v\(index) syncs s\(file): pulled \(report.pulled), pushed \(report.pushed)")
            }
        }
        // Everyone syncs until nothing moves.
        let quiet = try await syncUntilQuiet(vaults, through: files, rounds: 12)
        let trace = "seed \(seed)\n" + log.joined(separator: "\n")
        #expect(quiet, "syncs never went quiet; \(trace)")
        let reference = vaults[0].membership
        let active = vaults.filter { v in reference.members[v.deviceID].map { !$0.isRevoked } ?? false }
        #expect(active.count >= 1)
        let first = try #require(active.first)
        for vault in active.dropFirst() {
            #expect(
                try vault.status().stateDigest == first.status().stateDigest,
                "\(vault.keyring.deviceName) differs from \(first.keyring.deviceName); \(trace)")
            #expect(vault.members() == first.members(), "\(vault.keyring.deviceName); \(trace)")
        }
        for vault in active {
            #expect(try vault.verify().problems == [], "\(vault.keyring.deviceName); \(trace)")
        }
    }
}
