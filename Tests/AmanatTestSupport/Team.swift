import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// The passphrase of the vaults that ``makeTeam(_:in:prefix:)`` creates.
public let passphrase = SecureBytes(Array("test passphrase".utf8))

/// A team of `count` member devices of one vault, each in its own vault directory (`prefix0`, `prefix1`, …).
public func makeTeam(_ count: Int, in dir: TemporaryDirectory, prefix: String = "r") throws -> [Vault] {
    let first = try Vault.create(
        at: dir.path("\(prefix)0"), passphrase: passphrase, deviceName: "\(prefix)0", strength: .interactive)
    var team = [first]
    for i in 1..<max(count, 1) {
        let keyring = Keyring(
            vaultID: first.vaultID, device: .generate(), deviceName: "\(prefix)\(i)", keys: first.keyring.keys)
        team.append(
            try Vault.create(
                at: dir.path("\(prefix)\(i)"), keyring: keyring, passphrase: passphrase, strength: .interactive))
    }
    return Array(team.prefix(count))
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
