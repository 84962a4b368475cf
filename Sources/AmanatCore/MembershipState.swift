import AmanatCrypto

/// One device as the membership log says it is.
public struct Member: Hashable, Sendable {
    /// The device (its Ed25519 signing key).
    public var device: DeviceID
    /// Its X25519 key for sealed vault keys and evidence bundles; nil for a first-release device not yet upgraded.
    public var agreementKey: [UInt8]?
    /// Its latest sealed name.
    public var name: SealedName?
    /// Who admitted it: nil for the founder and for devices adopted from a first-release vault.
    public var admittedBy: DeviceID?
    /// The stamp of the entry that admitted it.
    public var admittedAt: HLCTimestamp
    /// The invitation key it joined with.
    public var invitation: [UInt8]?
    /// Its changes with seq greater than this are its own as a member (the seq of its found/join/recover entry;
    /// 0 for a device adopted from a first-release vault).
    public var since: UInt64
    /// Role windows: the role in force for its changes with seq greater than `after` (the greatest such `after`).
    public var roles: [RoleWindow]
    /// Its changes with seq greater than this are held back; nil while it is not revoked.
    public var revokedAfter: UInt64?
    /// Who revoked it and when.
    public var revokedBy: DeviceID?
    /// The stamp of the revocation.
    public var revokedAt: HLCTimestamp?
    /// Its record creations with seq up to this keep their first-release random ids (0: none).
    public var legacyHead: UInt64
    /// The identity it recovered from (`amanat recover`), whose revocation it shares.
    public var recoveredFrom: DeviceID?

    /// A role in force from a seq on.
    public struct RoleWindow: Hashable, Sendable {
        /// The role applies to changes with seq greater than this.
        public var after: UInt64
        /// The role.
        public var role: Role
    }

    /// The role in force for this device's change `seq`.
    public func role(at seq: UInt64) -> Role {
        var best = roles[0]
        for window in roles.dropFirst() where window.after < seq && window.after >= best.after { best = window }
        return best.role
    }

    /// The role it has now (for its next change).
    public var currentRole: Role { role(at: UInt64.max) }

    /// Whether it is revoked.
    public var isRevoked: Bool { revokedAfter != nil }

    /// Whether this device's change `seq` is its own as a member, not revoked at that point.
    public func isActive(at seq: UInt64) -> Bool {
        seq > since && revokedAfter.map { seq <= $0 } ?? true
    }
}

/// Why a change is not applied (it is kept as evidence).
public enum HeldReason: String, Hashable, Sendable, CaseIterable {
    /// Its author is not a member of the vault.
    case notMember = "not a member"
    /// Its author was revoked before writing it.
    case revoked = "revoked"
    /// Its author was a reader when writing it.
    case reader = "reader"
    /// It creates or seals a record that only another change may create (Protocol/membership.md §6).
    case notCreator = "creates a record it may not create"
    /// Its author signed a ciphertext that does not decrypt with the key of its epoch.
    case undecryptable = "does not decrypt"
}

/// An invitation used by more than one device: the first (in entry order) was admitted, the others were not.
public struct ReusedInvitation: Hashable, Sendable {
    /// The invitation's public key.
    public var invitation: [UInt8]
    /// The device admitted with it.
    public var admitted: DeviceID
    /// A device that tried to join with it again and was not admitted.
    public var refused: DeviceID
}

/// A key rotation: who made it, the boxes it carried, and the boxes grant entries added.
public struct EpochGrant: Hashable, Sendable {
    /// The device that rotated (a coordinator, or for a key-only rotation one that was no longer one).
    public var author: DeviceID
    /// The stamp of the rotation.
    public var timestamp: HLCTimestamp
    /// The new key, with the boxes the rotation itself carried.
    public var rotation: KeyRotation
    /// Boxes that grant entries added, per member, in evaluation order; at most one per granter and member.
    public var granted: [DeviceID: [GrantedBox]] = [:]

    public init(author: DeviceID, timestamp: HLCTimestamp, rotation: KeyRotation) {
        self.author = author
        self.timestamp = timestamp
        self.rotation = rotation
    }

