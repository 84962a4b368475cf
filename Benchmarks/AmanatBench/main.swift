// amanat-bench: every figure as a ratio against a baseline measured in the same run (Docs/performance.md).
// Run with `make bench` (release build). AMANAT_BENCH_SCALE=0.1 shrinks every workload for a quick look.
import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import Foundation
import GRDB
import Logging

let scale = Double(ProcessInfo.processInfo.environment["AMANAT_BENCH_SCALE"] ?? "") ?? 1.0
func scaled(_ n: Int) -> Int { max(1, Int(Double(n) * scale)) }
/// AMANAT_BENCH_ONLY=B1,B9 runs only those rows.
let only = Set((ProcessInfo.processInfo.environment["AMANAT_BENCH_ONLY"] ?? "").split(separator: ",").map(String.init))
/// Whether row `id` was asked for (B4 is measured with B2).
func selected(_ id: String) -> Bool { only.isEmpty || only.contains(id) || (id == "B2" && only.contains("B4")) }
/// Whether this process measures row `id`: only a child does (BenchProcess), the parent gathers.
func runs(_ id: String) -> Bool { BenchProcess.isChild && selected(id) }

// A step measured alone (an import, a list) runs in a process of its own and ends here.
if try await BenchProcess.runStepIfAsked(bench: Bench(root: FileManager.default.temporaryDirectory)) { exit(0) }

