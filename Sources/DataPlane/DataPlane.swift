import ChunkManifest
import DownloadEngine
import DownloadPlanning
import HTTPRules
import Logging
import MetadataStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The data plane as a library: a `DataPlaneRequest` in, a status, headers and a pulled body
/// out. No HTTP server here; the `xs3lerator` service is a thin shell over it, and passsage's
/// embedded mode calls it in-process.
///
/// - No key (or passthrough): the download accelerator (`accelerate`).
/// - Keyed, cached: a hit, read from the disk cache or the object store, verified (`CacheHit`).
/// - Keyed, not cached: a miss, downloaded and stored as content-addressed chunks while it
///   streams, shared by every request for the key meanwhile (`CacheFill`).
/// - Keyed with validators: a revalidation (`Revalidation`).
public final class DataPlane: Sendable {
    let configuration: DataPlaneConfiguration
    let clients: UpstreamClientPool
    let fetcher: UpstreamFetcher
    let budget: WorkerBudget
    let storage: DataPlaneStorage?
    let chunks: ChunkStore?
    /// Small verified bodies in memory, when configured.
    let memory: MemoryBodies?
    let fills = InFlightRegistry<CacheFill>()
    public let metrics: DataPlaneMetrics
    let logger: Logger
    /// Work that outlives a request (sinks, background revalidations), for shutdown.
    let background = BackgroundTasks()
    /// Keys with a background revalidation running: one at a time per key.
    let revalidating = NIOLockedValueBox(Set<String>())

    /// `storage` nil: accelerator only, whatever the requests carry.
    public init(configuration: DataPlaneConfiguration, storage: DataPlaneStorage?, eventLoopGroup: any EventLoopGroup,
                metrics: DataPlaneMetrics = DataPlaneMetrics(), logger: Logger) {
        self.configuration = configuration
        self.clients = UpstreamClientPool(eventLoopGroup: eventLoopGroup,
                                          connectionsPerHost: max(64, 4 * configuration.download.concurrency),
                                          extraTrustFile: configuration.upstreamCAFile)
        self.fetcher = UpstreamFetcher(clients: clients)
        self.budget = WorkerBudget(capacity: configuration.maximumRangeWorkers)
        self.storage = configuration.passthrough ? nil : storage
        self.metrics = metrics
        self.chunks = self.storage.map {
            ChunkStore(storage: $0, temporaryDirectory: configuration.download.temporaryDirectory,
                       uploadConcurrency: configuration.uploadConcurrency, refreshAge: configuration.chunkRefreshAge,
                       metrics: metrics, logger: logger)
        }
        self.memory = self.storage != nil && configuration.memoryCacheBytes > 0
            ? MemoryBodies(byteLimit: configuration.memoryCacheBytes, objectLimit: configuration.memoryCacheObjectLimit) : nil
        self.logger = logger
        if let diskCache = self.storage?.diskCache, diskCache.watermarks != nil {
            background.run { [interval = configuration.diskCacheCheckInterval] in
                await diskCache.maintain(interval: interval, metrics: metrics, logger: logger)
            }
        }
    }

    /// Answers one request. Never throws: failures are responses (`502 upstream error: ...`),
    /// and a failure after the response started makes its body throw.
    public func serve(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        // Checked here as well as by callers: the HTTP client traps on some malformed hosts.
        guard RedirectLocation.split(request.url) != nil else {
            return .text(.badRequest, "bad request: not an absolute http(s) URL with a valid host: \(request.url.prefix(200))\n")
        }
        switch request.method {
        case .GET:
            guard let key = request.cacheKey, storage != nil else { return await accelerate(request) }
            return await serveKeyed(request, key: key)
        case .HEAD:
            return await relayHead(request)
        default:
            return .text(.methodNotAllowed, "only GET, HEAD and POST are supported\n", headers: ["Allow": "GET, HEAD, POST"])
        }
    }

    /// Stops background work (sinks, revalidations) and closes upstream connections. Downloads
    /// not yet cached stay uncached: nothing partial is ever marked complete.
    public func shutdown() async {
        await background.cancelAll()
        await clients.shutdown()
    }

    /// Keyed downloads being cached right now.
    public var downloadsInFlight: Int { fills.activeCount }

    // MARK: Dispatch

    private func serveKeyed(_ request: DataPlaneRequest, key: String) async -> DataPlaneResponse {
        var response = await answerKeyed(request, key: key)
        if storage?.diskCache?.isDegraded == true, response.status != .notModified {
            response.headers.replaceOrAdd(name: "X-Xs3lerator-Degraded", value: "enospc")
        }
        return response
    }