    /// Every box sealed to `device`, the rotation's own first, then the grants' in evaluation order. Nobody but
    /// `device` can tell a box of the rotation's key from one of garbage: it tries each (Protocol/membership.md §5).
    public func boxes(for device: DeviceID) -> [[UInt8]] {
        (rotation.grants[device].map { [$0] } ?? []) + (granted[device] ?? []).map(\.box)
    }
}

/// A box a grant entry added to a rotation.
public struct GrantedBox: Hashable, Sendable {
    /// The device that wrote the grant.
    public var granter: DeviceID
    /// The grant entry's seq in the granter's log: whether it was a coordinator's is decided by the final state.
    public var seq: UInt64
    /// The sealed box (`crypto_box_seal` of the 32-byte key).
    public var box: [UInt8]
}

/// The membership of a vault: a deterministic function of the *set* of membership entries (Protocol/membership.md §5).
///
/// Entries are evaluated one by one in (stamp, author, seq) order; each takes effect only if its author had the
/// authority for it at that point of its own log. Convergence follows: replicas with the same entries compute the
/// same state, whatever order they arrived in.
public struct MembershipState: Hashable, Sendable {
    /// The vault.
    public let vaultID: [UInt8]
    /// Every admitted device, revoked ones included.
    public private(set) var members: [DeviceID: Member] = [:]
    /// Invitations issued by coordinators: key → (issuer, role, expiry, used by).
    public private(set) var invitations: [[UInt8]: Invitation] = [:]
    /// Devices refused because their invitation had already admitted another.
    public private(set) var reusedInvitations: [ReusedInvitation] = []
    /// Key rotations in effect, in evaluation order; the last one is the key to write with.
    public private(set) var epochs: [EpochGrant] = []
    /// Rotations written by a member whose revocation had no effect (it was no longer a coordinator, say, having
    /// been demoted concurrently). Their keys were still used: they stay readable, and are re-granted, but never
    /// chosen for writing.
    public private(set) var keyOnlyEpochs: [EpochGrant] = []

    /// Every rotation whose key was handed out, effective or key-only.
    public var allRotations: [EpochGrant] { epochs + keyOnlyEpochs }
    /// Fork evidence dismissed by a coordinator: (device, seq, hash).
    public private(set) var dismissedForks: Set<ForkMark> = []
    /// Entries that had no effect, with the reason, for `verify`.
    public private(set) var void: [VoidEntry] = []
    /// Whether the vault was founded with membership (a valid `found` entry): then `adopt` has no effect.
    public private(set) var founded = false
    /// Purges written by coordinators, in evaluation order.
    public private(set) var purges: [PurgeGrant] = []
    /// For each purged envelope (author ‖ seq ‖ ciphertext hash), the index of the first purge in ``purges`` that
    /// names it. The hash is part of the key: a purge naming the same (author, seq) with another hash (a fork, or a
    /// coordinator's mistake) must not hide a later purge that names the stored envelope.
    private var purgedIndex: [[UInt8]: Int] = [:]

    /// A purge that took effect.
    public struct PurgeGrant: Hashable, Sendable {
        /// The coordinator that wrote it.
        public var author: DeviceID
        /// Its seq in the coordinator's log.
        public var seq: UInt64
        /// When it was written.
        public var timestamp: HLCTimestamp
        /// What it destroys.
        public var purge: Purge
    }

    /// The purge that names the envelope (`author`, `seq`) with ciphertext hash `ciphertextHash`, if any.
    public func purge(naming author: DeviceID, seq: UInt64, ciphertextHash: [UInt8]) -> PurgeGrant? {
        purgedIndex[Self.envelopeKey(author, seq) + ciphertextHash].map { purges[$0] }
    }

    /// Whether a purge that took effect names `envelope` (by author, seq and ciphertext hash). Never a membership
    /// entry: every store must read those, so a purge naming one has no effect on it.
    public func isPurged(_ envelope: Envelope) -> Bool {
        !envelope.isAuthority
            && purge(naming: envelope.header.author, seq: envelope.header.seq, ciphertextHash: envelope.ciphertextHash)
                != nil
    }

