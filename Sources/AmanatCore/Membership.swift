import AmanatCrypto

/// What a device may do in a vault (Protocol/membership.md §2).
public enum Role: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Invites, revokes, changes roles, dismisses reviewed forks, and everything a member does.
    case coordinator = 1
    /// Records, edits, tags, deletes, syncs and exports.
    case member = 2
    /// Syncs and reads; writes no record change.
    case reader = 3

    /// The role's name as typed and shown.
    public var description: String {
        switch self {
        case .coordinator: "coordinator"
        case .member: "member"
        case .reader: "reader"
        }
    }

    /// Parses `coordinator`, `member` or `reader`.
    public init?(name: String) {
        guard let role = Role.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = role
    }

    /// Whether changes to records by a device with this role are applied.
    public var canWrite: Bool { self != .reader }
}

/// What a sealed name and a sealed purge note share (Protocol/membership.md §4, §12): XChaCha20-Poly1305 under a
/// subkey of the vault key of `epoch`, bound to `label ‖ vault id ‖ device ‖ u32 epoch`, and on the wire
/// `u32 epoch ‖ nonce (24) ‖ varint length ‖ ciphertext`.
enum VaultSealing {
    static func associatedData(label: String, vaultID: [UInt8], device: DeviceID, epoch: UInt32) -> [UInt8] {
        var w = ByteWriter(capacity: 80)
        w.write(raw: Array(label.utf8))
        w.write(raw: vaultID)
        w.write(raw: device.bytes)
        w.write(bigEndian: epoch)
        return w.bytes
    }

    /// Seals `plain`; returns the nonce and the ciphertext.
    static func seal(
        _ plain: [UInt8], label: String, subkey: (id: UInt64, context: String), key: VaultKey, vaultID: [UInt8],
        device: DeviceID
    ) throws -> (nonce: [UInt8], ciphertext: [UInt8]) {
        let nonce = AEAD.randomNonce()
        let ciphertext = try AEAD.seal(
            plain, additionalData: associatedData(label: label, vaultID: vaultID, device: device, epoch: key.epoch),
            nonce: nonce, key: key.subkey(id: subkey.id, context: subkey.context))
        return (nonce, ciphertext)
    }

    /// The plaintext, if `key` is of `epoch` and opens it.
    static func open(
        _ ciphertext: [UInt8], nonce: [UInt8], epoch: UInt32, label: String, subkey: (id: UInt64, context: String),
        key: VaultKey, vaultID: [UInt8], device: DeviceID
    ) -> [UInt8]? {
        guard key.epoch == epoch else { return nil }
        return try? AEAD.open(
            ciphertext, additionalData: associatedData(label: label, vaultID: vaultID, device: device, epoch: epoch),
            nonce: nonce, key: key.subkey(id: subkey.id, context: subkey.context))
    }

    static func encode(epoch: UInt32, nonce: [UInt8], ciphertext: [UInt8], into w: inout ByteWriter) {
        w.write(bigEndian: epoch)
        w.write(raw: nonce)
        w.write(lengthPrefixed: ciphertext)
    }

    /// Reads the wire form; a ciphertext shorter than a tag or longer than `maximum` is malformed (`what` says which).
    static func decode(_ r: inout ByteReader, maximum: Int, what: String) throws -> (UInt32, [UInt8], [UInt8]) {
        let epoch = try r.read(bigEndian: UInt32.self)
        let nonce = try r.read(count: 24)
        let ciphertext = try r.readLengthPrefixed()
        guard ciphertext.count <= maximum, ciphertext.count >= AEAD.tagLength else {
            throw CoreError(.malformed, "A sealed \(what) has an impossible length.")
        }
        return (epoch, nonce, ciphertext)
    }
}

/// A device name sealed under a vault key, so relays and couriers, who can read membership entries, never read
/// names (Protocol/membership.md §4).
public struct SealedName: Hashable, Sendable {
    /// The epoch of the vault key it is sealed under.
    public var epoch: UInt32
    /// The 24-byte nonce.
    public var nonce: [UInt8]
    /// XChaCha20-Poly1305 ciphertext of the name, zero-padded to a multiple of 32 bytes.
    public var ciphertext: [UInt8]

