import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import CSodium
import Foundation
import Logging

/// A chunk carrier that fails once, after `failAfter` chunks were stored (a pulled stick, a dropped connection),
/// and counts every byte handed to the carrier.
final class InterruptingCarrier: ChunkCarrier, @unchecked Sendable {
    // @unchecked Sendable: one sync at a time uses it.
    let inner: any ChunkCarrier
    var failAfter: Int?
    var stored = 0
    var bytesSent: UInt64 = 0

    init(_ inner: any ChunkCarrier, failAfter: Int) {
        self.inner = inner
        self.failAfter = failAfter
    }

    struct Interrupted: Error {}

    func heldChunks(_ chunks: [ChunkRef]) async throws -> Set<[UInt8]> { try await inner.heldChunks(chunks) }
    func chunk(_ address: [UInt8]) async throws -> [UInt8]? { try await inner.chunk(address) }
    func discardDamaged(_ address: [UInt8], copy: [UInt8]) async -> Bool {
        await inner.discardDamaged(address, copy: copy)
    }
    func storeChunk(_ address: [UInt8], sealed: [UInt8]) async throws {
        bytesSent += UInt64(sealed.count)
        try await inner.storeChunk(address, sealed: sealed)
        stored += 1
        if let limit = failAfter, stored >= limit {
            failAfter = nil
            throw Interrupted()  // the chunk got there, the answer did not: the worst moment to be cut off
        }
    }
}

/// Current resident memory in MiB (VmRSS).
func residentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}

