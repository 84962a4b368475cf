import Foundation
import Hummingbird
import Logging
import Prometheus

/// The relay's operator metrics, served at `GET /metrics` in Prometheus' text format (Docs/operating-a-relay.md):
/// requests by route and status, their latency, envelopes and bytes this process stored, and what the storage holds
/// in all (vaults, envelopes, bytes), read from the storage at each scrape so that relays sharing a database agree.
/// No metric carries a vault id, a device id or anything a client sent.
public final class RelayMetrics: Sendable {
    /// The registry the metrics live in.
    public let registry: PrometheusCollectorRegistry
    private let storedEnvelopes: Counter
    private let storedBytes: Counter
    private let storedChunkBytes: Counter
    private let vaults: Gauge
    private let envelopes: Gauge
    private let envelopeBytes: Gauge
    private let chunkBytes: Gauge

    /// Latency buckets: loopback answers take about a millisecond, a large exchange over a slow disk a second.
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(10),
    ]

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help), labels: [])
        }
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        }
        storedEnvelopes = counter("amanat_relay_envelopes_stored", "Envelopes this relay process stored.")
        storedBytes = counter("amanat_relay_envelope_bytes_stored", "Bytes of envelopes this relay process stored.")
        storedChunkBytes = counter("amanat_relay_chunk_bytes_stored", "Bytes of chunks this relay process stored.")
        vaults = gauge("amanat_relay_vaults", "Vaults the relay's storage holds.")
        envelopes = gauge("amanat_relay_envelopes", "Envelopes the relay's storage holds.")
        envelopeBytes = gauge("amanat_relay_envelope_bytes", "Bytes of envelopes the relay's storage holds.")
        chunkBytes = gauge("amanat_relay_chunk_bytes", "Bytes of attachment chunks the relay's storage holds.")
    }

    /// Counts one answered request.
    func request(route: String, method: String, status: Int, duration: Duration) {
        let labels = [("route", route), ("method", method), ("status", String(status))]
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "amanat_relay_requests", unitName: "total",
                helpText: "Requests answered, by route and status."),
            labels: labels
        ).increment()
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "amanat_relay_request_duration", unitName: "seconds",
                helpText: "Time from a request's head to its answer, by route."),
            labels: [("route", route)], buckets: Self.buckets
        ).record(duration)
    }

    /// Counts envelopes stored by this process.
    func stored(envelopes count: Int, bytes: Int) {
        storedEnvelopes.increment(by: Int64(count))
        storedBytes.increment(by: Int64(bytes))
    }

    /// Counts a chunk stored by this process.
    func storedChunk(bytes: Int) { storedChunkBytes.increment(by: Int64(bytes)) }

    /// The text exposition, with the storage's totals read now.
    func render(_ totals: RelayTotals) -> [UInt8] {
        vaults.set(Int64(totals.vaults))
        envelopes.set(Int64(totals.envelopes))
        envelopeBytes.set(Int64(clamping: totals.envelopeBytes))
        chunkBytes.set(Int64(clamping: totals.chunkBytes))
        return registry.emitToBuffer()
    }
}

/// Records every answer's route, status and latency. It sits outside the error middleware, so refusals are counted
/// with the status they were answered with.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: RelayMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let route = RelayRoute.allCases.first {
            $0.path == context.endpointPath && $0.httpMethod == request.method
        }
        let name = route?.rawValue ?? "unknown"
        do {
            let response = try await next(request, context)
            metrics.request(
                route: name, method: request.method.rawValue, status: Int(response.status.code),
                duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? HTTPResponseError)?.status.code ?? 500
            metrics.request(
                route: name, method: request.method.rawValue, status: Int(status), duration: ContinuousClock.now - start
            )
            throw error
        }
    }
}
