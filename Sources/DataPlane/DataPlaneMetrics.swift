import NIOConcurrencyHelpers
import Prometheus

/// The data plane's counters, exposed in Prometheus' text format at `/metrics`.
public final class DataPlaneMetrics: Sendable {
    public enum ByteSource: String, Sendable, CaseIterable {
        case disk
        case objectStore = "object_store"
        case upstream
        /// Small bodies held in memory (passsage's embedded hits).
        case memory
    }

    public enum Revalidation: String, Sendable, CaseIterable {
        case notModified = "not_modified"
        case modified
        case staleOnError = "stale_on_error"
        case failed
    }

    public let registry = PrometheusCollectorRegistry()
    private let hits, misses, joins, uploadFailures, evictions: Counter
    private let bytes: [ByteSource: Counter]
    private let revalidations: [Revalidation: Counter]
    private let degradedSeconds: Counter
    private let inFlight: Gauge

    public init() {
        hits = registry.makeCounter(name: "xs3_cache_hits_total", help: "Keyed requests served from the cache.")
        misses = registry.makeCounter(name: "xs3_cache_misses_total", help: "Keyed requests that went upstream.")
        joins = registry.makeCounter(name: "xs3_collapsed_joins_total", help: "Requests that joined a download already in flight.")
        uploadFailures = registry.makeCounter(name: "xs3_upload_failures_total", help: "Chunk uploads the object store refused.")
        evictions = registry.makeCounter(name: "xs3_disk_cache_evictions_total", help: "Chunk files evicted from the disk cache.")
        degradedSeconds = registry.makeCounter(name: "xs3_disk_cache_degraded_seconds_total",
                                               help: "Time spent not writing the disk cache after ENOSPC.")
        inFlight = registry.makeGauge(name: "xs3_downloads_in_flight", help: "Keyed downloads being cached.")
        var bytes = [ByteSource: Counter]()
        for source in ByteSource.allCases {
            bytes[source] = registry.makeCounter(name: "xs3_bytes_served_total", labels: [("source", source.rawValue)],
                                                 help: "Body bytes sent to clients, by where they came from.")
        }
        self.bytes = bytes
        var revalidations = [Revalidation: Counter]()
        for outcome in Revalidation.allCases {
            revalidations[outcome] = registry.makeCounter(name: "xs3_revalidations_total", labels: [("outcome", outcome.rawValue)],
                                                          help: "Revalidations of cached entries, by outcome.")
        }
        self.revalidations = revalidations
    }

    func hit() { hits.increment() }
    func miss() { misses.increment() }
    func collapsedJoin() { joins.increment() }
    func uploadFailed() { uploadFailures.increment() }
    func evicted(_ count: Int) { evictions.increment(by: Int64(count)) }
    func degraded(for duration: Duration) {
        degradedSeconds.increment(by: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
    func bytesServed(from source: ByteSource, _ count: Int64) { bytes[source]?.increment(by: count) }
    func revalidated(_ outcome: Revalidation) { revalidations[outcome]?.increment() }
    func downloadStarted() { inFlight.increment(by: 1) }
    func downloadFinished() { inFlight.decrement(by: 1) }

    /// The text exposition of every metric.
    public func render() -> [UInt8] {
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return buffer
    }
}