    static func envelopeKey(_ author: DeviceID, _ seq: UInt64) -> [UInt8] {
        author.bytes + withUnsafeBytes(of: seq.bigEndian, Array.init)
    }

    /// An issued invitation.
    public struct Invitation: Hashable, Sendable {
        /// The coordinator that issued it.
        public var issuer: DeviceID
        /// The role it grants.
        public var role: Role
        /// Milliseconds since the epoch after which it admits nobody.
        public var expiresAt: UInt64
        /// The device it admitted, once used.
        public var usedBy: DeviceID?
    }

    /// A dismissed fork.
    public struct ForkMark: Hashable, Sendable {
        /// The forked device.
        public var device: DeviceID
        /// The seq at which it forked.
        public var seq: UInt64
        /// The hash of the conflicting envelope.
        public var hash: [UInt8]

        /// Creates a mark.
        public init(device: DeviceID, seq: UInt64, hash: [UInt8]) {
            self.device = device
            self.seq = seq
            self.hash = hash
        }
    }

    /// An entry without effect.
    public struct VoidEntry: Hashable, Sendable {
        /// Its author.
        public var author: DeviceID
        /// Its seq.
        public var seq: UInt64
        /// Why it had no effect.
        public var reason: String
    }

    /// The membership of a vault with no entries.
    public init(vaultID: [UInt8]) { self.vaultID = vaultID }

    /// Evaluates a set of entries. `legacyAuthors` maps each device to the smallest seq of its record changes
    /// (envelopes of key epoch 1 or more) that decrypted with the vault key; an `adopt` entry takes effect only
    /// after such a change of its own author, so only a device that wrote in a first-release vault can adopt it.
    public static func evaluate(
        vaultID: [UInt8], entries: [AuthoredEntry], legacyAuthors: [DeviceID: UInt64] = [:]
    ) -> MembershipState {
        var state = MembershipState(vaultID: vaultID)
        state.founded = entries.contains {
            guard $0.seq == 1, case .found(let salt, _, _) = $0.entry.operation else { return false }
            return MembershipProof.vaultID(founder: $0.author, salt: salt) == vaultID
        }
        let ordered = entries.sorted {
            if $0.entry.timestamp != $1.entry.timestamp { return $0.entry.timestamp < $1.entry.timestamp }
            if $0.author != $1.author { return $0.author < $1.author }
            return $0.seq < $1.seq
        }
        // Stamps are the authors' own claims. An entry that took effect because of where its stamp put it, but whose
        // author the final state says was revoked or demoted before that seq of its log, is excluded and the
        // entries are evaluated again: a revoked device cannot act by backdating. The excluded set only grows, so
        // this ends, and it is a function of the set of entries. A revoke excluded for its authority is first tried
        // again as key-only (its author may still have been an active member, and sealed changes with its key before
        // learning it had no authority); only if that is not entitled either is it excluded for good.
        var excluded: [[UInt8]: Exclusion] = [:]
        while true {
            var state = MembershipState(vaultID: vaultID)
            state.founded = founded(entries, vaultID: vaultID)
            var effective: [AuthoredEntry] = []
            var seen = Set<[UInt8]>()
            for entry in ordered {
                // A forked author may have two entries at one seq; only the first evaluated counts.
                let key = Self.key(entry)
                guard seen.insert(key).inserted else { continue }
                if let exclusion = excluded[key] {
                    if exclusion == .authority, state.keepKeyOnly(entry) {
                        state.void.append(
                            VoidEntry(
                                author: entry.author, seq: entry.seq,
                                reason: "a revocation written after its author lost the right; its key stays readable"))
                        effective.append(entry)
                    } else {
                        state.void.append(
                            VoidEntry(
                                author: entry.author, seq: entry.seq, reason: "written after its author lost the right")
                        )
                    }
                    continue
                }
                let keyOnlyBefore = state.keyOnlyEpochs.count
                if let reason = state.apply(entry, legacyAuthors: legacyAuthors) {
                    state.void.append(VoidEntry(author: entry.author, seq: entry.seq, reason: reason))
                    // Kept key-only, or a revoke whose revocation took effect although its rotation did not (its
                    // epoch was in use): both had an effect, so both face the final-state check.
                    if state.keyOnlyEpochs.count > keyOnlyBefore || state.revoked(by: entry) {
                        effective.append(entry)
                    }
                } else {
                    effective.append(entry)
                }
            }
            state.settleRecoveries()
            let late = effective.filter { !state.wasEntitled($0) }
            if late.isEmpty { return state }
            for entry in late {
                let key = Self.key(entry)
                // A revoke that took effect as a revocation or a rotation falls back to key-only; one that was
                // already key-only (or any other entry) is excluded for good. Each key only moves up, so this ends.
                let keyOnlyCandidate: Bool
                if case .revoke = entry.entry.operation, excluded[key] == nil {
                    keyOnlyCandidate = state.epochs.contains {
                        $0.author == entry.author && $0.timestamp == entry.entry.timestamp
                    }
                } else {
                    keyOnlyCandidate = false
                }
                excluded[key] = keyOnlyCandidate ? .authority : .all
            }
        }
    }

