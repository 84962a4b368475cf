import AmanatCore
import AmanatCrypto
import Foundation
import GRDB

/// One device as `amanat members` shows it.
public struct MemberInfo: Sendable, Equatable {
    /// The device.
    public var device: DeviceID
    /// Its name, if this device can read it.
    public var name: String?
    /// Its current role.
    public var role: Role
    /// Whether it is revoked.
    public var revoked: Bool
    /// Who admitted it (nil: founder, or adopted from a first-release vault).
    public var admittedBy: DeviceID?
    /// When, by the admitting entry's stamp.
    public var admittedAt: HLCTimestamp
    /// When it was revoked.
    public var revokedAt: HLCTimestamp?
    /// Its X25519 agreement key (its bundle recipient), once it has one.
    public var agreementKey: [UInt8]?
    /// Whether it was a device of a first-release vault, admitted by the upgrade (`adopt`).
    public var adopted: Bool
}

/// What an invitation hands to the new device, before it is written to a file (Protocol/invitation.md).
public struct InvitationGrant: Sendable {
    /// The vault.
    public var vaultID: [UInt8]
    /// Every vault key the inviter holds.
    public var keys: [VaultKey]
    /// The inviting coordinator.
    public var inviter: DeviceID
    /// Its name.
    public var inviterName: String
    /// The role the invitation grants.
    public var role: Role
    /// Milliseconds since the epoch after which the invitation admits nobody.
    public var expiresAt: UInt64
    /// The invitation's signing key: its public half is in the inviter's `invite` entry.
    public var secret: SigningKeyPair
    /// The stamp of the `invite` entry, so the new device's clock starts after it.
    public var stamp: HLCTimestamp
    /// The inviter's membership entries (authority envelopes), so the new device knows it is a member before
    /// its first sync.
    public var authority: [Envelope]
}

extension Vault {
    // MARK: Keys

    /// The vault key of `epoch`: from the keyring, or from a rotation granted to this device.
    public func key(epoch: UInt32) -> VaultKey? {
        keyring.key(epoch: epoch) ?? rotatedKeys[epoch]
    }

    /// Every vault key this device holds, by epoch.
    public var allKeys: [VaultKey] {
        (keyring.keys + rotatedKeys.values).sorted { $0.epoch < $1.epoch }
    }

    /// The key new changes are sealed with: that of the last effective rotation this device holds (granted to it,
    /// or carried by its invitation; Protocol/membership.md §8), else the original one. While the newest rotation's
    /// grant is on its way, an older rotation's key: never the original, which every device revoked since holds.
    var writeKey: VaultKey {
        for grant in membership.epochs.reversed() {
            if let key = key(epoch: grant.rotation.epoch) { return key }
        }
        return keyring.key(epoch: 1) ?? keyring.currentKey
    }

    // MARK: Loading the membership log

    /// Every membership entry this vault knows: from stored chains, from kept-apart envelopes, and from an
    /// invitation (until their chains arrive).
    func loadEntries(_ db: Database) throws -> [AuthoredEntry] {
        var bodies: [Data] = []
        bodies += try Data.fetchAll(
            db,
            sql: "SELECT e.body FROM authority a JOIN envelope e ON e.author = a.author AND e.seq = a.seq")
        bodies += try Data.fetchAll(db, sql: "SELECT body FROM held")
        bodies += try Data.fetchAll(
            db,
            sql: """
                SELECT p.body FROM pending_authority p
                WHERE NOT EXISTS (SELECT 1 FROM envelope e WHERE e.author = p.author AND e.seq = p.seq)
                """)
        var entries: [AuthoredEntry] = []
        for body in bodies {
            guard let envelope = try? Envelope(decoding: Array(body)) else {
                throw StoreError(
                    .damaged, "The vault is damaged: a stored envelope does not decode. Run `amanat verify`.")
            }
            // An entry that does not decode (its author's garbage; its signature and chain are sound) has no effect.
            guard envelope.isAuthority, let entry = try? envelope.openEntry() else { continue }
            entries.append(entry)
        }
        return entries
    }

