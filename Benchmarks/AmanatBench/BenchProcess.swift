import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// Each row in its own process, and the steps whose memory is measured alone (issue 16, item 1).
///
/// `amanat-bench` run by `make bench` is the parent: it starts itself once per row (AMANAT_BENCH_CHILD=1,
/// AMANAT_BENCH_ONLY=row) and gathers the rows each child writes, so a row's peak RSS is that row's own and never
/// what an earlier row left in the allocator. Inside a row, a step a user waits for alone (an import into a new
/// member's vault, a `list`) runs in a process of its own too (AMANAT_BENCH_STEP), so its peak RSS is the step's.
enum BenchProcess {
    static let environment = ProcessInfo.processInfo.environment
    static var isChild: Bool { environment["AMANAT_BENCH_CHILD"] != nil }

    /// Runs this binary again with `extra` added to the environment; returns what it printed on stdout.
    static func runSelf(_ extra: [String: String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var env = environment
        for (key, value) in extra { env[key] = value }
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchFailure("amanat-bench \(extra) exited with \(process.terminationStatus)")
        }
        return data
    }

    /// The rows of `id`, measured by a child process.
    static func runRow(_ id: String, root: URL) throws -> [Row] {
        let out = root.appendingPathComponent("rows-\(id).json")
        _ = try runSelf(["AMANAT_BENCH_CHILD": "1", "AMANAT_BENCH_ONLY": id, "AMANAT_BENCH_OUT": out.path])
        return try JSONDecoder().decode([Row].self, from: Data(contentsOf: out))
    }

    /// What a step process measured.
    struct StepResult: Codable {
        var seconds: [Double]
        var count: Int
        var peakRSSMiB: Double
        var digest: String
    }

    /// Runs step `name` on the vault in `vault` (with `extra` settings) in a process of its own.
    static func step(_ name: String, vault: URL, extra: [String: String] = [:]) throws -> StepResult {
        var settings = extra
        settings["AMANAT_BENCH_STEP"] = name
        settings["AMANAT_BENCH_VAULT"] = vault.path
        return try JSONDecoder().decode(StepResult.self, from: runSelf(settings))
    }

    /// In a step process: runs the step named by AMANAT_BENCH_STEP, prints its result, and says so.
    static func runStepIfAsked(bench: Bench) async throws -> Bool {
        guard let name = environment["AMANAT_BENCH_STEP"], let path = environment["AMANAT_BENCH_VAULT"] else {
            return false
        }
        // The unlock (Argon2id, 64 MiB) is not the step's: the peak is counted from after it.
        let vault = try Vault.open(at: URL(fileURLWithPath: path), passphrase: bench.passphrase)
        resetPeakMemory()
        var result = StepResult(seconds: [], count: 0, peakRSSMiB: 0, digest: "")
        switch name {
        case "import":
            // A new member's first import of a sync file, then the same again (nothing new).
            let file = URL(fileURLWithPath: environment["AMANAT_BENCH_SYNC"] ?? "")
            let carrier = try FileCarrier(url: file, vaultID: vault.vaultID, create: false)
            for _ in 0..<2 {
                let start = ContinuousClock.now
                let report = try await SyncSession(vault: vault, carrier: carrier).run(push: false)
                result.seconds.append(elapsed(since: start))
                result.count = max(result.count, report.pulled)
            }
        case "list":
            // `list`: every visible record decrypted and sorted; the first time, then the best of three.
            for _ in 0..<4 {
                let start = ContinuousClock.now
                result.count = try vault.visibleRecords().count
                result.seconds.append(elapsed(since: start))
            }
        default:
            throw BenchFailure("unknown step \(name)")
        }
        result.peakRSSMiB = peakMemoryMiB()
        result.digest = Hex.encode(try vault.status().stateDigest)
        FileHandle.standardOutput.write(try JSONEncoder().encode(result))
        return true
    }