    /// Names longer than this many UTF-8 bytes are refused.
    public static let maximumLength = 96

    /// Creates a sealed name from its parts.
    public init(epoch: UInt32, nonce: [UInt8], ciphertext: [UInt8]) {
        self.epoch = epoch
        self.nonce = nonce
        self.ciphertext = ciphertext
    }

    static let label = "amanat/name/v1"
    static let subkey: (id: UInt64, context: String) = (5, "amnt-nam")

    /// Seals `name` for `device` under `key`.
    public static func seal(_ name: String, key: VaultKey, vaultID: [UInt8], device: DeviceID) throws -> SealedName {
        var plain = Array(name.utf8)
        guard plain.count <= maximumLength else {
            throw CoreError(.malformed, "A device name must be at most \(maximumLength) bytes.")
        }
        plain.append(contentsOf: repeatElement(0, count: 32 - plain.count % 32))
        let sealed = try VaultSealing.seal(
            plain, label: label, subkey: subkey, key: key, vaultID: vaultID, device: device)
        return SealedName(epoch: key.epoch, nonce: sealed.nonce, ciphertext: sealed.ciphertext)
    }

    /// The name, if `key` (of this name's epoch) opens it.
    public func open(key: VaultKey, vaultID: [UInt8], device: DeviceID) -> String? {
        guard
            var plain = VaultSealing.open(
                ciphertext, nonce: nonce, epoch: epoch, label: Self.label, subkey: Self.subkey, key: key,
                vaultID: vaultID, device: device)
        else { return nil }
        // The name is followed by 1–32 zero bytes of padding.
        while plain.last == 0 { plain.removeLast() }
        // Longer than any name Amanat seals: a modified client's, shown as no name (Protocol/membership.md §4).
        guard plain.count <= Self.maximumLength else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }
}

/// A new vault key for the members that remain after a revocation, each copy sealed to one member's agreement key.
public struct KeyRotation: Hashable, Sendable {
    /// The new epoch: a random number of at least 2, so concurrent rotations never share one.
    public var epoch: UInt32
    /// The relay public key derived from the new vault key, so a relay can accept it without reading it.
    public var relayKey: [UInt8]
    /// For each remaining member, the new 32-byte vault key sealed to its agreement key.
    public var grants: [DeviceID: [UInt8]]

    /// Creates a rotation.
    public init(epoch: UInt32, relayKey: [UInt8], grants: [DeviceID: [UInt8]]) {
        self.epoch = epoch
        self.relayKey = relayKey
        self.grants = grants
    }
}

/// One device of a first-release vault, listed by an upgrade (`adopt`) entry with its last seq at that time.
public struct LegacyMember: Hashable, Sendable {
    /// The device.
    public var device: DeviceID
    /// Its last seq the adopting device had seen: its record creations up to here keep their random ids.
    public var head: UInt64

    /// Creates a listing.
    public init(device: DeviceID, head: UInt64) {
        self.device = device
        self.head = head
    }
}

