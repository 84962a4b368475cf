import AmanatCore
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import Foundation
import Logging

/// B3: two replicas share `n` records and differ by d = 0 / 10 / 1000 changes; each syncs through a relay on
/// loopback behind a byte-counting proxy. Reports bytes on the wire both ways against the missing envelopes' bytes,
/// and round trips.
func measureHTTPSync(bench: Bench, sizes: [Int], log: (String) -> Void) async throws -> [Row] {
    var rows: [Row] = []
    var logger = Logger(label: "bench-relay")
    logger.logLevel = .error
    for n in sizes {
        resetPeakMemory()
        log("B3: two replicas sharing \(n) records through a relay…")
        let a = try bench.makeVault("b3-a-\(n)")
        let b = try bench.member(of: a, "b3-b-\(n)")
        let ids = try bench.fill(a, records: n, bodySize: 256)
        let relayDir = bench.root.appendingPathComponent("b3-relay-\(n)")
        try FileManager.default.createDirectory(at: relayDir, withIntermediateDirectories: true)
        let relay = try await RunningRelay.start(
            RelayServer(store: try RelayStore(directory: relayDir), logger: logger))
        let direct = "http://127.0.0.1:\(relay.port)"
        _ = try await syncCountingRoundTrips(a, direct)
        _ = try await syncCountingRoundTrips(b, direct)
        // A learns of B's join too: at d = 0 both replicas hold everything.
        _ = try await syncCountingRoundTrips(a, direct)
        let proxy = try WireProxy(targetPort: relay.port)
        let viaProxy = "http://127.0.0.1:\(proxy.port)"
        for d in [0, 10, 1000] {
            let before = try a.versionVector()[a.deviceID]?.seq ?? 0
            if d > 0 {
                try a.commitBatch(
                    (0..<d).map { i in
                        (
                            ids[(i * 7919) % ids.count],
                            [RecordOperation.set(field: "title", value: "edit \(d)-\(i)", pred: [])]
                        )
                    })
            }
            let missing = try a.envelopes(of: a.deviceID, after: before, limit: d + 1).reduce(0) {
                $0 + $1.encoded().count
            }
            proxy.reset()
            let pushTrips = try await syncCountingRoundTrips(a, viaProxy)
            let push = proxy.totals
            proxy.reset()
            let pullTrips = try await syncCountingRoundTrips(b, viaProxy)
            let pull = proxy.totals
            let converged = try a.status().stateDigest == b.status().stateDigest
            let worst = max(push.up + push.down, pull.up + pull.down)
            // An up-to-date sync is what a device does most (at every `amanat sync`): its time, the median of 9,
            // grows with the vault only where something reads every envelope.
            var upToDate: [Double] = []
            if d == 0 {
                for _ in 0..<9 {
                    upToDate.append(try await secondsAsync { _ = try await syncCountingRoundTrips(a, direct) } * 1000)
                }
                upToDate.sort()
            }
            let met =
                d == 0
                ? (worst < 1024 && max(pushTrips, pullTrips) == 1)
                : (Double(worst) <= 1.2 * Double(missing) + 1024 && max(pushTrips, pullTrips) <= 2)
            rows.append(
                Row(
                    id: "B3", workload: "HTTP sync, replicas share \(n) records and differ by d = \(d)",
                    status: converged ? "measured" : "FAILED: replicas differ",
                    figures: [
                        "missing_envelope_bytes": Double(missing), "push_wire_bytes": Double(push.up + push.down),
                        "pull_wire_bytes": Double(pull.up + pull.down), "push_round_trips": Double(pushTrips),
                        "pull_round_trips": Double(pullTrips),
                    ].merging(upToDate.isEmpty ? [:] : ["up_to_date_sync_ms": upToDate[upToDate.count / 2]]) { a, _ in a
                    },
                    ratio: missing > 0 ? Double(worst) / Double(missing) : nil,
                    goal: d == 0 ? "1 round trip, < 1 KiB" : "wire ≤ 1.2 × missing + 1 KiB; ≤ 2 round trips",
                    met: met && converged, peak_rss_mib: peakMemoryMiB(), note: nil))
        }
        proxy.close()
        await relay.stop()
    }
    return rows
}

/// Syncs `vault` with the relay at `url` as `amanat sync` does; returns the number of requests made.
func syncCountingRoundTrips(_ vault: Vault, _ url: String) async throws -> Int {
    try await HTTPCarrier.with(
        url: url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device
    ) { carrier in
        let counted = RoundTripCounter(inner: carrier)
        _ = try await ExchangeSession(vault: vault, carrier: counted).run()
        return counted.count.value
    }
}
