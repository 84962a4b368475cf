import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// A fresh temporary directory, removed when released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-sync-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> URL { url.appendingPathComponent(name) }
}

let passphrase = SecureBytes(Array("test passphrase".utf8))

/// A team of `count` member devices of one vault, each in its own vault directory.
func makeTeam(_ count: Int, in dir: TemporaryDirectory) throws -> [Vault] {
    let first = try Vault.create(at: dir.path("r0"), passphrase: passphrase, deviceName: "r0", strength: .interactive)
    var team = [first]
    for i in 1..<count {
        let keyring = Keyring(
            vaultID: first.vaultID, device: .generate(), deviceName: "r\(i)", keys: first.keyring.keys)
        team.append(
            try Vault.create(at: dir.path("r\(i)"), keyring: keyring, passphrase: passphrase, strength: .interactive))
    }
    return team
}

/// Syncs `vault` with the sync file at `url`, both ways.
@discardableResult
func sync(_ vault: Vault, _ url: URL, batchSize: Int = 1000) async throws -> SyncReport {
    let carrier = try FileCarrier(url: url, vaultID: vault.vaultID)
    return try await SyncSession(vault: vault, carrier: carrier, batchSize: batchSize).run()
}

/// A small deterministic generator (SplitMix64), so a failing seed can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