/// One entry of the membership log (Protocol/membership.md §3).
public enum MembershipOperation: Hashable, Sendable {
    /// The vault's first entry, by its creator, who becomes coordinator. The vault id is derived from the
    /// creator's key and `salt`, so no other device can write it.
    case found(salt: [UInt8], agreementKey: [UInt8], name: SealedName)
    /// Upgrade of a vault made before membership existed: names its coordinator and the devices found in its log.
    case adopt(coordinator: DeviceID, members: [LegacyMember], agreementKey: [UInt8], name: SealedName)
    /// A coordinator issues an invitation: `key` is the invitation's public key, whose secret is in the file.
    case invite(key: [UInt8], role: Role, expiresAt: UInt64)
    /// A new device joins with an invitation: `proof` is the invitation key's signature of the join.
    case join(invitation: [UInt8], proof: [UInt8], agreementKey: [UInt8], name: SealedName)
    /// A coordinator gives `device` a role for its changes with seq greater than `after`.
    case setRole(device: DeviceID, role: Role, after: UInt64)
    /// A coordinator revokes `device`: its changes with seq greater than `after` are held back; a new vault key.
    case revoke(device: DeviceID, after: UInt64, rotation: KeyRotation)
    /// A device renames itself.
    case rename(SealedName)
    /// A coordinator marks reviewed fork evidence of `device` at `seq` as dismissed (the evidence stays).
    case dismissFork(device: DeviceID, seq: UInt64, hash: [UInt8])
    /// A restored or cloned laptop becomes a new identity, admitted by its previous identity's signature.
    case recover(previous: DeviceID, proof: [UInt8], agreementKey: [UInt8], name: SealedName)
    /// A coordinator seals the vault key of an existing rotation `epoch` to members that lack it (a member whose
    /// join arrived after the rotation, or a recovered identity).
    case grant(epoch: UInt32, grants: [DeviceID: [UInt8]])
    /// A coordinator destroys the content of a record: every store drops the ciphertext of the listed envelopes
    /// and the listed attachment chunks (Protocol/membership.md §3.11).
    case purge(Purge)
}

/// One envelope a purge destroys: its author, its seq and the BLAKE2b-256 hash of its ciphertext.
public struct PurgeTarget: Hashable, Sendable, Comparable {
    /// The envelope's author.
    public var author: DeviceID
    /// Its seq.
    public var seq: UInt64
    /// The hash of its ciphertext, which its signature covers: the purge names exactly that envelope.
    public var ciphertextHash: [UInt8]

    /// Creates a target.
    public init(author: DeviceID, seq: UInt64, ciphertextHash: [UInt8]) {
        self.author = author
        self.seq = seq
        self.ciphertextHash = ciphertextHash
    }

    public static func < (a: PurgeTarget, b: PurgeTarget) -> Bool {
        a.author != b.author ? a.author < b.author : a.seq < b.seq
    }
}

/// What a purge destroys, and why, sealed so that only members read the record and the reason.
public struct Purge: Hashable, Sendable {
    /// The envelopes whose ciphertext is destroyed, sorted by (author, seq), each once.
    public var targets: [PurgeTarget]
    /// The attachment chunks destroyed (their addresses), sorted, each once.
    public var chunks: [[UInt8]]
    /// The record id and the reason, sealed under a vault key.
    public var note: SealedNote

    /// Creates a purge; targets and chunks are sorted and made unique.
    public init(targets: [PurgeTarget], chunks: [[UInt8]], note: SealedNote) {
        var seen = Set<[UInt8]>()
        self.targets = targets.sorted().filter {
            seen.insert($0.author.bytes + withUnsafeBytes(of: $0.seq, Array.init)).inserted
        }
        self.chunks = Array(Set(chunks)).sorted { $0.lexicographicallyPrecedes($1) }
        self.note = note
    }
}

/// A purge's record id and reason, sealed under a vault key (Protocol/membership.md §4): relays and couriers, who
/// read membership entries, learn that envelopes were purged together, never which record or why.
public struct SealedNote: Hashable, Sendable {
    /// The epoch of the vault key it is sealed under.
    public var epoch: UInt32
    /// The 24-byte nonce.
    public var nonce: [UInt8]
    /// XChaCha20-Poly1305 ciphertext of `u16 reason length ‖ record id ‖ reason`, zero-padded to 64 bytes.
    public var ciphertext: [UInt8]

    /// Reasons longer than this many UTF-8 bytes are refused.
    public static let maximumReasonLength = 1000

    /// Creates a sealed note from its parts.
    public init(epoch: UInt32, nonce: [UInt8], ciphertext: [UInt8]) {
        self.epoch = epoch
        self.nonce = nonce
        self.ciphertext = ciphertext
    }

    static let label = "amanat/purge-note/v1"
    static let subkey: (id: UInt64, context: String) = (8, "amnt-prg")

