import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// The passphrase of the vaults that ``makeTeam(_:in:prefix:)`` creates.
public let passphrase = SecureBytes(Array("test passphrase".utf8))

/// A team of `count` member devices of one vault, each in its own vault directory (`prefix0`, `prefix1`, …).
///
/// `prefix0` founds the vault and invites the others as it would with `amanat invite`; every invitation is
/// issued before anyone joins, so each member knows every other's invitation from the start.
public func makeTeam(
    _ count: Int, in dir: TemporaryDirectory, prefix: String = "r", roles: [Role] = []
) throws -> [Vault] {
    let first = try Vault.create(
        at: dir.path("\(prefix)0"), passphrase: passphrase, deviceName: "\(prefix)0", strength: .interactive)
    var grants: [InvitationGrant] = []
    for i in 1..<max(count, 1) {
        grants.append(try first.invite(role: i - 1 < roles.count ? roles[i - 1] : .member, validFor: 86_400))
    }
    let authority = try first.authorityEnvelopes()
    var team = [first]
    for (i, var grant) in zip(1..., grants) {
        grant.authority = authority
        team.append(
            try Vault.join(
                grant, at: dir.path("\(prefix)\(i)"), passphrase: passphrase, deviceName: "\(prefix)\(i)",
                strength: .interactive))
    }
    return Array(team.prefix(count))
}

/// A new member of `coordinator`'s vault in `url`, invited and joined as `amanat invite` and `join` do.
public func addMember(
    to coordinator: Vault, at url: URL, name: String, role: Role = .member
) throws -> Vault {
    try Vault.join(
        try coordinator.invite(role: role, validFor: 86_400), at: url, passphrase: passphrase, deviceName: name,
        strength: .interactive)
}

/// A copy of `vault`'s directory in `url`, opened: a laptop restored from a backup, or cloned.
public func cloneVault(_ vault: Vault, to url: URL) throws -> Vault {
    let fm = FileManager.default
    try fm.createDirectory(at: url, withIntermediateDirectories: true)
    for name in try fm.contentsOfDirectory(atPath: vault.directory.path) {
        try fm.copyItem(at: vault.directory.appendingPathComponent(name), to: url.appendingPathComponent(name))
    }
    return try Vault.open(at: url, passphrase: passphrase)
}

/// Gives `to` every envelope `from` holds, as a sync from `from` to `to` would (one way, no carrier).
public func exchange(_ from: Vault, _ to: Vault) throws {
    for (device, head) in try from.versionVector() {
        try to.ingest(try from.envelopes(of: device, after: 0, limit: Int(head.seq)))
    }
}

/// Syncs `vault` with the sync file at `url`, both ways.
@discardableResult
public func fileSync(_ vault: Vault, _ url: URL, batchSize: Int = 1000) async throws -> SyncReport {
    let carrier = try FileCarrier(url: url, vaultID: vault.vaultID)
    return try await SyncSession(vault: vault, carrier: carrier, batchSize: batchSize).run()
}

/// A value shared between a sync's progress callback and a task that watches it.
public final class Counter: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var count = 0

    /// Creates a counter at 0.
    public init() {}

    /// Sets the value.
    public func set(_ value: Int) { lock.withLock { count = value } }

    /// The value.
    public var value: Int { lock.withLock { count } }
}

extension Vault {
    /// Stores `bytes` as an attachment's chunks (``storeFile(from:name:note:chunkSize:inspect:progress:)``), read
    /// from a file `name` written to `dir`, as `amanat attach` reads one.
    public func storeTestFile(_ bytes: [UInt8], name: String, in dir: TemporaryDirectory) throws -> StoredFile {
        let file = dir.path(name)
        try Data(bytes).write(to: file)
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        var source = FileDescriptorSource(fd: handle.fileDescriptor, name: file.path)
        return try storeFile(from: &source, name: name, note: "")
    }
}
