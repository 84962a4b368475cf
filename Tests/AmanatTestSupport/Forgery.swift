import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// A device key minted by someone who was never invited: generated until its public key sorts before every other.
public func mintFirstSortingDevice() -> SigningKeyPair {
    while true {
        let pair = SigningKeyPair.generate()
        if pair.publicKey[0] == 0 { return pair }
    }
}

/// A stamp `days` days before now.
public func stamp(daysAgo days: UInt64) -> HLCTimestamp {
    let now = UInt64(Date().timeIntervalSince1970 * 1000)
    return HLCTimestamp(wallMillis: now - days * 86_400_000, counter: 0)
}

/// A stamp of now.
public func stampNow() -> HLCTimestamp { stamp(daysAgo: 0) }

/// The vault key a device writes with (the latest rotation it holds, else its keyring's newest), as a modified
/// client would take it from its own opened vault.
public func writingKey(of vault: Vault) -> VaultKey {
    if let rotation = vault.membership.currentRotation, let key = vault.key(epoch: rotation.epoch) { return key }
    return vault.keyring.currentKey
}

/// The head of `vault`'s own chain.
public func ownHead(of vault: Vault) throws -> ChainHead {
    try vault.versionVector()[vault.deviceID] ?? .empty
}

/// A chain of envelopes made by hand with the real sealing code, as a hostile or modified client writes them.
public struct ForgedChain {
    /// The vault the envelopes claim.
    public let vaultID: [UInt8]
    /// The signing key.
    public let signer: SigningKeyPair
    /// The chain's head so far.
    public private(set) var head: ChainHead

    /// Starts after `head` (an empty chain for a new device).
    public init(vaultID: [UInt8], signer: SigningKeyPair, head: ChainHead = .empty) {
        self.vaultID = vaultID
        self.signer = signer
        self.head = head
    }

    /// The signer's device id.
    public var device: DeviceID {
        // A 32-byte public key always makes a device id.
        guard let id = try? DeviceID(signer.publicKey) else { fatalError("unreachable") }
        return id
    }

    /// Seals a record change as the next envelope.
    public mutating func change(
        _ record: RecordID, key: VaultKey, at stamp: HLCTimestamp, _ operations: [RecordOperation]
    ) throws -> Envelope {
        let envelope = try Envelope.seal(
            Change(record: record, timestamp: stamp, operations: operations), vaultID: vaultID, key: key,
            signer: signer, seq: head.seq + 1, previousHash: head.hash)
        head = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
        return envelope
    }

    /// Seals a membership entry as the next envelope.
    public mutating func entry(_ operation: MembershipOperation, at stamp: HLCTimestamp) throws -> Envelope {
        let envelope = try Envelope.seal(
            MembershipEntry(timestamp: stamp, operation: operation), vaultID: vaultID, signer: signer,
            seq: head.seq + 1, previousHash: head.hash)
        head = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
        return envelope
    }

    /// An envelope of an epoch nobody holds, with random ciphertext: what someone who knows only the vault id
    /// can sign. Its content cannot be checked by any replica.
    public mutating func unreadable(epoch: UInt32) throws -> Envelope {
        let ciphertext = Sodium.randomBytes(96)
        let header = EnvelopeHeader(
            vaultID: vaultID, author: device, seq: head.seq + 1, previousHash: head.hash, keyEpoch: epoch,
            nonce: Sodium.randomBytes(24), ciphertextLength: UInt32(ciphertext.count))
        let signature = signer.sign(header.encoded() + BLAKE2b.hash(ciphertext))
        let envelope = Envelope(header: header, ciphertext: ciphertext, signature: signature)
        head = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
        return envelope
    }
}

/// The fields of a testimony in the order `createRecord` seals them, and the operations that create and seal it.
public func testimonyOperations(_ fields: [(String, String)]) -> [RecordOperation] {
    [.create(kind: "testimony")] + fields.map { RecordOperation.set(field: $0.0, value: $0.1, pred: []) }
        + [.seal(contentHash: RecordState.sealHash(kind: "testimony", fields: fields))]
}

/// Writes `envelopes` into the sync file at `url` (created if missing) with the real sync-file code; returns how
/// many it took.
@discardableResult
public func writeSyncFile(_ url: URL, vaultID: [UInt8], _ envelopes: [Envelope]) throws -> Int {
    try SyncFile.open(at: url, vaultID: vaultID, create: true).append(envelopes)
}

/// Runs the built `amanat` binary from a test target that cannot link the command-line target.
public enum AmanatBinary {
    /// What a run printed and returned.
    public struct Result: Sendable {
        /// The exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String
    }

    /// `$AMANAT_BIN`, else `.build/debug/amanat` of this checkout.
    public static let url: URL = {
        if let env = ProcessInfo.processInfo.environment["AMANAT_BIN"] { return URL(fileURLWithPath: env) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("amanat"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("amanat"),
            root.appendingPathComponent(".build/debug/amanat"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    /// Runs `amanat --vault VAULT args…` with `passphrase` in the environment.
    public static func run(_ args: [String], vault: URL, passphrase: String) throws -> Result {
        let process = Process()
        process.executableURL = url
        process.arguments = ["--vault", vault.path] + args
        var env = ProcessInfo.processInfo.environment
        env["AMANAT_PASSPHRASE"] = passphrase
        env.removeValue(forKey: "AMANAT_VAULT")
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }
}