    /// Seals the record id and reason of a purge written by `author`.
    public static func seal(record: RecordID, reason: String, key: VaultKey, vaultID: [UInt8], author: DeviceID)
        throws -> SealedNote
    {
        let text = Array(reason.utf8)
        guard text.count <= maximumReasonLength else {
            throw CoreError(.malformed, "A purge reason must be at most \(maximumReasonLength) bytes.")
        }
        var w = ByteWriter(capacity: 64 + text.count)
        w.write(bigEndian: UInt16(text.count))
        w.write(recordID: record)
        w.write(raw: text)
        var plain = w.bytes
        plain.append(contentsOf: repeatElement(0, count: (64 - plain.count % 64) % 64))
        let sealed = try VaultSealing.seal(
            plain, label: label, subkey: subkey, key: key, vaultID: vaultID, device: author)
        return SealedNote(epoch: key.epoch, nonce: sealed.nonce, ciphertext: sealed.ciphertext)
    }

    /// The record id and reason, if `key` (of this note's epoch) opens it.
    public func open(key: VaultKey, vaultID: [UInt8], author: DeviceID) -> (record: RecordID, reason: String)? {
        guard
            let plain = VaultSealing.open(
                ciphertext, nonce: nonce, epoch: epoch, label: Self.label, subkey: Self.subkey, key: key,
                vaultID: vaultID, device: author)
        else { return nil }
        var r = ByteReader(plain)
        guard let length = try? r.read(bigEndian: UInt16.self), Int(length) <= Self.maximumReasonLength,
            let id = try? r.read(count: 16), let record = try? RecordID(id), let text = try? r.read(count: Int(length)),
            r.remaining.allSatisfy({ $0 == 0 })
        else { return nil }
        return (record, String(decoding: text, as: UTF8.self))
    }

    func encode(into w: inout ByteWriter) {
        VaultSealing.encode(epoch: epoch, nonce: nonce, ciphertext: ciphertext, into: &w)
    }

    init(_ r: inout ByteReader) throws {
        (epoch, nonce, ciphertext) = try VaultSealing.decode(&r, maximum: 2048, what: "purge note")
    }
}

/// A membership operation with its author's hybrid-logical-clock stamp: the plaintext of an authority envelope.
public struct MembershipEntry: Hashable, Sendable {
    /// When the entry was written.
    public var timestamp: HLCTimestamp
    /// What it does.
    public var operation: MembershipOperation

    /// Creates an entry.
    public init(timestamp: HLCTimestamp, operation: MembershipOperation) {
        self.timestamp = timestamp
        self.operation = operation
    }
}

/// An entry together with the position in its author's log.
public struct AuthoredEntry: Hashable, Sendable {
    /// The device that signed it.
    public var author: DeviceID
    /// Its seq in the author's log.
    public var seq: UInt64
    /// The entry.
    public var entry: MembershipEntry

    /// Creates an authored entry.
    public init(author: DeviceID, seq: UInt64, entry: MembershipEntry) {
        self.author = author
        self.seq = seq
        self.entry = entry
    }
}

// MARK: - Derivations

extension VaultKey {
    /// The epoch of authority envelopes, whose key anyone who knows the vault id can derive (Protocol/membership.md §1).
    public static let authorityEpoch: UInt32 = 0

    /// The key of authority envelopes: derived from the vault id alone, so relays can read (not forge) membership.
    public static func authority(vaultID: [UInt8]) -> VaultKey {
        let root = BLAKE2b.hash(Array("amanat/authority/v1".utf8) + vaultID)
        return VaultKey(epoch: authorityEpoch, root: SecureBytes(root))
    }

    /// The relay key pair of this epoch (Protocol/http-api.md §3).
    public func relaySigningKey() -> SigningKeyPair {
        // A 32-byte derived seed always makes a key pair.
        guard let pair = try? SigningKeyPair(seed: subkey(id: 4, context: "amnt-rly")) else {
            fatalError("unreachable: 32-byte relay seed rejected")
        }
        return pair
    }
}

