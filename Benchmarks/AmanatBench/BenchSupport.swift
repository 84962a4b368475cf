import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// One row of the results table.
struct Row: Codable, Sendable {

    var id: String
    var workload: String
    var status: String
    var figures: [String: Double]
    var ratio: Double?
    var goal: String
    var met: Bool?
    var peak_rss_mib: Double
    var note: String?
    /// The row's speed as a fraction of what its cryptography alone allows (``CryptoLimit``), where measured.
    var limit_fraction: Double? = nil
    /// The least fraction of the cryptographic limit the row should reach.
    var limit_goal: Double? = nil
    /// The most peak RSS the row (or its measured step) should need, in MiB.
    var memory_goal_mib: Double? = nil
}

/// Vault-making helpers shared by the benchmarks; every vault lives under `root`.
struct Bench: Sendable {
    let root: URL
    let passphrase = SecureBytes(Array("bench".utf8))

    func makeVault(_ name: String) throws -> Vault {
        try Vault.create(
            at: root.appendingPathComponent(name), passphrase: passphrase, deviceName: name, strength: .interactive)
    }

    /// A new member of `vault`'s team, invited and joined as `amanat invite` and `join` do.
    func member(of vault: Vault, _ name: String) throws -> Vault {
        try Vault.join(
            try vault.invite(role: .member, validFor: 86_400), at: root.appendingPathComponent(name),
            passphrase: passphrase, deviceName: name, strength: .interactive)
    }

    /// Adds `records` statements with a body of `bodySize` bytes, 1000 per transaction; returns their ids.
    func fill(_ vault: Vault, records: Int, bodySize: Int) throws -> [RecordID] {
        var ids: [RecordID] = []
        ids.reserveCapacity(records)
        let body = Self.text(bodySize)
        var done = 0
        while done < records {
            let n = min(1000, records - done)
            let batch = (0..<n).map { _ in
                (
                    RecordID?.none,
                    [RecordOperation.create(kind: "statement"), .set(field: "body", value: body, pred: [])]
                )
            }
            ids += try vault.commitBatch(batch)
            done += n
        }
        return ids
    }

    static func randomRows(_ count: Int, bodySize: Int) -> [(Data, Data)] {
        (0..<count).map { _ in (Data(Sodium.randomBytes(16)), Data(Sodium.randomBytes(bodySize))) }
    }

    static func text(_ size: Int) -> String {
        String(String(repeating: "abcdefghij", count: size / 10 + 1).prefix(size))
    }
}

/// Resets the kernel's peak-RSS counter for this process (Linux: /proc/self/clear_refs, value 5).
func resetPeakMemory() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }

/// Peak resident memory since the last reset, in MiB (VmHWM).
func peakMemoryMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}