    /// For each device, the smallest seq of its record changes (stored or kept apart): who wrote in a
    /// first-release vault, for `adopt` entries.
    func legacyAuthors(_ db: Database) throws -> [DeviceID: UInt64] {
        // A first-release vault only ever had key epoch 1 (bytes 94–97 of an envelope, 1-based); the evidence
        // must decrypt with this vault's key, so nobody who lacks it can claim to have written there.
        guard let key = key(epoch: 1) else { return [:] }
        var result: [DeviceID: UInt64] = [:]
        for table in ["envelope", "held"] {
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT t.author, MIN(t.seq) AS seq FROM \(table) t
                    WHERE substr(t.body, 94, 4) = x'00000001' GROUP BY t.author
                    """)
            for row in rows {
                guard let data = row["author"] as Data?, let seq = row["seq"] as Int64?, seq > 0,
                    let author = try? DeviceID(Array(data)),
                    let body = try Data.fetchOne(
                        db, sql: "SELECT body FROM \(table) WHERE author = ? AND seq = ?", arguments: [data, seq]),
                    let envelope = try? Envelope(decoding: Array(body)), (try? envelope.open(with: key)) != nil
                else { continue }
                result[author] = min(result[author] ?? UInt64(seq), UInt64(seq))
            }
        }
        return result
    }

    /// Recomputes the membership from the database and opens any vault keys granted to this device.
    func reloadMembership(_ db: Database) throws {
        membership = try evaluateMembership(db)
        openGrantedKeys()
    }

    /// The membership the log would have with `adding` stored too: entries in the log, kept apart or pending,
    /// and the batch's own (an entry that does not decode has no effect; it stays as its author's evidence).
    func evaluateMembership(_ db: Database, adding: [Envelope] = []) throws -> MembershipState {
        var entries = try loadEntries(db)
        for envelope in adding where envelope.isAuthority {
            if let entry = try? envelope.openEntry() { entries.append(entry) }
        }
        let adopts = entries.contains {
            if case .adopt = $0.entry.operation { return true }
            return false
        }
        var legacy: [DeviceID: UInt64] = [:]
        if adopts {
            legacy = try legacyAuthors(db)
            // The same evidence as `legacyAuthors`: a change of key epoch 1 that decrypts.
            if let key = key(epoch: 1) {
                for envelope in adding where envelope.header.keyEpoch == 1 && (try? envelope.open(with: key)) != nil {
                    let author = envelope.header.author
                    legacy[author] = min(legacy[author] ?? envelope.header.seq, envelope.header.seq)
                }
            }
        }
        return MembershipState.evaluate(vaultID: vaultID, entries: entries, legacyAuthors: legacy)
    }

    /// What the projection depends on besides the log: the membership's authorization and the epochs whose keys
    /// this device holds. When it changes, the projection is rebuilt.
    var projectionDigest: [UInt8] {
        var bytes = membership.authorizationDigest
        for key in allKeys { bytes += withUnsafeBytes(of: key.epoch.bigEndian, Array.init) }
        return BLAKE2b.hash(bytes)
    }

    /// Opens the rotated vault keys sealed to this device's agreement key.
    func openGrantedKeys() {
        guard let agreement = keyring.agreement else { return }
        for grant in membership.allRotations where rotatedKeys[grant.rotation.epoch] == nil {
            for box in grant.boxes(for: deviceID) {
                guard let root = try? SealedBox.open(box, with: agreement), root.count == 32 else { continue }
                // The rotation names the relay key its vault key derives: a box holding any other key (a hostile
                // granter's) is never used, so honest changes are not judged by a wrong key; the next box is tried.
                let key = VaultKey(epoch: grant.rotation.epoch, root: root)
                guard key.relaySigningKey().publicKey == grant.rotation.relayKey else { continue }
                rotatedKeys[grant.rotation.epoch] = key
                break
            }
        }
    }

    /// The authorization digest the projection was last built with.
    func storedAuthorization(_ db: Database) throws -> [UInt8]? {
        try localValue(db, "authorization", what: "the membership digest")
    }

    func saveAuthorization(_ db: Database) throws {
        try saveLocalValue(db, "authorization", projectionDigest)
    }

    /// At open: upgrades a first-release keyring and vault, loads the membership, and rebuilds the projection if
    /// the membership changed what is applied since it was last built.
    func prepare(passphrase: SecureBytes) throws {
        if keyring.agreement == nil {
            // First-release keyring: give this device its agreement key (a key of its own, not derived).
            var upgraded = keyring.withAgreement(.generate())
            try upgraded.rewrite(to: Self.keyringURL(directory), passphrase: passphrase)
            keyring = upgraded
        }
        try mapErrors {
            try database.write { db in
                try reloadMembership(db)
                try adoptIfFirstRelease(db)
                try settle(db)
            }
        }
    }

    /// A vault made before membership existed gets an `adopt` entry from each of its devices that wrote in it:
    /// the earliest writer is named coordinator, every device found in the log a member (Protocol/membership.md §9).
    func adoptIfFirstRelease(_ db: Database) throws {
        let me = deviceID
        let mine = try head(db, author: me)
        guard mine.seq > 0, !membership.founded else { return }
        let legacy = try legacyAuthors(db)
        guard legacy[me] != nil else { return }
        if let member = membership.members[me], member.agreementKey != nil { return }
        let entries = try loadEntries(db)
        if entries.contains(where: { $0.author == me }) { return }
        // Devices in the log and their heads; the coordinator is the device whose first change is earliest.
        var listed: [LegacyMember] = []
        var earliest: (HLCTimestamp, DeviceID)?
        for (author, head) in try Self.heads(db, table: "envelope") {
            listed.append(LegacyMember(device: author, head: head.seq))
            guard let first = legacy[author], let stamp = try firstStamp(db, author: author, seq: first) else {
                continue
            }
            if earliest.map({ (stamp, author) < ($0.0, $0.1) }) ?? true { earliest = (stamp, author) }
        }
        guard let agreement = keyring.agreement else { return }
        try appendEntry(
            db,
            .adopt(
                coordinator: earliest?.1 ?? me, members: listed, agreementKey: agreement.publicKey,
                name: try Self.sealName(keyring.deviceName, keyring: keyring)))
        try reloadMembership(db)
    }

    private func firstStamp(_ db: Database, author: DeviceID, seq: UInt64) throws -> HLCTimestamp? {
        guard
            let body = try Data.fetchOne(
                db, sql: "SELECT body FROM envelope WHERE author = ? AND seq = ?",
                arguments: [Data(author.bytes), Int64(seq)]),
            let envelope = try? Envelope(decoding: Array(body)),
            let key = key(epoch: envelope.header.keyEpoch),
            let change = try? envelope.open(with: key)
        else { return nil }
        return change.timestamp
    }

    // MARK: Applying the log under the membership rules

    /// Moves kept-apart envelopes of devices that are now members into the log (their chains were checked when
    /// they arrived). Returns whether anything moved.
    @discardableResult
    func promoteHeld(_ db: Database) throws -> Bool {
        var moved = false
        for data in try Data.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT author FROM held")) {
            guard let author = try? DeviceID(Array(data)), membership.isKnown(author) else { continue }
            if try promoteHeld(db, author: author) { moved = true }
        }
        return moved
    }

    /// Moves `author`'s kept-apart chain into the log, as far as it continues the log's head.
    @discardableResult
    func promoteHeld(_ db: Database, author: DeviceID) throws -> Bool {
        let data = Data(author.bytes)
        let rows = try Row.fetchAll(
            db, sql: "SELECT seq, hash, body FROM held WHERE author = ? ORDER BY seq", arguments: [data])
        var head = try head(db, author: author)
        var moved = false
        for row in rows {
            let seq = UInt64(row["seq"] as Int64)
            guard seq == head.seq + 1, let envelope = try? Envelope(decoding: Array(row["body"] as Data)),
                envelope.header.previousHash == head.hash
            else { break }
            try insertEnvelope(db, envelope)
            head = ChainHead(seq: seq, hash: envelope.hash)
            moved = true
        }
        try db.execute(sql: "DELETE FROM held WHERE author = ?", arguments: [data])
        return moved
    }

    /// After the membership was reloaded: moves the chains of newly admitted devices into the log, and rebuilds the
    /// projection if what decides it changed. Returns whether it rebuilt.
    @discardableResult
    func settle(_ db: Database) throws -> Bool {
        if try promoteHeld(db) { try reloadMembership(db) }
        if try grantMissingKeys(db) { try reloadMembership(db) }
        guard try storedAuthorization(db) != projectionDigest || futureStampArrived(db) else { return false }
        try rebuildProjection(db)
        try saveAuthorization(db)
        return true
    }

    /// Replays every stored record change under the current membership: the projection is rebuilt from scratch.
    func rebuildProjection(_ db: Database) throws {
        try db.execute(sql: "DELETE FROM record")
        try db.execute(sql: "DELETE FROM local WHERE key = 'future'")
        var states: [RecordID: RecordState] = [:]
        var refusedCreates: [DeviceID: Int] = [:]
        let purged = purgedRecordIDs()
        let cursor = try Row.fetchCursor(
            db,
            sql: """
                SELECT e.body FROM envelope e
                WHERE NOT EXISTS (SELECT 1 FROM authority a WHERE a.author = e.author AND a.seq = e.seq)
                """)
        while let row = try cursor.next() {
            guard let envelope = try? Envelope(decoding: Array(row["body"] as Data)) else {
                throw StoreError(
                    .damaged, "The vault is damaged: a stored envelope does not decode. Run `amanat verify`.")
            }
            // A purged change has no content left to apply.
            guard !envelope.isPurged, let key = key(epoch: envelope.header.keyEpoch) else { continue }
            guard let authored = try? envelope.openAuthored(with: key) else {
                throw StoreError(
                    .damaged, "The vault is damaged: a stored change does not decrypt. Run `amanat verify`.")
            }
            guard !purged.contains(authored.change.record) else { continue }
            if let reason = heldReason(authored) {
                if reason == .notCreator { refusedCreates[authored.author, default: 0] += 1 }
                continue
            }
            let id = authored.change.record
            states[id, default: RecordState(id: id)].apply(authored)
        }
        for state in states.values { try saveState(db, state) }
        try saveRefusedCreates(db, refusedCreates)
    }

    /// Per device, how many of its changes are held back for creating a record they may not create: known only
    /// by decrypting, so counted when changes are applied and kept (sealed) for `status`.
    func loadRefusedCreates(_ db: Database) throws -> [DeviceID: Int] {
        guard let value = try localValue(db, "refused_creates", what: "a counter") else { return [:] }
        return try StoredRow.decodeRefusedCreates(value)
    }

    func saveRefusedCreates(_ db: Database, _ counts: [DeviceID: Int]) throws {
        var w = ByteWriter()
        w.write(varint: UInt64(counts.count))
        for (device, count) in counts.sorted(by: { $0.key < $1.key }) {
            w.write(raw: device.bytes)
            w.write(varint: UInt64(count))
        }
        try saveLocalValue(db, "refused_creates", w.bytes)
    }

    /// Why a record change is held back under the current membership, or nil if it is applied.
    func heldReason(_ authored: AuthoredChange) -> HeldReason? {
        let creates = authored.change.operations.contains {
            switch $0 {
            case .create, .seal, .origin: true
            default: false
            }
        }
        return membership.verdict(
            author: authored.author, seq: authored.seq, record: authored.change.record, creates: creates)
    }

    /// A coordinator seals every rotated key it holds to each active member that holds no box of it from an
    /// authority (one whose join arrived after the rotation, a member a concurrent rotation left out, a recovered
    /// identity, one that only members or a key-only rotation granted), so nobody is locked out by being away. A
    /// member seals a key-only rotation's key to the active members that hold no box of it at all, and to the active
    /// coordinators while none holds it from an authority; a coordinator that opens it then grants everyone, so
    /// members' grants stay bounded by the coordinators and the members left without a box (in a vault with no active
    /// coordinator, members grant each other). Nobody but a box's recipient can tell it from garbage, so a member's
    /// box never stops a grant (Protocol/membership.md §5). Revoked devices are never granted. Returns whether it
    /// wrote an entry.
    func grantMissingKeys(_ db: Database) throws -> Bool {
        guard let me = membership.members[deviceID], !me.isRevoked else { return false }
        let coordinator = me.currentRole == .coordinator
        let keyOnly = Set(membership.keyOnlyEpochs.map(\.rotation.epoch))
        let coordinators = membership.activeMembers.filter { $0.currentRole == .coordinator }
        var mine: Set<[UInt8]>?
        var wrote = false
        for grant in membership.allRotations {
            let rotation = grant.rotation
            let recipients: [Member]
            if coordinator {
                recipients = membership.activeMembers
            } else {
                guard keyOnly.contains(rotation.epoch) else { continue }
                let others = membership.activeMembers.filter { $0.device != deviceID }
                // A member with no box at all (a newcomer, one the rotation left out) gets the key from any member
                // that holds it: the coordinators may be away for good. A coordinator gets it from members only
                // while none holds it from an authority; one that opens it grants everyone.
                let noCoordinatorHoldsIt = !coordinators.contains { membership.hasAuthorityBox(grant, for: $0.device) }
                recipients =
                    coordinators.isEmpty
                    ? others
                    : others.filter { m in
                        grant.boxes(for: m.device).isEmpty || (noCoordinatorHoldsIt && m.currentRole == .coordinator)
                    }
            }
            let candidates = recipients.filter { !membership.hasAuthorityBox(grant, for: $0.device) }
            guard !candidates.isEmpty else { continue }
            // Only a key that is the rotation's (it derives the relay key the rotation names) is handed on.
            guard let key = key(epoch: rotation.epoch), key.relaySigningKey().publicKey == rotation.relayKey else {
                continue
            }
            var grants: [DeviceID: [UInt8]] = [:]
            let raw = key.root.copyBytes()
            // Never the same (epoch, member) twice from this device: a grant of ours that had no effect (it sorted
            // before a rotation stamped in the future, say) would otherwise be written again at every settle. Read
            // once per call, and only when some member lacks a box.
            if mine == nil { mine = try grantedByMe(db) }
            for m in candidates where mine?.contains(Self.grantKey(rotation.epoch, m.device)) != true {
                // A key no box can be sealed to (a hostile all-zero key) is skipped, never a reason to fail.
                guard let agreement = m.agreementKey, let box = try? SealedBox.seal(raw, to: agreement) else {
                    continue
                }
                grants[m.device] = box
            }
            guard !grants.isEmpty else { continue }
            try appendEntry(db, .grant(epoch: rotation.epoch, grants: grants))
            wrote = true
        }
        return wrote
    }

    /// The (epoch, member) pairs this device's own grant entries name, whether or not they took effect.
    func grantedByMe(_ db: Database) throws -> Set<[UInt8]> {
        var pairs: Set<[UInt8]> = []
        for entry in try loadEntries(db) where entry.author == deviceID {
            guard case .grant(let epoch, let grants) = entry.entry.operation else { continue }
            for device in grants.keys { pairs.insert(Self.grantKey(epoch, device)) }
        }
        return pairs
    }

    static func grantKey(_ epoch: UInt32, _ device: DeviceID) -> [UInt8] {
        withUnsafeBytes(of: epoch.bigEndian, Array.init) + device.bytes
    }

    // MARK: Writing membership entries

    /// Appends a membership entry to this device's log inside an open transaction.
    func appendEntry(_ db: Database, _ operation: MembershipOperation) throws {
        var writer = try LocalWriter(vault: self, db: db)
        try writer.append(operation)
        try writer.finish()
    }

    /// Appends an entry in its own transaction and reloads the membership (rebuilding the projection if needed).
    func writeEntry(_ operation: @escaping (Database) throws -> MembershipOperation) throws {
        try mapErrors {
            try database.write { db in
                try appendEntry(db, try operation(db))
                try reloadMembership(db)
                try settle(db)
            }
        }
    }

    func requireCoordinator(_ action: String) throws {
        guard let me = membership.members[deviceID], !me.isRevoked, me.currentRole == .coordinator else {
            throw StoreError(.notAllowed, "Only a coordinator can \(action); this device is \(describeSelf()).")
        }
    }

    func describeSelf() -> String {
        guard let me = membership.members[deviceID] else { return "not a member of this vault" }
        if me.isRevoked { return "revoked" }
        return "a \(me.currentRole)"
    }

    /// The member whose id is `text` or starts with it (at least 6 hex digits), or whose name is `text`.
    public func resolveMember(_ text: String) throws -> Member {
        let lower = text.lowercased()
        let byName = membership.members.values.filter { memberName($0.device) == text }
        if byName.count == 1 { return byName[0] }
        guard lower.count >= 6, lower.allSatisfy(\.isHexDigit) else {
            throw StoreError(
                .unknownID,
                byName.count > 1
                    ? "Several devices are named \"\(text)\"; give the device id instead."
                    : "No device of this vault is named \"\(text)\"; give a name or at least 6 hex digits of an id.")
        }
        let matches = membership.members.values.filter { $0.device.hex.hasPrefix(lower) }
        switch matches.count {
        case 0: throw StoreError(.unknownID, "No device of this vault has the id \(text).")
        case 1: return matches[0]
        default: throw StoreError(.ambiguousID, "The id \(text) matches \(matches.count) devices; give more digits.")
        }
    }

    /// The name of `device`, if this device can read it.
    public func memberName(_ device: DeviceID) -> String? {
        guard let sealed = membership.members[device]?.name, let key = key(epoch: sealed.epoch) else { return nil }
        return sealed.open(key: key, vaultID: vaultID, device: device)
    }

    /// "name (abcdef123456)" or the short id alone.
    public func deviceLabel(_ device: DeviceID) -> String {
        let short = String(device.hex.prefix(12))
        guard let name = memberName(device), !name.isEmpty else { return short }
        return "\(name) (\(short))"
    }

    /// Every device of the vault, by name then id.
    public func members() -> [MemberInfo] {
        membership.members.values.map { m in
            MemberInfo(
                device: m.device, name: memberName(m.device), role: m.currentRole, revoked: m.isRevoked,
                admittedBy: m.admittedBy, admittedAt: m.admittedAt, revokedAt: m.revokedAt,
                agreementKey: m.agreementKey, adopted: m.admittedBy == nil && m.legacyHead > 0)
        }.sorted { ($0.admittedAt, $0.device) < ($1.admittedAt, $1.device) }
    }

    /// Issues an invitation: writes the `invite` entry and returns what the invitation file carries.
    public func invite(role: Role, validFor seconds: UInt64) throws -> InvitationGrant {
        try requireCoordinator("invite")
        let secret = SigningKeyPair.generate()
        let now = wallClock()
        let expires = now > UInt64.max - seconds * 1000 ? UInt64.max : now + seconds * 1000
        var stamp = HLCTimestamp.zero
        var authority: [Envelope] = []
        try mapErrors {
            try database.write { db in
                var writer = try LocalWriter(vault: self, db: db)
                stamp = try writer.append(.invite(key: secret.publicKey, role: role, expiresAt: expires)).timestamp
                try writer.finish()
                try reloadMembership(db)
                let bodies = try Data.fetchAll(
                    db,
                    sql: "SELECT e.body FROM authority a JOIN envelope e ON e.author = a.author AND e.seq = a.seq")
                authority = bodies.compactMap { try? Envelope(decoding: Array($0)) }
            }
        }
        return InvitationGrant(
            vaultID: vaultID, keys: allKeys, inviter: deviceID, inviterName: memberName(deviceID) ?? keyring.deviceName,
            role: role, expiresAt: expires, secret: secret, stamp: stamp, authority: authority)
    }

    /// Creates a new member device's vault in `dir` from an invitation: its first entry is its `join`.
    public static func join(
        _ grant: InvitationGrant, at dir: URL, passphrase: SecureBytes, deviceName: String,
        strength: PasswordHash.Strength
    ) throws -> Vault {
        let keyring = Keyring(vaultID: grant.vaultID, device: .generate(), deviceName: deviceName, keys: grant.keys)
        guard let device = try? DeviceID(keyring.device.publicKey), let agreement = keyring.agreement else {
            fatalError("unreachable: a new keyring has a device and an agreement key")
        }
        // A name that cannot be sealed (too long) is refused before any folder is made; the join seals it below.
        _ = try sealName(deviceName, keyring: keyring)
        let proof = grant.secret.sign(
            MembershipProof.joinMessage(vaultID: grant.vaultID, device: device, agreementKey: agreement.publicKey))
        return try create(at: dir, keyring: keyring, passphrase: passphrase, strength: strength) { db, vault in
            for envelope in grant.authority
            where envelope.isAuthority && envelope.header.vaultID == grant.vaultID && envelope.hasValidSignature() {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO pending_authority(author, seq, body) VALUES (?, ?, ?)",
                    arguments: [
                        Data(envelope.header.author.bytes), Int64(envelope.header.seq), Data(envelope.encoded()),
                    ])
            }
            var clock = HybridLogicalClock()
            clock.observe(grant.stamp)
            try vault.saveClock(db, clock)
            // The name is sealed with the key the vault writes with (the inviter's last rotation, known from the
            // invitation's entries), not the keyring's highest epoch number, which may be an older rotation's key
            // that a device revoked since still holds.
            try vault.reloadMembership(db)
            let sealed = try vault.sealWithWriteKey(deviceName)
            try vault.appendEntry(
                db,
                .join(invitation: grant.secret.publicKey, proof: proof, agreementKey: agreement.publicKey, name: sealed)
            )
        }
    }

    /// Renames this device.
    public func rename(_ name: String) throws {
        guard membership.members[deviceID] != nil else {
            throw StoreError(.notAllowed, "This device is not a member of this vault yet; sync first.")
        }
        let sealed = try sealWithWriteKey(name)
        try writeEntry { _ in .rename(sealed) }
    }

    /// `name` sealed with the key the vault writes with: a device revoked before this entry cannot read it.
    func sealWithWriteKey(_ name: String) throws -> SealedName {
        try Self.sealName(name, key: writeKey, vaultID: vaultID, device: deviceID)
    }

    /// Gives `device` a role for its changes after the last one this device has seen.
    public func setRole(_ device: DeviceID, _ role: Role) throws {
        try requireCoordinator("change roles")
        guard let member = membership.members[device] else {
            throw StoreError(.unknownID, "No device of this vault has the id \(device.hex.prefix(12)).")
        }
        guard !member.isRevoked else { throw StoreError(.invalid, "That device is revoked; its role cannot change.") }
        if member.currentRole == .coordinator && role != .coordinator {
            try requireAnotherCoordinator(besides: device, action: "change the role of")
        }
        try writeEntry { db in .setRole(device: device, role: role, after: try self.head(db, author: device).seq) }
    }

    func requireAnotherCoordinator(besides device: DeviceID, action: String) throws {
        let others = membership.activeMembers.filter { $0.device != device && $0.currentRole == .coordinator }
        guard !others.isEmpty else {
            throw StoreError(
                .invalid, "Refused to \(action) the last coordinator: make another device coordinator first.")
        }
    }

    /// Revokes `device` and rotates the vault key: a new key sealed to every remaining member. Its changes up to
    /// the last one this vault holds stay applied, or none of them with `allChanges` (a device that never
    /// belonged, such as one minted from a copied first-release vault key).
    public func revoke(_ device: DeviceID, allChanges: Bool = false) throws {
        try requireCoordinator("revoke a device")
        guard let member = membership.members[device] else {
            throw StoreError(.unknownID, "No device of this vault has the id \(device.hex.prefix(12)).")
        }
        guard !member.isRevoked else { throw StoreError(.invalid, "That device is already revoked.") }
        if member.currentRole == .coordinator { try requireAnotherCoordinator(besides: device, action: "revoke") }
        var epoch: UInt32 = 0
        while epoch < 2 || key(epoch: epoch) != nil
            || membership.allRotations.contains(where: { $0.rotation.epoch == epoch })
        {
            epoch = UInt32.random(in: 2...UInt32.max)
        }
        let newKey = VaultKey.generate(epoch: epoch)
        let rawKey = newKey.root.copyBytes()
        var grants: [DeviceID: [UInt8]] = [:]
        for m in membership.activeMembers where m.device != device {
            guard let agreement = m.agreementKey, let box = try? SealedBox.seal(rawKey, to: agreement) else {
                continue
            }
            grants[m.device] = box
        }
        let rotation = KeyRotation(epoch: epoch, relayKey: newKey.relaySigningKey().publicKey, grants: grants)
        try writeEntry { db in
            .revoke(device: device, after: allChanges ? 0 : try self.head(db, author: device).seq, rotation: rotation)
        }
    }

    /// Marks reviewed fork evidence of `device` as dismissed: `verify` passes again, the evidence stays.
    public func dismissForks(of device: DeviceID) throws {
        try requireCoordinator("dismiss fork evidence")
        let marks: [(UInt64, [UInt8])] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT seq, hash FROM fork WHERE author = ? ORDER BY seq",
                    arguments: [Data(device.bytes)]
                ).map { (UInt64($0["seq"] as Int64), Array($0["hash"] as Data)) }
            }
        }
        let open = marks.filter {
            !membership.dismissedForks.contains(.init(device: device, seq: $0.0, hash: $0.1))
        }
        guard !open.isEmpty else {
            throw StoreError(.invalid, "This vault holds no undismissed fork evidence of that device.")
        }
        for (seq, hash) in open { try writeEntry { _ in .dismissFork(device: device, seq: seq, hash: hash) } }
    }
}

extension Vault {
    /// This vault's membership entries (authority envelopes) in its log, for an invitation to carry.
    public func authorityEnvelopes() throws -> [Envelope] {
        try mapErrors {
            try database.read { db in
                try Data.fetchAll(
                    db,
                    sql: "SELECT e.body FROM authority a JOIN envelope e ON e.author = a.author AND e.seq = a.seq"
                ).compactMap { try? Envelope(decoding: Array($0)) }
            }
        }
    }
}

/// What `amanat recover` did.
public struct RecoverResult: Sendable {
    /// This laptop's new device id.
    public var device: DeviceID
    /// Changes that had not left this laptop, signed again under the new identity.
    public var resigned: Int
}

extension Vault {
    /// Gives this laptop a new identity after it was restored from a backup or cloned (Protocol/membership.md §11).
    ///
    /// The new identity's first entry is `recover`, signed by the old identity's key. This laptop's changes from
    /// the seq where its log forked (or none, if no fork was seen) are decrypted and signed again under the new
    /// identity, with the ids of their records and operations renamed; the old branch is dropped here, so the
    /// others' copy of the old identity's log can be pulled. The keyring is rewritten last.
    public func recover(passphrase: SecureBytes) throws -> RecoverResult {
        let old = deviceID
        guard let me = membership.members[old], !me.isRevoked else {
            throw StoreError(.notAllowed, "This device is \(describeSelf()): it cannot hand over to a new identity.")
        }
        let signer = SigningKeyPair.generate()
        let agreement = AgreementKeyPair.generate()
        guard let newDevice = try? DeviceID(signer.publicKey) else { fatalError("unreachable") }
        let proof = keyring.device.sign(
            MembershipProof.recoverMessage(vaultID: vaultID, device: newDevice, agreementKey: agreement.publicKey))
        let oldKeyring = keyring
        let newKeyring = keyring.withNewDevice(signer, agreement: agreement)
        var resigned = 0
        do {
            try mapErrors {
                try database.write { db in
                    let forkSeq = try Int64.fetchOne(
                        db, sql: "SELECT MIN(seq) FROM fork WHERE author = ?", arguments: [Data(old.bytes)])
                    let next = try head(db, author: old).seq + 1
                    let start = forkSeq.map { UInt64($0) } ?? next
                    var changes: [AuthoredChange] = []
                    for body in try Data.fetchAll(
                        db, sql: "SELECT body FROM envelope WHERE author = ? AND seq >= ? ORDER BY seq",
                        arguments: [Data(old.bytes), Int64(clamping: start)])
                    {
                        guard let envelope = try? Envelope(decoding: Array(body)) else {
                            throw StoreError(.damaged, "The vault is damaged: a stored envelope does not decode.")
                        }
                        guard !envelope.isAuthority, let key = key(epoch: envelope.header.keyEpoch),
                            let authored = try? envelope.openAuthored(with: key)
                        else { continue }
                        changes.append(authored)
                    }
                    for table in ["envelope", "authority"] {
                        try db.execute(
                            sql: "DELETE FROM \(table) WHERE author = ? AND seq >= ?",
                            arguments: [Data(old.bytes), Int64(clamping: start)])
                    }
                    try db.execute(sql: "DELETE FROM fork WHERE author = ?", arguments: [Data(old.bytes)])

                    keyring = newKeyring
                    var writer = try LocalWriter(vault: self, db: db)
                    try writer.append(
                        .recover(
                            previous: old, proof: proof, agreementKey: agreement.publicKey,
                            name: try sealWithWriteKey(keyring.deviceName)))
                    try writer.finish()
                    try reloadMembership(db)
                    writer = try LocalWriter(vault: self, db: db)
                    var records: [RecordID: RecordID] = [:]
                    var ops: [OpID: OpID] = [:]
                    for authored in changes {
                        let seq = writer.head.seq + 1
                        let creates = authored.change.operations.contains {
                            if case .create = $0 { return true }
                            return false
                        }
                        let record =
                            creates
                            ? RecordID.derived(author: newDevice, seq: seq)
                            : records[authored.change.record] ?? authored.change.record
                        if creates { records[authored.change.record] = record }
                        for index in authored.change.operations.indices {
                            ops[authored.opID(index)] = OpID(device: newDevice, seq: seq, index: UInt32(index))
                        }
                        let renamed = authored.change.operations.map { $0.renaming(ops) }
                        _ = try writer.commit(record: record) { _ in renamed }
                        resigned += 1
                    }
                    try writer.finish()
                    try rebuildProjection(db)
                    try saveAuthorization(db)
                }
            }
        } catch {
            keyring = oldKeyring
            throw error
        }
        try keyring.rewrite(to: Self.keyringURL(directory), passphrase: passphrase)
        return RecoverResult(device: newDevice, resigned: resigned)
    }
}

extension RecordOperation {
    /// The same operation with the operation ids it names renamed by `map`.
    func renaming(_ map: [OpID: OpID]) -> RecordOperation {
        func rename(_ ids: [OpID]) -> [OpID] { ids.map { map[$0] ?? $0 } }
        switch self {
        case .set(let field, let value, let pred): return .set(field: field, value: value, pred: rename(pred))
        case .removeTag(let tag, let observed): return .removeTag(tag, observed: rename(observed))
        case .delete(let observed): return .delete(observed: rename(observed))
        default: return self
        }
    }
}

extension Vault {
    /// Changes held back by the membership rules, per device: devices that are not members (kept apart), revoked
    /// devices' later changes and readers' changes (counted from the log), and changes that create records they
    /// may not create (counted when they were applied).
    public func heldBackSummary() throws -> [HeldBack] {
        var result: [HeldBack] = []
        for (device, count) in try keptApartCounts() {
            result.append(HeldBack(device: device, reason: .notMember, changes: count))
        }
        let rows: [(DeviceID, UInt64)] = try mapErrors {
            try database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT e.author, e.seq FROM envelope e
                        WHERE NOT EXISTS (SELECT 1 FROM authority a WHERE a.author = e.author AND a.seq = e.seq)
                        """
                ).compactMap { row in
                    // A row edited by hand is `verify`'s to report; it is no held-back change.
                    guard let bytes = row.storedBlob("author"), let device = try? DeviceID(bytes),
                        let seq = row.storedInteger("seq").flatMap(UInt64.init(exactly:))
                    else { return nil }
                    return (device, seq)
                }
            }
        }
        var counts: [DeviceID: [HeldReason: Int]] = [:]
        let refused = try mapErrors { try database.read { db in try loadRefusedCreates(db) } }
        for (device, count) in refused where count > 0 { counts[device, default: [:]][.notCreator] = count }
        for (device, seq) in rows {
            guard let m = membership.members[device] else {
                counts[device, default: [:]][.notMember, default: 0] += 1
                continue
            }
            if seq <= m.since {
                counts[device, default: [:]][.notMember, default: 0] += 1
            } else if let cut = m.revokedAfter, seq > cut {
                counts[device, default: [:]][.revoked, default: 0] += 1
            } else if !m.role(at: seq).canWrite {
                counts[device, default: [:]][.reader, default: 0] += 1
            }
        }
        for (device, reasons) in counts {
            for (reason, n) in reasons { result.append(HeldBack(device: device, reason: reason, changes: n)) }
        }
        return result.sorted { ($0.device, $0.reason.rawValue) < ($1.device, $1.reason.rawValue) }
    }
}