extension RecordID {
    /// The id of the record created by the change (`author`, `seq`): only that change can create it
    /// (Protocol/membership.md §6).
    public static func derived(author: DeviceID, seq: UInt64) -> RecordID {
        var w = ByteWriter(capacity: 64)
        w.write(raw: Array("amanat/record-id/v1".utf8))
        w.write(raw: author.bytes)
        w.write(bigEndian: seq)
        // 16 bytes always make a record id.
        guard let id = try? RecordID(BLAKE2b.hash(w.bytes, outputLength: 16)) else { fatalError("unreachable") }
        return id
    }
}

/// The derivations that make membership entries self-certifying.
public enum MembershipProof {
    /// The id of a vault founded by `founder` with `salt`: BLAKE2b-128 of both, so only the founder can found it.
    public static func vaultID(founder: DeviceID, salt: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(Array("amanat/vault-id/v1".utf8) + founder.bytes + salt, outputLength: 16)
    }

    /// What an invitation key signs to admit `device`.
    public static func joinMessage(vaultID: [UInt8], device: DeviceID, agreementKey: [UInt8]) -> [UInt8] {
        Array("amanat/join/v1".utf8) + vaultID + device.bytes + agreementKey
    }

    /// What a previous identity signs to hand over to `device` (`amanat recover`).
    public static func recoverMessage(vaultID: [UInt8], device: DeviceID, agreementKey: [UInt8]) -> [UInt8] {
        Array("amanat/recover/v1".utf8) + vaultID + device.bytes + agreementKey
    }
}

// MARK: - Encoding (Protocol/membership.md §3)

extension MembershipEntry {
    /// The format version in the first byte.
    public static let formatVersion: UInt8 = 1

    enum Tag: UInt8 {
        case found = 1
        case adopt = 2
        case invite = 3
        case join = 4
        case setRole = 5
        case revoke = 6
        case rename = 7
        case dismissFork = 8
        case recover = 9
        case grant = 10
        case purge = 11
    }