    /// How far an entry is excluded from a pass.
    enum Exclusion: Equatable {
        /// Its author had no authority for it: a revoke's rotation may still be kept key-only.
        case authority
        /// No effect at all.
        case all
    }

    static func key(_ entry: AuthoredEntry) -> [UInt8] {
        entry.author.bytes + withUnsafeBytes(of: entry.seq.bigEndian, Array.init)
    }

    static func founded(_ entries: [AuthoredEntry], vaultID: [UInt8]) -> Bool {
        entries.contains {
            guard $0.seq == 1, case .found(let salt, _, _) = $0.entry.operation else { return false }
            return MembershipProof.vaultID(founder: $0.author, salt: salt) == vaultID
        }
    }

    /// A recovered identity shares its previous identity's revocation, whenever that was written, and is never
    /// more than its previous identity is now (a reader's recovery is a reader): a device cannot escape a
    /// revocation or a demotion by recovering with a stamp from before it.
    mutating func settleRecoveries() {
        var changed = true
        while changed {
            changed = false
            for (device, m) in members {
                guard let previous = m.recoveredFrom, let old = members[previous] else { continue }
                if old.isRevoked && !m.isRevoked {
                    members[device]!.revokedAfter = m.since
                    members[device]!.revokedBy = old.revokedBy
                    members[device]!.revokedAt = old.revokedAt
                    changed = true
                }
                if old.currentRole == .reader && m.currentRole != .reader {
                    members[device]!.roles = [.init(after: 0, role: .reader)]
                    changed = true
                }
            }
        }
    }

    /// Whether the final state says the entry's author had the right to write it at that seq of its log.
    func wasEntitled(_ authored: AuthoredEntry) -> Bool {
        switch authored.entry.operation {
        case .found, .adopt, .join, .recover:
            return true  // admissions: judged by their proofs, at their author's first entry
        case .rename:
            return members[authored.author]?.isActive(at: authored.seq) == true
        case .revoke(let device, _, _):
            // A revoke that took effect needed a coordinator; one kept only for its key needed an active member.
            let revoked = members[device].map {
                $0.revokedBy == authored.author && $0.revokedAt == authored.entry.timestamp
            }
            let rotated = epochs.contains {
                $0.author == authored.author && $0.timestamp == authored.entry.timestamp
            }
            if revoked == true || rotated { return isCoordinator(authored.author, at: authored.seq) }
            return members[authored.author]?.isActive(at: authored.seq) == true
        case .grant(let epoch, _):
            return mayGrant(authored.author, at: authored.seq, epoch: epoch)
        case .invite, .setRole, .dismissFork, .purge:
            return isCoordinator(authored.author, at: authored.seq)
        }
    }

    /// Whether `device` may grant the key of `epoch` at its change `seq`: an active coordinator may grant any
    /// rotation's key; any active member may grant a key-only rotation's key, which a member made and no
    /// coordinator may hold (a coordinator's revocation of a coordinator, undone by a concurrent demotion, leaves
    /// the key with members only). A grant gives an active member a key it is entitled to, nothing more.
    public func mayGrant(_ device: DeviceID, at seq: UInt64, epoch: UInt32) -> Bool {
        if isCoordinator(device, at: seq) { return true }
        return members[device]?.isActive(at: seq) == true && keyOnlyEpochs.contains { $0.rotation.epoch == epoch }
    }