    private func answerKeyed(_ request: DataPlaneRequest, key: String) async -> DataPlaneResponse {
        if !request.cacheSkip {
            if request.ifNoneMatch != nil || request.ifModifiedSince != nil {
                return await revalidate(request, key: key)
            }
            if case .served(let response) = await hit(request, key: key) { return response }
            if request.cacheOnly {
                return .text(.gatewayTimeout, "not in the cache\n", headers: ["X-Xs3lerator-Cache-Hit": "false"])
            }
        }
        return await miss(request, key: key)
    }

    // MARK: Upstream requests

    /// The upstream request for `request`: keyed GETs carry no client conditionals, only the
    /// `validators` given (a revalidation).
    func upstreamRequest(_ request: DataPlaneRequest, keyed: Bool,
                         validators: (ifNoneMatch: String?, ifModifiedSince: String?) = (nil, nil)) -> UpstreamRequest {
        var headers = DataPlaneHeaders.upstreamRequestHeaders(from: request.headers, keyed: keyed && request.method == .GET)
        if let etag = validators.ifNoneMatch { headers.replaceOrAdd(name: "If-None-Match", value: etag) }
        if let date = validators.ifModifiedSince { headers.replaceOrAdd(name: "If-Modified-Since", value: date) }
        // RFC 9110 §7.6.3: a proxy says so in Via. It also marks our own requests, so one that
        // comes back to us (a URL naming this service, or a replica behind the same balancer) is refused.
        Via.append(DataPlaneHeaders.via, to: &headers)
        return UpstreamRequest(url: request.url, method: request.method, headers: headers,
                               tlsSkipVerify: configuration.upstreamTLSSkipVerify || request.tlsSkipVerify,
                               connectTimeout: request.connectTimeout ?? configuration.upstreamConnectTimeout,
                               readTimeout: request.readTimeout ?? configuration.upstreamReadTimeout,
                               followRedirects: request.followRedirects)
    }

    /// Whether the temporary directory can hold a download's chunk files (its read-ahead and a
    /// chunk). When it cannot, responses are relayed without chunk files, and nothing is cached.
    func hasTemporarySpace() -> Bool {
        var info = statvfs()
        guard statvfs(configuration.download.temporaryDirectory, &info) == 0 else { return true }
        let available = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        return available >= UInt64(configuration.download.readAhead + configuration.download.chunkSize)
    }

    func failure(_ error: UpstreamError, keyed: Bool) -> DataPlaneResponse {
        let prefix = error.status == .gatewayTimeout ? "upstream timeout" : "upstream error"
        var response = DataPlaneResponse.text(error.status, "\(prefix): \(error.kind.rawValue): \(error.url): \(error.message)\n")
        if keyed { response.headers.replaceOrAdd(name: "X-Xs3lerator-Cache-Hit", value: "false") }
        return response
    }

    static func addFinalURL(_ response: UpstreamResponse, to headers: inout HTTPHeaders) {
        if response.redirects > 0 { headers.replaceOrAdd(name: "X-Xs3lerator-Final-Url", value: response.url) }
    }

    // MARK: HEAD

    private func relayHead(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(upstreamRequest(request, keyed: false))
        } catch {
            return failure(UpstreamError.classify(error, url: request.url, connectTimeout: configuration.upstreamConnectTimeout,
                                                  readTimeout: configuration.upstreamReadTimeout), keyed: false)
        }
        var headers = DataPlaneHeaders.clientResponseHeaders(from: response.headers, keepFraming: true)
        Self.addFinalURL(response, to: &headers)
        return DataPlaneResponse(status: response.status, headers: headers)
    }
}

/// Unstructured tasks the data plane starts, tracked so shutdown can cancel and await them.
final class BackgroundTasks: Sendable {
    private let tasks = NIOLockedValueBox<(next: Int, running: [Int: Task<Void, Never>])>((0, [:]))

    func run(_ body: @escaping @Sendable () async -> Void) {
        tasks.withLockedValue { state in
            state.next += 1
            let id = state.next
            state.running[id] = Task {
                await body()
                _ = self.tasks.withLockedValue { $0.running.removeValue(forKey: id) }
            }
        }
    }

    func cancelAll() async {
        let running = tasks.withLockedValue { Array($0.running.values) }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}