    static func elapsed(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The cost of the cryptography alone for a row's data (issue 16, item 2): what the row could reach if everything
/// but the cryptography took no time. Each is measured with libsodium on data of the row's sizes, in the same run.
enum CryptoLimit {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return BenchProcess.elapsed(since: start)
    }

    /// B1, per record: the change sealed (XChaCha20-Poly1305 under a per-envelope key derived with BLAKE2b), its
    /// ciphertext and envelope hashed (BLAKE2b), the envelope signed (Ed25519), and the record's projection row
    /// sealed. Returns records per second.
    static func insert(records: Int, bodySize: Int) throws -> Double {
        let key = SecureBytes(Sodium.randomBytes(32))
        let signer = SigningKeyPair.generate()
        let change = Sodium.randomBytes(bodySize + 48)
        let row = Sodium.randomBytes(bodySize + 64)
        let header = Sodium.randomBytes(125)
        let time = try seconds {
            for seq in 0..<records {
                let envelopeKey = BLAKE2b.deriveKey(from: key, message: withUnsafeBytes(of: seq) { Array($0) })
                let sealed = try AEAD.seal(change, additionalData: header, nonce: AEAD.randomNonce(), key: envelopeKey)
                let ciphertextHash = BLAKE2b.hash(sealed)
                let signature = signer.sign(header + ciphertextHash)
                _ = BLAKE2b.hash(header + sealed + signature)
                _ = try AEAD.seal(row, additionalData: [], nonce: AEAD.randomNonce(), key: key)
            }
        }
        return Double(records) / time
    }

    /// B2, per change: the envelope's key derived and its ciphertext opened, its ciphertext and envelope hashed, one
    /// signature verified per 1000 (one per run of a device's chain in a batch), and the projection row sealed
    /// again once per record touched in each batch of 1000. Returns changes per second.
    static func importing(changes: Int, records: Int, envelopeSize: Int) throws -> Double {
        let key = SecureBytes(Sodium.randomBytes(32))
        let signer = SigningKeyPair.generate()
        let header = Sodium.randomBytes(125)
        let body = Sodium.randomBytes(max(envelopeSize - 125 - 64 - 16, 1))
        let sealed = try AEAD.seal(body, additionalData: header, nonce: Array(repeating: 1, count: 24), key: key)
        let signature = signer.sign(header + BLAKE2b.hash(sealed))
        let row = Sodium.randomBytes(320)
        // Records touched per batch of 1000 changes: as many as the stream spreads over, at most 1000.
        let rowsPerBatch = min(1000, records)
        let time = try seconds {
            for n in 0..<changes {
                _ = BLAKE2b.deriveKey(from: key, message: withUnsafeBytes(of: n) { Array($0) })
                _ = try AEAD.open(sealed, additionalData: header, nonce: Array(repeating: 1, count: 24), key: key)
                let ciphertextHash = BLAKE2b.hash(sealed)
                _ = BLAKE2b.hash(header + sealed + signature)
                if n % 1000 == 0 {
                    _ = SigningKeyPair.verify(signature, of: header + ciphertextHash, publicKey: signer.publicKey)
                    for _ in 0..<rowsPerBatch {
                        _ = try AEAD.seal(row, additionalData: [], nonce: AEAD.randomNonce(), key: key)
                    }
                }
            }
        }
        return Double(changes) / time
    }

    /// B9, per record: one row of `rowSize` bytes opened (XChaCha20-Poly1305), on one core. Returns the seconds for
    /// `records` rows.
    static func list(records: Int, rowSize: Int) throws -> Double {
        let key = SecureBytes(Sodium.randomBytes(32))
        let nonce = AEAD.randomNonce()
        let sealed = try AEAD.seal(Sodium.randomBytes(max(rowSize - 40, 1)), additionalData: [], nonce: nonce, key: key)
        return try seconds {
            for _ in 0..<records { _ = try AEAD.open(sealed, additionalData: [], nonce: nonce, key: key) }
        }
    }
}

/// A CRDT peer measured beside Amanat (issue 16, item 4): Loro, from PyPI, applying the same stream of changes as
/// B2 with no encryption, signatures or storage (Benchmarks/Peers/loro_peer.py). `make bench` installs it; when it
/// cannot be had, the row says so instead of a figure.
enum LoroPeer {
    struct Outcome {
        var changesPerSecond: Double?
        var note: String
    }

    static func run(records: Int, edits: Int) -> Outcome {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Peers/loro_peer.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, String(records), String(edits)]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return Outcome(changesPerSecond: nil, note: "Loro peer skipped: python3 cannot be run (\(error)).")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let result = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return Outcome(changesPerSecond: nil, note: "Loro peer skipped: its script failed.") }
        if let skipped = result["skipped"] as? String {
            return Outcome(changesPerSecond: nil, note: "Loro peer skipped: \(skipped).")
        }
        guard result["state_ok"] as? Bool == true, let rate = result["changes_per_s"] as? Double else {
            return Outcome(
                changesPerSecond: nil, note: "Loro peer skipped: its import did not reach the expected state.")
        }
        let version = result["loro_version"] as? String ?? "?"
        return Outcome(
            changesPerSecond: rate,
            note:
                "Loro \(version) (Python) imports the same \(records + edits) changes at \(Int(rate)) changes/s in memory, with no encryption, signatures or storage."
        )
    }
}