    /// Whether `authored` is a revoke whose revocation is the one in force for its target.
    func revoked(by authored: AuthoredEntry) -> Bool {
        guard case .revoke(let device, _, _) = authored.entry.operation, let m = members[device] else { return false }
        return m.revokedBy == authored.author && m.revokedAt == authored.entry.timestamp
    }

    /// Keeps the rotation of a revoke that has no effect as key-only, when its author was an active member at that
    /// seq and its epoch is not in use; returns whether it did.
    mutating func keepKeyOnly(_ authored: AuthoredEntry) -> Bool {
        guard case .revoke(_, _, let rotation) = authored.entry.operation,
            let m = members[authored.author], m.isActive(at: authored.seq),
            !allRotations.contains(where: { $0.rotation.epoch == rotation.epoch })
        else { return false }
        keyOnlyEpochs.append(
            EpochGrant(author: authored.author, timestamp: authored.entry.timestamp, rotation: rotation))
        return true
    }

    /// Whether `device` holds a box of `grant`'s key from an authority: the rotation's own if the rotation is in
    /// effect (a coordinator made it), or one granted by a device that was an active coordinator at that grant in
    /// the final state. A box a member granted never counts, nor a key-only rotation's own (its author was no
    /// coordinator): either may be garbage, and must not stop a coordinator from granting the real key.
    public func hasAuthorityBox(_ grant: EpochGrant, for device: DeviceID) -> Bool {
        if grant.rotation.grants[device] != nil, epochs.contains(where: { $0.rotation.epoch == grant.rotation.epoch }) {
            return true
        }
        return grant.granted[device]?.contains { isCoordinator($0.granter, at: $0.seq) } == true
    }

    /// Whether `device` was an active coordinator for its change `seq`.
    public func isCoordinator(_ device: DeviceID, at seq: UInt64) -> Bool {
        guard let m = members[device] else { return false }
        return m.isActive(at: seq) && m.role(at: seq) == .coordinator
    }