    /// The canonical encoding, zero-padded to a multiple of 64 bytes like a change.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(Self.formatVersion)
        w.write(bigEndian: timestamp.wallMillis)
        w.write(bigEndian: timestamp.counter)
        switch operation {
        case .found(let salt, let agreementKey, let name):
            w.write(Tag.found.rawValue)
            w.write(raw: salt)
            w.write(raw: agreementKey)
            name.encode(into: &w)
        case .adopt(let coordinator, let members, let agreementKey, let name):
            w.write(Tag.adopt.rawValue)
            w.write(raw: coordinator.bytes)
            let sorted = members.sorted { $0.device < $1.device }
            w.write(varint: UInt64(sorted.count))
            for m in sorted {
                w.write(raw: m.device.bytes)
                w.write(varint: m.head)
            }
            w.write(raw: agreementKey)
            name.encode(into: &w)
        case .invite(let key, let role, let expiresAt):
            w.write(Tag.invite.rawValue)
            w.write(raw: key)
            w.write(role.rawValue)
            w.write(bigEndian: expiresAt)
        case .join(let invitation, let proof, let agreementKey, let name):
            w.write(Tag.join.rawValue)
            w.write(raw: invitation)
            w.write(raw: proof)
            w.write(raw: agreementKey)
            name.encode(into: &w)
        case .setRole(let device, let role, let after):
            w.write(Tag.setRole.rawValue)
            w.write(raw: device.bytes)
            w.write(role.rawValue)
            w.write(varint: after)
        case .revoke(let device, let after, let rotation):
            w.write(Tag.revoke.rawValue)
            w.write(raw: device.bytes)
            w.write(varint: after)
            w.write(bigEndian: rotation.epoch)
            w.write(raw: rotation.relayKey)
            Self.encode(rotation.grants, into: &w)
        case .grant(let epoch, let grants):
            w.write(Tag.grant.rawValue)
            w.write(bigEndian: epoch)
            Self.encode(grants, into: &w)
        case .rename(let name):
            w.write(Tag.rename.rawValue)
            name.encode(into: &w)
        case .dismissFork(let device, let seq, let hash):
            w.write(Tag.dismissFork.rawValue)
            w.write(raw: device.bytes)
            w.write(varint: seq)
            w.write(raw: hash)
        case .recover(let previous, let proof, let agreementKey, let name):
            w.write(Tag.recover.rawValue)
            w.write(raw: previous.bytes)
            w.write(raw: proof)
            w.write(raw: agreementKey)
            name.encode(into: &w)
        case .purge(let purge):
            w.write(Tag.purge.rawValue)
            w.write(varint: UInt64(purge.targets.count))
            for target in purge.targets {
                w.write(raw: target.author.bytes)
                w.write(varint: target.seq)
                w.write(raw: target.ciphertextHash)
            }
            w.write(varint: UInt64(purge.chunks.count))
            for address in purge.chunks { w.write(raw: address) }
            purge.note.encode(into: &w)
        }
        return Change.pad(w.bytes)
    }

    /// Decodes an entry; trailing bytes must all be zero padding.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == Self.formatVersion else {
            throw CoreError(
                .unsupportedVersion,
                "A membership entry was written by a newer version of Amanat (format \(version)).")
        }
        timestamp = HLCTimestamp(
            wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
        guard let tag = Tag(rawValue: try r.readByte()) else {
            throw CoreError(.malformed, "A membership entry has an unknown type.")
        }
        switch tag {
        case .found:
            operation = .found(salt: try r.read(count: 16), agreementKey: try r.read(count: 32), name: try .init(&r))
        case .adopt:
            let coordinator = try DeviceID(r.read(count: 32))
            var members: [LegacyMember] = []
            for _ in 0..<(try r.readCount(minimumElementSize: 33)) {
                let device = try DeviceID(r.read(count: 32))
                members.append(LegacyMember(device: device, head: try r.readVarint()))
            }
            guard zip(members, members.dropFirst()).allSatisfy({ $0.device < $1.device }) else {
                throw CoreError(.malformed, "An adopt entry lists its devices out of order or twice.")
            }
            operation = .adopt(
                coordinator: coordinator, members: members, agreementKey: try r.read(count: 32), name: try .init(&r))
        case .invite:
            let key = try r.read(count: 32)
            operation = .invite(key: key, role: try Self.readRole(&r), expiresAt: try r.read(bigEndian: UInt64.self))
        case .join:
            operation = .join(
                invitation: try r.read(count: 32), proof: try r.read(count: 64), agreementKey: try r.read(count: 32),
                name: try .init(&r))
        case .setRole:
            let device = try DeviceID(r.read(count: 32))
            operation = .setRole(device: device, role: try Self.readRole(&r), after: try r.readVarint())
        case .revoke:
            let device = try DeviceID(r.read(count: 32))
            let after = try r.readVarint()
            let epoch = try r.read(bigEndian: UInt32.self)
            let relayKey = try r.read(count: 32)
            let grants = try Self.decodeGrants(&r)
            guard epoch >= 2 else { throw CoreError(.malformed, "A key rotation names epoch \(epoch).") }
            operation = .revoke(
                device: device, after: after,
                rotation: KeyRotation(epoch: epoch, relayKey: relayKey, grants: grants))
        case .grant:
            let epoch = try r.read(bigEndian: UInt32.self)
            let grants = try Self.decodeGrants(&r)
            guard epoch >= 2 else { throw CoreError(.malformed, "A key grant names epoch \(epoch).") }
            operation = .grant(epoch: epoch, grants: grants)
        case .rename:
            operation = .rename(try .init(&r))
        case .dismissFork:
            let device = try DeviceID(r.read(count: 32))
            operation = .dismissFork(device: device, seq: try r.readVarint(), hash: try r.read(count: 32))
        case .recover:
            operation = .recover(
                previous: try DeviceID(r.read(count: 32)), proof: try r.read(count: 64),
                agreementKey: try r.read(count: 32), name: try .init(&r))
        case .purge:
            var targets: [PurgeTarget] = []
            for _ in 0..<(try r.readCount(minimumElementSize: 65)) {
                let author = try DeviceID(r.read(count: 32))
                let seq = try r.readVarint()
                guard seq >= 1, seq <= UInt64(Int64.max) else {
                    throw CoreError(.malformed, "A purge names an impossible sequence number.")
                }
                targets.append(PurgeTarget(author: author, seq: seq, ciphertextHash: try r.read(count: 32)))
            }
            guard !targets.isEmpty, zip(targets, targets.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw CoreError(.malformed, "A purge lists no envelope, or lists them out of order or twice.")
            }
            var chunks: [[UInt8]] = []
            for _ in 0..<(try r.readCount(minimumElementSize: 32)) { chunks.append(try r.read(count: 32)) }
            guard zip(chunks, chunks.dropFirst()).allSatisfy({ $0.lexicographicallyPrecedes($1) }) else {
                throw CoreError(.malformed, "A purge lists its chunks out of order or twice.")
            }
            operation = .purge(Purge(targets: targets, chunks: chunks, note: try SealedNote(&r)))
        }
        guard r.remaining.allSatisfy({ $0 == 0 }) else {
            throw CoreError(.malformed, "A membership entry has unexpected bytes after its operation.")
        }
    }

    /// Key grants, sorted by device: `varint n ‖ (device ‖ sealed box) × n`.
    static func encode(_ grants: [DeviceID: [UInt8]], into w: inout ByteWriter) {
        let sorted = grants.sorted { $0.key < $1.key }
        w.write(varint: UInt64(sorted.count))
        for (device, box) in sorted {
            w.write(raw: device.bytes)
            w.write(raw: box)
        }
    }

    static func decodeGrants(_ r: inout ByteReader) throws -> [DeviceID: [UInt8]] {
        var grants: [DeviceID: [UInt8]] = [:]
        var previous: DeviceID?
        for _ in 0..<(try r.readCount(minimumElementSize: 32 + 32 + SealedBox.overhead)) {
            let member = try DeviceID(r.read(count: 32))
            guard previous.map({ $0 < member }) ?? true else {
                throw CoreError(.malformed, "A membership entry lists its key grants out of order or twice.")
            }
            previous = member
            grants[member] = try r.read(count: 32 + SealedBox.overhead)
        }
        return grants
    }

    static func readRole(_ r: inout ByteReader) throws -> Role {
        guard let role = Role(rawValue: try r.readByte()) else {
            throw CoreError(.malformed, "A membership entry names an unknown role.")
        }
        return role
    }
}