/// B8: attachments. Attach and extract `mib` MiB against libsodium's raw secretstream over the same bytes in the
/// same run; the chunk size measured; and a sync of the file through a sync file and a relay, each interrupted once.
func measureAttachments(bench: Bench, mib: Int, log: (String) -> Void) async throws -> [Row] {
    var rows: [Row] = []
    let size = mib << 20
    let file = bench.root.appendingPathComponent("b8.bin")
    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
    let out = try FileHandle(forWritingTo: file)
    var seed = [UInt8](repeating: 7, count: 32)
    for i in 0..<mib {
        seed[0] = UInt8(i & 0xFF)
        seed[1] = UInt8(i >> 8 & 0xFF)
        try out.write(contentsOf: Sodium.deterministicBytes(1 << 20, seed: seed))
    }
    try out.close()
    log("B8: \(mib) MiB test file written")

    // Baseline: raw secretstream (XChaCha20-Poly1305) over the same bytes, read in 1 MiB pieces, in memory.
    let raw = try seconds {
        var state = crypto_secretstream_xchacha20poly1305_state()
        var header = [UInt8](repeating: 0, count: Int(crypto_secretstream_xchacha20poly1305_HEADERBYTES))
        let key = Sodium.randomBytes(Int(crypto_secretstream_xchacha20poly1305_KEYBYTES))
        _ = crypto_secretstream_xchacha20poly1305_init_push(&state, &header, key)
        let handle = try FileHandle(forReadingFrom: file)
        var cipher = [UInt8](repeating: 0, count: (1 << 20) + Int(crypto_secretstream_xchacha20poly1305_ABYTES))
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
            let bytes = Array(piece)
            var length: UInt64 = 0
            _ = crypto_secretstream_xchacha20poly1305_push(
                &state, &cipher, &length, bytes, UInt64(bytes.count), nil, 0, 0)
        }
        try handle.close()
    }
    let rawRate = Double(size) / 1e6 / raw

    // Attach and extract the whole file with the chosen chunk size.
    let vault = try bench.makeVault("b8-a")
    let record = try vault.createRecord(kind: "testimony", fields: [("witness", "W-1")], tags: [], seal: true)
    resetPeakMemory()
    let before = residentMiB()
    var info: AttachmentInfo?
    let attach = try seconds {
        let handle = try FileHandle(forReadingFrom: file)
        // What `amanat attach FILE` reads with (the benchmark measures the command's own path).
        var source = FileDescriptorSource(fd: handle.fileDescriptor, name: "b8.bin")
        let stored = try vault.storeFile(from: &source, name: "b8.bin", note: "")
        info = try vault.attach(record: record, spec: stored.spec)
        try handle.close()
    }
    let attachGrowth = peakMemoryMiB() - before
    resetPeakMemory()
    let before2 = residentMiB()
    let extracted = bench.root.appendingPathComponent("b8-out.bin")
    let extract = try seconds {
        _ = FileManager.default.createFile(atPath: extracted.path, contents: nil)
        let handle = try FileHandle(forWritingTo: extracted)
        try vault.extract(info!, record: record, to: handle.fileDescriptor, name: extracted.path)
        try handle.close()
    }
    let extractGrowth = peakMemoryMiB() - before2
    let same = FileManager.default.contentsEqual(atPath: file.path, andPath: extracted.path)
    try? FileManager.default.removeItem(at: extracted)
    // Chunk size: attach 256 MiB (at most the file) with each candidate size, after the attach and extract above
    // and keeping the vaults until the end. This file system (ext4 without a journal) skips every inode freed in
    // the last minutes when it creates a file, one lookup each: deleting the probes' 5,440 chunk files before the
    // attach measured above made its every chunk file pay for them (Docs/performance.md, B8).
    var bySize: [String: Double] = [:]
    var probeVaults: [URL] = []
    defer { for directory in probeVaults { try? FileManager.default.removeItem(at: directory) } }
    let probe = min(size, 256 << 20)
    for chunkSize in [64 << 10, 256 << 10, 1 << 20, 4 << 20] {
        let vault = try bench.makeVault("b8-size-\(chunkSize)")
        let t = try seconds {
            let handle = try FileHandle(forReadingFrom: file)
            var source = LimitedSource(
                inner: FileDescriptorSource(fd: handle.fileDescriptor, name: "probe"), remaining: probe)
            _ = try vault.storeFile(from: &source, name: "probe", note: "", chunkSize: UInt32(chunkSize))
            try handle.close()
        }
        bySize["attach_mb_per_s_chunk_\(chunkSize >> 10)k"] = Double(probe) / 1e6 / t
        probeVaults.append(vault.directory)
        log("B8: chunk size \(chunkSize >> 10) KiB: \(String(format: "%.0f", Double(probe) / 1e6 / t)) MB/s")
    }

    let attachRate = Double(size) / 1e6 / attach
    let extractRate = Double(size) / 1e6 / extract
    let ratio = min(attachRate, extractRate) / rawRate
    let growth = max(attachGrowth, extractGrowth)
    rows.append(
        Row(
            id: "B8", workload: "attachments: \(mib) MiB attach and extract (1 MiB chunks)",
            status: same ? "measured" : "FAILED: extract differs",
            figures: bySize.merging([
                "attach_mb_per_s": attachRate, "extract_mb_per_s": extractRate, "raw_secretstream_mb_per_s": rawRate,
                "attach_rss_growth_mib": attachGrowth, "extract_rss_growth_mib": extractGrowth,
            ]) { a, _ in a },
            ratio: ratio, goal: "≥ 0.5 of raw secretstream; RSS growth < 64 MiB",
            met: same && ratio >= 0.5 && growth < 64, peak_rss_mib: peakMemoryMiB(),
            note: "ratio: the slower of attach and extract against in-memory secretstream over the same bytes"))

    // Sync through a sync file and through a relay, each cut off once halfway.
    var logger = Logger(label: "bench-relay")
    logger.logLevel = .error
    let relayDir = bench.root.appendingPathComponent("b8-relay")
    try FileManager.default.createDirectory(at: relayDir, withIntermediateDirectories: true)
    let relay = try await RunningRelay.start(RelayServer(store: try RelayStore(directory: relayDir), logger: logger))
    let url = "http://127.0.0.1:\(relay.port)"
    let chunks = Int(info!.chunkCount)
    let chunkBytes = UInt64(AttachmentSpec.defaultChunkSize) + UInt64(ChunkKeys.overhead)
    for carrierName in ["sync file", "relay"] {
        resetPeakMemory()
        let sealedTotal = UInt64(size) + UInt64(chunks * ChunkKeys.overhead)
        var first: UInt64 = 0
        var second = ChunkSyncReport()
        var pulled = ChunkSyncReport()
        let member = try bench.member(of: vault, "b8-member-\(carrierName == "relay" ? "r" : "f")")
        let time: Double
        if carrierName == "sync file" {
            let stick = bench.root.appendingPathComponent("b8.amanat-sync")
            let carrier = try FileCarrier(url: stick, vaultID: vault.vaultID)
            _ = try await SyncSession(vault: vault, carrier: carrier).run()
            time = try await secondsAsync {
                let cut = InterruptingCarrier(carrier, failAfter: chunks / 2)
                _ = try? await ChunkSync(vault: vault, carrier: cut).run()
                first = cut.bytesSent
                second = try await ChunkSync(vault: vault, carrier: carrier).run()
            }
            _ = try await SyncSession(vault: member, carrier: carrier).run()
            pulled = try await ChunkSync(vault: member, carrier: carrier).run()
        } else {
            time = try await secondsAsync {
                try await HTTPCarrier.with(
                    url: url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device
                ) { carrier in
                    _ = try await ExchangeSession(vault: vault, carrier: carrier).run()
                    let cut = InterruptingCarrier(carrier, failAfter: chunks / 2)
                    _ = try? await ChunkSync(vault: vault, carrier: cut).run()
                    first = cut.bytesSent
                    second = try await ChunkSync(vault: vault, carrier: carrier).run()
                }
            }
            try await HTTPCarrier.with(
                url: url, vaultID: member.vaultID, key: member.relaySigningKey, device: member.keyring.device
            ) { carrier in
                _ = try await ExchangeSession(vault: member, carrier: carrier).run()
                pulled = try await ChunkSync(vault: member, carrier: carrier).run()
            }
        }
        let resent = first + second.pushedBytes - min(first + second.pushedBytes, sealedTotal)
        let complete = pulled.missingChunks == 0 && pulled.pulled == chunks
        rows.append(
            Row(
                id: "B8", workload: "attachments: \(mib) MiB through a \(carrierName), interrupted once halfway",
                status: complete ? "measured" : "FAILED: the other device is missing chunks",
                figures: [
                    "push_mb_per_s": Double(sealedTotal) / 1e6 / time, "bytes_sent_again": Double(resent),
                    "chunks_after_interruption": Double(second.pushed), "chunks": Double(chunks),
                ],
                ratio: Double(resent) / Double(chunkBytes), goal: "bytes sent again ≤ 1 chunk per interruption",
                met: complete && resent <= chunkBytes, peak_rss_mib: peakMemoryMiB(),
                note: "ratio: bytes sent again in chunks"))
        log("B8: \(carrierName): \(second.pushed) chunks after the interruption, \(resent) bytes sent again")
    }
    await relay.stop()
    return rows
}

/// At most `remaining` bytes of another source.
struct LimitedSource<Inner: ByteSource>: ByteSource {
    var inner: Inner
    var remaining: Int
    mutating func read(_ count: Int) throws -> [UInt8] {
        guard remaining > 0 else { return [] }
        let bytes = try inner.read(min(count, remaining))
        remaining -= bytes.count
        return bytes
    }
}