    /// Applies one entry; returns why it had no effect, or nil.
    mutating func apply(_ authored: AuthoredEntry, legacyAuthors: [DeviceID: UInt64]) -> String? {
        let author = authored.author
        let seq = authored.seq
        let stamp = authored.entry.timestamp
        switch authored.entry.operation {
        case .found(let salt, let agreementKey, let name):
            guard seq == 1, MembershipProof.vaultID(founder: author, salt: salt) == vaultID else {
                return "a found entry by a device that did not create the vault"
            }
            guard members[author] == nil else { return "the founder is already a member" }
            members[author] = Member(
                device: author, agreementKey: agreementKey, name: name, admittedBy: nil, admittedAt: stamp,
                invitation: nil, since: 0, roles: [.init(after: 0, role: .coordinator)], legacyHead: 0)
        case .adopt(let coordinator, let listed, let agreementKey, let name):
            guard !founded else { return "an adopt entry in a vault that was founded with membership" }
            guard let first = legacyAuthors[author], first < seq else {
                return "an adopt entry by a device that never wrote in the first-release vault"
            }
            var all = listed
            if !all.contains(where: { $0.device == author }) { all.append(LegacyMember(device: author, head: seq - 1)) }
            for legacy in all {
                let role: Role = legacy.device == coordinator ? .coordinator : .member
                if var m = members[legacy.device] {
                    guard m.since == 0 else { continue }  // admitted otherwise: an adopt does not change it
                    m.legacyHead = max(m.legacyHead, legacy.head)
                    if role == .coordinator && m.roles.count == 1 { m.roles[0].role = .coordinator }
                    members[legacy.device] = m
                } else {
                    members[legacy.device] = Member(
                        device: legacy.device, agreementKey: nil, name: nil, admittedBy: nil, admittedAt: stamp,
                        invitation: nil, since: 0, roles: [.init(after: 0, role: role)], legacyHead: legacy.head)
                }
            }
            if members[author]!.since == 0 {
                members[author]!.agreementKey = agreementKey
                members[author]!.name = name
                members[author]!.legacyHead = max(members[author]!.legacyHead, seq - 1)
            }
        case .invite(let key, let role, let expiresAt):
            guard isCoordinator(author, at: seq) else { return "an invitation by a device that is not a coordinator" }
            guard invitations[key] == nil else { return "an invitation key issued twice" }
            invitations[key] = Invitation(issuer: author, role: role, expiresAt: expiresAt, usedBy: nil)
        case .join(let invitation, let proof, let agreementKey, let name):
            guard seq == 1, members[author] == nil else { return "a join that is not its device's first entry" }
            guard var issued = invitations[invitation] else { return "a join with an invitation nobody issued" }
            let message = MembershipProof.joinMessage(vaultID: vaultID, device: author, agreementKey: agreementKey)
            guard SigningKeyPair.verify(proof, of: message, publicKey: invitation) else {
                return "a join whose invitation proof does not verify"
            }
            guard stamp.wallMillis <= issued.expiresAt else { return "a join with an expired invitation" }
            if let used = issued.usedBy {
                reusedInvitations.append(ReusedInvitation(invitation: invitation, admitted: used, refused: author))
                return "a join with an invitation that had already admitted another device"
            }
            issued.usedBy = author
            invitations[invitation] = issued
            members[author] = Member(
                device: author, agreementKey: agreementKey, name: name, admittedBy: issued.issuer, admittedAt: stamp,
                invitation: invitation, since: seq, roles: [.init(after: 0, role: issued.role)], legacyHead: 0)
        case .setRole(let device, let role, let after):
            guard isCoordinator(author, at: seq) else { return "a role change by a device that is not a coordinator" }
            guard var m = members[device] else { return "a role change for a device that is not a member" }
            guard !m.isRevoked else { return "a role change for a revoked device" }
            m.roles.append(.init(after: max(after, m.since), role: role))
            members[device] = m
        case .revoke(let device, let after, let rotation):
            guard isCoordinator(author, at: seq) else {
                // Its author sealed changes with this key before it learned it had no authority: keep it readable.
                _ = keepKeyOnly(authored)
                return "a revocation by a device that is not a coordinator"
            }
            guard var m = members[device] else {
                // Its author believed the device a member (its join was later found void, say) and may have sealed
                // changes with the new key already: keep it readable.
                _ = keepKeyOnly(authored)
                return "a revocation of a device that is not a member"
            }
            if !m.isRevoked {
                m.revokedAfter = max(after, m.since)
                m.revokedBy = author
                m.revokedAt = stamp
                members[device] = m
            }
            guard !epochs.contains(where: { $0.rotation.epoch == rotation.epoch }) else {
                return "a key rotation to an epoch already in use"
            }
            // A key-only rotation that took this number first gives it up, whatever its stamp (its author's claim):
            // a member cannot cancel a coordinator's rotation by backdating its own to the same epoch.
            keyOnlyEpochs.removeAll { $0.rotation.epoch == rotation.epoch }
            epochs.append(EpochGrant(author: author, timestamp: stamp, rotation: rotation))
        case .rename(let name):
            guard members[author]?.isActive(at: seq) == true else { return "a rename by a device that is not a member" }
            members[author]!.name = name
        case .dismissFork(let device, let forkSeq, let hash):
            guard isCoordinator(author, at: seq) else {
                return "a fork dismissal by a device that is not a coordinator"
            }
            dismissedForks.insert(ForkMark(device: device, seq: forkSeq, hash: hash))
        case .purge(let purge):
            guard isCoordinator(author, at: seq) else { return "a purge by a device that is not a coordinator" }
            // Membership entries are never purged: they are the vault's authority, which every store must read.
            let index = purges.count
            purges.append(PurgeGrant(author: author, seq: seq, timestamp: stamp, purge: purge))
            for target in purge.targets {
                let key = Self.envelopeKey(target.author, target.seq) + target.ciphertextHash
                if purgedIndex[key] == nil { purgedIndex[key] = index }
            }
        case .recover(let previous, let proof, let agreementKey, let name):
            guard seq == 1, members[author] == nil else { return "a recovery that is not its device's first entry" }
            guard let old = members[previous], !old.isRevoked else {
                return "a recovery from a device that is not an active member"
            }
            let message = MembershipProof.recoverMessage(vaultID: vaultID, device: author, agreementKey: agreementKey)
            guard SigningKeyPair.verify(proof, of: message, publicKey: previous.bytes) else {
                return "a recovery whose proof does not verify"
            }
            // Never a coordinator by itself: a coordinator decides whether the new identity gets that role.
            let role: Role = old.currentRole == .reader ? .reader : .member
            members[author] = Member(
                device: author, agreementKey: agreementKey, name: name, admittedBy: previous, admittedAt: stamp,
                invitation: nil, since: seq, roles: [.init(after: 0, role: role)], legacyHead: 0,
                recoveredFrom: previous)
        case .grant(let epoch, let grants):
            guard mayGrant(author, at: seq, epoch: epoch) else {
                return "a key grant by a device that is not a coordinator"
            }
            func add(_ grant: inout EpochGrant) {
                for (device, box) in grants {
                    guard let m = members[device], !m.isRevoked else { continue }
                    var boxes = grant.granted[device] ?? []
                    guard !boxes.contains(where: { $0.granter == author }) else { continue }
                    boxes.append(GrantedBox(granter: author, seq: seq, box: box))
                    grant.granted[device] = boxes
                }
            }
            if let i = epochs.firstIndex(where: { $0.rotation.epoch == epoch }) {
                add(&epochs[i])
            } else if let i = keyOnlyEpochs.firstIndex(where: { $0.rotation.epoch == epoch }) {
                add(&keyOnlyEpochs[i])
            } else {
                return "a key grant for an epoch no rotation made"
            }
        }
        return nil
    }