// A row's process works inside the parent's folder (where it writes its rows), so whatever happens to it, the
// parent's removal at the end takes its files too: a full run writes several GiB.
let root =
    (BenchProcess.isChild
    ? URL(fileURLWithPath: ProcessInfo.processInfo.environment["AMANAT_BENCH_OUT"] ?? "rows.json")
        .deletingLastPathComponent() : FileManager.default.temporaryDirectory).appendingPathComponent(
        "amanat-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
/// Removes the run's folder; AMANAT_BENCH_KEEP=1 keeps it, to run one step again on its vault (AMANAT_BENCH_STEP).
func removeRoot() {
    guard ProcessInfo.processInfo.environment["AMANAT_BENCH_KEEP"] == nil else { return log("kept \(root.path)") }
    try? FileManager.default.removeItem(at: root)
}
defer { removeRoot() }

var rows: [Row] = []

// MARK: measurement helpers

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func secondsAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

let bench = Bench(root: root)
func makeVault(_ name: String) throws -> Vault { try bench.makeVault(name) }
func member(of vault: Vault, _ name: String) throws -> Vault { try bench.member(of: vault, name) }
func fill(_ vault: Vault, records: Int, bodySize: Int) throws -> [RecordID] {
    try bench.fill(vault, records: records, bodySize: bodySize)
}
func randomRows(_ count: Int, bodySize: Int) -> [(Data, Data)] { Bench.randomRows(count, bodySize: bodySize) }
func text(_ size: Int) -> String { Bench.text(size) }

// MARK: the parent: one child process per row

if !BenchProcess.isChild {
    for id in ["B1", "B2", "B5", "B9", "B6", "B3", "B8", "B10"] where selected(id) {
        log("\(id): in a process of its own…")
        rows += try BenchProcess.runRow(id, root: root)
    }
}

// MARK: B1 — insert

for bodySize in [256, 2048] where runs("B1") {
    resetPeakMemory()
    let n = scaled(100_000)
    log("B1: inserting \(n) records of \(bodySize) B…")
    let vault = try makeVault("b1-\(bodySize)")
    let amanat = try seconds { _ = try fill(vault, records: n, bodySize: bodySize) }
    let plainRows = randomRows(n, bodySize: bodySize)
    let plain = try PlainBaseline(url: root.appendingPathComponent("b1-plain-\(bodySize).sqlite"))
    let baseline = try seconds { try plain.insert(plainRows, perTransaction: 1000) }
    let limit = try CryptoLimit.insert(records: n, bodySize: bodySize)
    let ratio = baseline / amanat
    let fraction = Double(n) / amanat / limit
    rows.append(
        Row(
            id: "B1", workload: "insert \(n) records, \(bodySize) B bodies, 1000 per transaction", status: "measured",
            figures: [
                "amanat_records_per_s": Double(n) / amanat, "plain_grdb_rows_per_s": Double(n) / baseline,
                "crypto_limit_records_per_s": limit,
            ],
            ratio: ratio, goal: "≥ 0.5; ≥ 0.7 of the crypto limit", met: ratio >= 0.5 && fraction >= 0.7,
            peak_rss_mib: peakMemoryMiB(), note: nil, limit_fraction: fraction, limit_goal: 0.7))
}

// MARK: B2 / B4 — import from a sync file, re-import; the sync file itself

if runs("B2") || runs("B4") {
    resetPeakMemory()
    let records = scaled(20_000)
    let edits = scaled(80_000)
    log("B2: building a vault of \(records) records and \(edits) edits…")
    let source = try makeVault("b2-source")
    let ids = try fill(source, records: records, bodySize: 256)
    var done = 0
    while done < edits {
        let n = min(1000, edits - done)
        try source.commitBatch(
            (0..<n).map { i in
                (
                    ids[(done + i) % ids.count],
                    [RecordOperation.set(field: "title", value: "edit \(done + i)", pred: [])]
                )
            })
        done += n
    }
    let total = records + edits
    let fileURL = root.appendingPathComponent("b2.sync")
    let writeTime = try await secondsAsync {
        _ = try await SyncSession(vault: source, carrier: try FileCarrier(url: fileURL, vaultID: source.vaultID)).run()
    }
    let carrier = try FileCarrier(url: fileURL, vaultID: source.vaultID, create: false)
    var envelopeBytes = 0
    var readAgain = 0
    let readTime = try seconds {
        var after: UInt64 = 0
        while true {
            let batch = try carrier.file.envelopes(of: source.deviceID, after: after, limit: 1000)
            guard let last = batch.last else { break }
            envelopeBytes += batch.reduce(0) { $0 + $1.encoded().count }
            readAgain += batch.count
            after = last.header.seq
        }
    }
    let fileBytes = (try FileManager.default.attributesOfItem(atPath: fileURL.path)[.size] as? Int) ?? 0
    // The import a new member waits for, in a process of its own so that its peak RSS is the import's.
    _ = try member(of: source, "b2-target")
    let step = try BenchProcess.step(
        "import", vault: root.appendingPathComponent("b2-target"), extra: ["AMANAT_BENCH_SYNC": fileURL.path])
    let importTime = step.seconds[0]
    let reimportTime = step.seconds[1]
    let limit = try CryptoLimit.importing(
        changes: total, records: records, envelopeSize: envelopeBytes / max(total, 1))
    let loro = LoroPeer.run(records: records, edits: edits)
    let plainRows = (0..<UInt64(total)).map { seq -> (Data, Data) in
        var key = Data(source.deviceID.bytes)
        withUnsafeBytes(of: seq.bigEndian) { key.append(contentsOf: $0) }
        return (key, Data(count: envelopeBytes / max(total, 1)))
    }
    let plain = try PlainBaseline(url: root.appendingPathComponent("b2-plain.sqlite"))
    let baseline = try seconds { try plain.upsert(plainRows, perTransaction: 1000) }
    let converged = step.digest == Hex.encode(try source.status().stateDigest)
    let ratio = baseline / importTime
    let fraction = Double(total) / importTime / limit
    var figures = [
        "import_changes_per_s": Double(total) / importTime, "plain_upsert_rows_per_s": Double(total) / baseline,
        "reimport_speedup": importTime / reimportTime, "reimport_s": reimportTime, "crypto_limit_changes_per_s": limit,
    ]
    if let loro = loro.changesPerSecond {
        figures["loro_changes_per_s"] = loro
        figures["amanat_vs_loro"] = Double(total) / importTime / loro
    }
    rows.append(
        Row(
            id: "B2",
            workload:
                "import \(total) changes (\(records) records) from a sync file into an empty vault, in its own process; re-import",
            status: converged ? "measured" : "FAILED: replicas differ",
            figures: figures,
            ratio: ratio, goal: "≥ 0.5 of plain upsert; ≥ 0.7 of the crypto limit; re-import ≥ 5x faster; < 256 MiB",
            met: ratio >= 0.5 && fraction >= 0.7 && importTime / reimportTime >= 5 && step.peakRSSMiB < 256,
            peak_rss_mib: step.peakRSSMiB, note: loro.note, limit_fraction: fraction, limit_goal: 0.7,
            memory_goal_mib: 256))
    let overhead = Double(fileBytes) / Double(max(envelopeBytes, 1))
    rows.append(
        Row(
            id: "B4", workload: "sync file written and read for \(total) changes", status: "measured",
            figures: [
                "file_bytes": Double(fileBytes), "envelope_bytes": Double(envelopeBytes),
                "write_mb_per_s": Double(envelopeBytes) / 1e6 / writeTime,
                "read_mb_per_s": Double(envelopeBytes) / 1e6 / readTime,
            ],
            ratio: overhead, goal: "file bytes / envelope bytes ≤ 1.1", met: overhead <= 1.1,
            peak_rss_mib: peakMemoryMiB(),
            note: nil))
}

// MARK: B5 — one change on a large vault

if runs("B5") {
    resetPeakMemory()
    let n = scaled(500_000)
    log("B5: building a vault of \(n) records…")
    let vault = try makeVault("b5")
    let ids = try fill(vault, records: n, bodySize: 256)
    let plain = try PlainBaseline(url: root.appendingPathComponent("b5-plain.sqlite"))
    let plainRows = randomRows(n, bodySize: 256)
    try plain.insert(plainRows, perTransaction: 5000)
    var amanat: [Double] = []
    var baseline: [Double] = []
    for i in 0..<200 {
        let id = ids[(i * 7919) % ids.count]
        amanat.append(
            try seconds {
                try vault.commit(record: id) { s in [s!.setOperation(field: "body", value: "edited \(i)")] }
            })
        let row = plainRows[(i * 7919) % plainRows.count]
        baseline.append(try seconds { try plain.upsert([(row.0, Data(Sodium.randomBytes(256)))], perTransaction: 1) })
    }
    let median = { (xs: [Double]) in xs.sorted()[xs.count / 2] }
    let ratio = median(amanat) / median(baseline)
    rows.append(
        Row(
            id: "B5", workload: "one change applied to a vault of \(n) records (median of 200)", status: "measured",
            figures: ["amanat_ms": median(amanat) * 1000, "plain_upsert_ms": median(baseline) * 1000],
            ratio: ratio, goal: "≤ 3x", met: ratio <= 3, peak_rss_mib: peakMemoryMiB(), note: nil))
}

// MARK: B9 — list

if runs("B9") {
    resetPeakMemory()
    let n = scaled(100_000)
    log("B9: list on \(n) records…")
    let vault = try makeVault("b9")
    _ = try fill(vault, records: n, bodySize: 256)
    // `list` in a process of its own, as a user runs it: its peak RSS is the list's.
    let step = try BenchProcess.step("list", vault: root.appendingPathComponent("b9"))
    let count = step.count
    let firstList = step.seconds[0]
    let amanat = step.seconds.dropFirst().min()!
    // The same number of rows, each the size of a record's state plus a nonce and tag: what a plain store keeps for
    // the same records. The vault's rows are larger (the view repeats the displayed values, then padding): the read
    // of rows of their stored size is a figure beside it, to tell what the extra bytes cost from the rest.
    /// The best of four reads of `n` plain rows of `rowSize` bytes, in a file of their own.
    func plainRead(_ file: String, rowSize: Int) throws -> Double {
        let plain = try PlainBaseline(url: root.appendingPathComponent(file))
        try plain.insert(randomRows(n, bodySize: rowSize), perTransaction: 5000)
        return try (0..<4).map { _ in try seconds { _ = try plain.readAll() } }.min()!
    }
    let encryptedRowSize = try vault.allStates().first.map { $0.encoded().count + 40 } ?? 300
    let baseline = try plainRead("b9-plain.sqlite", rowSize: encryptedRowSize)
    var readOnly = Configuration()
    readOnly.readonly = true
    let storedRowSize =
        try DatabaseQueue(
            path: root.appendingPathComponent("b9").appendingPathComponent(Vault.databaseFileName).path,
            configuration: readOnly
        ).read { try Int.fetchOne($0, sql: "SELECT CAST(avg(length(body)) AS INTEGER) FROM record") } ?? 0
    let storedBaseline = try plainRead("b9-plain-stored-size.sqlite", rowSize: storedRowSize)
    let limit = try CryptoLimit.list(records: n, rowSize: encryptedRowSize)
    let ratio = amanat / baseline
    let fraction = limit / amanat
    rows.append(
        Row(
            id: "B9", workload: "list on a vault of \(n) records, in its own process (KDF excluded; best of 3, warm)",
            status: count == n ? "measured" : "FAILED",
            figures: [
                "amanat_ms": amanat * 1000, "amanat_first_ms": firstList * 1000, "plain_read_ms": baseline * 1000,
                "crypto_limit_ms": limit * 1000, "stored_row_bytes": Double(storedRowSize),
                "plain_read_stored_size_ms": storedBaseline * 1000,
            ],
            ratio: ratio, goal: "≤ 3x; ≥ 0.7 of the crypto limit; < 128 MiB",
            met: ratio <= 3 && fraction >= 0.7 && step.peakRSSMiB < 128, peak_rss_mib: step.peakRSSMiB, note: nil,
            limit_fraction: fraction, limit_goal: 0.7, memory_goal_mib: 128))
}

// MARK: B6 — export a 100 MiB bundle

if runs("B6") {
    resetPeakMemory()
    let records = max(1, scaled(30))
    log("B6: exporting a bundle of \(records) testimonies of 1 MiB…")
    let vault = try makeVault("b6")
    let narrative = text(1 << 20)
    var states: [RecordState] = []
    for i in 0..<records {
        _ = try vault.createRecord(
            kind: "testimony", fields: [("witness", "W-\(i)"), ("narrative", narrative)], tags: [], seal: true)
    }
    states = try vault.allStates()
    let identity = AgeX25519Identity.generate()
    let out = root.appendingPathComponent("b6.age")
    var archiveBytes = 0
    var tar: [UInt8] = []
    // What `amanat export` runs: the archive's documents, streamed with their padding into the age encryptor.
    var archive: TarArchive?
    let amanat = try seconds {
        archive = try BundleExporter.archive(from: vault, records: states, now: Date())
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        let encryptor = try AgeEncryptor(recipients: [identity.recipient]) { try handle.write(contentsOf: $0) }
        try BundleExporter.stream(archive!, attachments: [], vault: vault) {
            try encryptor.write($0)
            archiveBytes += $0.count
        }
        try encryptor.finish()
        try handle.close()
    }
    // The same bytes as one tar file, for the `age` tool and the limit.
    tar = BundleExporter.padded(archive!.encoded())
    precondition(tar.count == archiveBytes, "the streamed export and the padded archive differ in length")
    let tarURL = root.appendingPathComponent("b6.tar")
    try Data(tar).write(to: tarURL)
    var ageTime: Double?
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/age") {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/age")
        process.arguments = [
            "-r", identity.recipient.stringValue, "-o", root.appendingPathComponent("b6-tool.age").path, tarURL.path,
        ]
        ageTime = try seconds {
            try process.run()
            process.waitUntilExit()
        }
    }
    // The limit: our own age encryption of the same bytes, nothing else.
    let ageEncryptTime = try seconds {
        let encryptor = try AgeEncryptor(recipients: [identity.recipient]) { _ in }
        var offset = 0
        while offset < tar.count {
            let end = min(offset + (1 << 20), tar.count)
            try encryptor.write(Array(tar[offset..<end]))
            offset = end
        }
        try encryptor.finish()
    }
    let mb = Double(archiveBytes) / 1e6
    let ratio = ageTime.map { (mb / amanat) / (mb / $0) }
    rows.append(
        Row(
            id: "B6", workload: "export a bundle of \(String(format: "%.0f", Double(archiveBytes) / 1_048_576)) MiB",
            status: ageTime == nil ? "measured (age tool missing: no baseline)" : "measured",
            figures: [
                "amanat_mb_per_s": mb / amanat, "age_tool_mb_per_s": ageTime.map { mb / $0 } ?? 0,
                "crypto_limit_mb_per_s": mb / ageEncryptTime,
            ],
            ratio: ratio, goal: "≥ 1.0 (full export vs the age tool encrypting the same tar)",
            met: ratio.map { $0 >= 1 },
            peak_rss_mib: peakMemoryMiB(),
            note: "amanat's time includes reading, decrypting and re-encoding the records",
            limit_fraction: ageEncryptTime / amanat))
}