extension SealedName {
    func encode(into w: inout ByteWriter) {
        VaultSealing.encode(epoch: epoch, nonce: nonce, ciphertext: ciphertext, into: &w)
    }

    init(_ r: inout ByteReader) throws {
        (epoch, nonce, ciphertext) = try VaultSealing.decode(&r, maximum: 256, what: "device name")
    }
}

// MARK: - Authority envelopes

extension Envelope {
    /// Whether this envelope carries a membership entry (key epoch 0) rather than a record change.
    public var isAuthority: Bool { header.keyEpoch == VaultKey.authorityEpoch }

    /// Seals a membership entry as the author's envelope number `seq`.
    public static func seal(
        _ entry: MembershipEntry, vaultID: [UInt8], signer: SigningKeyPair, seq: UInt64, previousHash: [UInt8]
    ) throws -> Envelope {
        try sealPlaintext(
            entry.encoded(), vaultID: vaultID, key: .authority(vaultID: vaultID), signer: signer, seq: seq,
            previousHash: previousHash)
    }

    /// Decrypts the membership entry of an authority envelope (needs only the vault id).
    public func openEntry() throws -> AuthoredEntry {
        guard isAuthority else { throw CoreError(.malformed, "This envelope holds a record change.") }
        let key = VaultKey.authority(vaultID: header.vaultID)
        let plain = try key.withEnvelopeKey(author: header.author, seq: header.seq) {
            try openPlaintext(withKeyBytes: $0)
        }
        return AuthoredEntry(author: header.author, seq: header.seq, entry: try MembershipEntry(decoding: plain))
    }
}