    // MARK: Questions the store asks

    /// Whether the record change (`author`, `seq`) is applied, or why it is held back. `creates` says whether the
    /// change creates (or seals) `record`.
    public func verdict(author: DeviceID, seq: UInt64, record: RecordID, creates: Bool) -> HeldReason? {
        guard let m = members[author] else { return .notMember }
        if seq <= m.since { return .notMember }
        if let cut = m.revokedAfter, seq > cut { return .revoked }
        if !m.role(at: seq).canWrite { return .reader }
        if creates && record != RecordID.derived(author: author, seq: seq) && seq > m.legacyHead {
            return .notCreator
        }
        return nil
    }

    /// Whether `device` is known to the membership log at all (admitted, revoked or not).
    public func isKnown(_ device: DeviceID) -> Bool { members[device] != nil }

    /// Whether the vault has any membership yet (false for a first-release vault before its upgrade).
    public var isEstablished: Bool { !members.isEmpty }

    /// The key rotation to write with: the last effective one, or nil for the original epoch.
    public var currentRotation: KeyRotation? { epochs.last?.rotation }

    /// The active members that can receive a new key, sorted.
    public var activeMembers: [Member] {
        members.values.filter { !$0.isRevoked }.sorted { $0.device < $1.device }
    }

    /// A digest of everything that decides which changes are applied: admission, role windows, revocations,
    /// legacy heads. When it changes, the projection is rebuilt.
    public var authorizationDigest: [UInt8] {
        var w = ByteWriter(capacity: 128 * max(members.count, 1))
        for m in members.values.sorted(by: { $0.device < $1.device }) {
            w.write(raw: m.device.bytes)
            w.write(varint: m.since)
            w.write(varint: m.legacyHead)
            w.write(varint: m.revokedAfter.map { $0 &+ 1 } ?? 0)
            w.write(varint: UInt64(m.roles.count))
            for r in m.roles {
                w.write(varint: r.after)
                w.write(r.role.rawValue)
            }
        }
        // Purges change what the projection holds: a new one rebuilds it.
        for grant in purges {
            w.write(raw: grant.author.bytes)
            w.write(varint: grant.seq)
        }
        return BLAKE2b.hash(w.bytes)
    }
}