// MARK: B3 — HTTP sync of replicas that differ by d changes

if runs("B3") {
    rows += try await measureHTTPSync(bench: bench, sizes: [scaled(10_000), scaled(100_000)], log: log)
}

// MARK: B8 — attachments

if runs("B8") {
    rows += try await measureAttachments(bench: bench, mib: scaled(1024), log: log)
}

// MARK: B10 — wipe a vault of 1 GiB

if runs("B10") {
    resetPeakMemory()
    let target = Int64(Double(1 << 30) * scale)
    log("B10: filling a vault with real records until its database holds \(target >> 20) MiB…")
    let vault = try makeVault("b10")
    let database = vault.directory.appendingPathComponent(Vault.databaseFileName)
    func databaseBytes() -> Int64 {
        ["", "-wal"].reduce(Int64(0)) { total, suffix in
            total + ((try? FileManager.default.attributesOfItem(atPath: database.path + suffix)[.size] as? Int64) ?? 0)
        }
    }
    // Statements of 64 KiB, 100 per transaction: each adds its envelope and its encrypted projection row.
    while databaseBytes() < target { _ = try fill(vault, records: 100, bodySize: 65_536) }
    let filled = databaseBytes()
    let directory = vault.directory
    var report = WipeReport()
    let amanat = try seconds { report = try Vault.wipe(at: directory) }
    // Baseline: deleting one plain file of the same size on the same disk.
    let plainFile = root.appendingPathComponent("b10-plain.bin")
    _ = FileManager.default.createFile(atPath: plainFile.path, contents: nil)
    let handle = try FileHandle(forWritingTo: plainFile)
    let chunk = Data(Sodium.randomBytes(1 << 20))
    var written: Int64 = 0
    while written < filled {
        try handle.write(contentsOf: chunk)
        written += Int64(chunk.count)
    }
    try handle.synchronize()
    try handle.close()
    let baseline = try seconds { try FileManager.default.removeItem(at: plainFile) }
    let keysMs = report.secondsToDestroyKeys * 1000
    rows.append(
        Row(
            id: "B10",
            workload:
                "wipe a vault whose database holds \(filled >> 20) MiB of real 64 KiB statements: time until the keys are destroyed (keyring overwritten, synced, deleted)",
            status: report.complete ? "measured" : "FAILED",
            figures: [
                "keys_destroyed_ms": keysMs, "whole_wipe_ms": amanat * 1000, "plain_delete_ms": baseline * 1000,
            ],
            ratio: amanat / max(baseline, 1e-6), goal: "keys destroyed < 100 ms", met: keysMs < 100,
            peak_rss_mib: peakMemoryMiB(), note: "ratio: whole wipe against deleting one plain file of the same size"))
}

// MARK: a child writes its rows for the parent and ends

if BenchProcess.isChild {
    let out = URL(fileURLWithPath: ProcessInfo.processInfo.environment["AMANAT_BENCH_OUT"] ?? "rows.json")
    try JSONEncoder().encode(rows).write(to: out)
    removeRoot()  // exit() skips the `defer` above
    exit(0)
}

// MARK: not built yet

for (id, workload, goal) in [
    ("B7", "relay with 50 concurrent clients for 20 s (measured by `make load`)", "0 errors, p99 < 100 ms")
] {
    rows.append(
        Row(
            id: id, workload: workload, status: "not built yet", figures: [:], ratio: nil, goal: goal, met: nil,
            peak_rss_mib: 0, note: nil))
}

// MARK: report

rows.sort { $0.id < $1.id }
print("| # | workload | ratio | goal | met | figures | peak RSS MiB |")
print("|---|---|---:|---|---|---|---:|")
for row in rows {
    let figures = row.figures.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3g", $0.value))" }.joined(
        separator: ", ")
    let ratio = row.ratio.map { String(format: "%.2f", $0) } ?? "—"
    let met = row.met.map { $0 ? "yes" : "NO" } ?? "—"
    print(
        "| \(row.id) | \(row.workload) | \(row.status == "not built yet" ? "not built yet" : ratio) | \(row.goal) | \(met) | \(figures) | \(String(format: "%.0f", row.peak_rss_mib)) |"
    )
}
struct Report: Encodable {
    var date: String
    var scale: Double
    var cores: Int
    var memory_gib: Double
    var rows: [Row]
}
let report = Report(
    date: Date().formatted(.iso8601), scale: scale, cores: ProcessInfo.processInfo.activeProcessorCount,
    memory_gib: Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824, rows: rows)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
let output = URL(fileURLWithPath: ProcessInfo.processInfo.environment["AMANAT_BENCH_OUT"] ?? "Benchmarks/results.json")
try encoder.encode(report).write(to: output)
log("wrote \(output.path)")
try? FileManager.default.removeItem(at: root)
