import AsyncHTTPClient
import ChunkManifest
import DataPlane
import HTTPRules
import Logging
import MetadataStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyCache
import StorageCore
#if canImport(Glibc)
import Glibc
#endif

/// How passsage reaches a separate xs3lerator (split mode).
public struct RemoteDataPlaneConfiguration: Sendable {
    /// xs3lerator's base URL, e.g. `http://xs3lerator:8090` (no trailing slash needed).
    public var url: String
    /// Sent in `X-Xs3lerator-Auth` when xs3lerator requires one.
    public var authToken: String?
    public var connectTimeout: Duration
    /// The longest silence from xs3lerator before a request to it fails. It waits on origins
    /// itself (with the rule's timeouts), so this is generous.
    public var readTimeout: Duration
    /// Connections to xs3lerator at once; one per request in flight, so as many as client
    /// connections.
    public var maximumConnections: Int
    /// Background revalidations at once (stale-while-revalidate).
    public var maximumBackgroundRefreshes: Int
    /// Manifests are sent inline in `X-Xs3lerator-Manifest` up to this encoded size; a larger
    /// one is read by xs3lerator from the shared index.
    public var inlineManifestLimit: Int

    public init(url: String, authToken: String? = nil, connectTimeout: Duration = .seconds(2),
                readTimeout: Duration = .seconds(600),
                maximumConnections: Int = 1024, maximumBackgroundRefreshes: Int = 32,
                inlineManifestLimit: Int = 48 << 10) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.authToken = authToken
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.maximumConnections = maximumConnections
        self.maximumBackgroundRefreshes = maximumBackgroundRefreshes
        self.inlineManifestLimit = inlineManifestLimit
    }
}

/// The data plane as a separate xs3lerator: a `DataPlaneRequest` becomes `GET <xs3lerator>/<url>`
/// with the `X-Xs3lerator-*` contract headers, and its answer a `DataPlaneResponse` whose body
/// streams with backpressure and is checked against its length.
///
/// Storing is split: xs3lerator writes the manifest (with a `manifest_tag`, reported to every
/// reader in `X-Xs3lerator-Fill-Tag`), and this writes passsage's fields (the `storeFields`
/// directive) with the same tag as `fields_tag`, as soon as the response starts. A
/// document is served only when the two tags match (`CacheDocument.tagsMatch`), so no reader ever
/// pairs new headers with old bytes, whichever write lands first. A variant stored under another
/// id than its download's gets the manifest by a manifest alias.
///
/// When xs3lerator cannot be reached the answer is `dataPlaneUnavailable`: the cache passes the
/// request to the origin relay, and `health` reports it until xs3lerator answers again.
public final class RemoteDataPlane: CacheDataPlane {
    let configuration: RemoteDataPlaneConfiguration
    let metadata: any MetadataStore
    let health: CacheHealth
    let client: HTTPClient
    let logger: Logger
    private let tasks = BackgroundTasks()
    private let revalidating = NIOLockedValueBox(Set<String>())

    public init(configuration: RemoteDataPlaneConfiguration, metadata: any MetadataStore, health: CacheHealth,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: TimeAmount(configuration.connectTimeout),
                                            read: TimeAmount(configuration.readTimeout))
        // Redirects are the origin's answers, stored and relayed by passsage: never followed here.
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.decompression = .disabled
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60),
                                                   concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maximumConnections)
        self.client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: clientConfiguration)
        self.configuration = configuration
        self.metadata = metadata
        self.health = health
        self.logger = logger
    }

    /// Waits (up to 10 s) for the metadata writes still in flight, cancels what is left (background
    /// refreshes), then closes the connections.
    public func shutdown() async {
        await tasks.close(within: .seconds(10))
        try? await client.shutdown()
    }

    public func serve(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        guard health.allows(.dataPlane) else {
            health.passedThrough(.dataPlane)
            return .dataPlaneUnavailable()
        }
        if request.backgroundRevalidate { return await serveThenRevalidate(request) }
        return await send(request)
    }

    // MARK: One request

    func send(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        var outgoing = HTTPClientRequest(url: Self.target(for: request.url, configuration: configuration))
        outgoing.method = request.method
        outgoing.headers = Self.contractHeaders(request, configuration: configuration)
        let answer: HTTPClientResponse
        do {
            answer = try await client.execute(outgoing, deadline: .distantFuture, logger: logger)
        } catch {
            if Self.meansUnreachable(error) {
                health.failed(.dataPlane, error: "\(error)")
                health.passedThrough(.dataPlane)
            } else {
                // About this request (a URL or header the client cannot send, a cancellation, a
                // silent origin behind xs3lerator), not about xs3lerator: it alone goes direct.
                logger.debug("request to xs3lerator failed; relaying it", metadata: ["error": "\(error)"])
            }
            return .dataPlaneUnavailable()
        }
        if answer.status == .unauthorized, answer.headers.first(name: "www-authenticate") == "X-Xs3lerator-Auth" {
            // xs3lerator's own refusal (an origin's 401 has no such challenge): a wrong token.
            health.failed(.dataPlane, error: "xs3lerator refused the token (401)")
            health.passedThrough(.dataPlane)
            return .dataPlaneUnavailable()
        }
        if answer.status == .loopDetected, !answer.headers.contains(name: "x-xs3lerator-cache-hit") {
            // The request carried xs3lerator's own Via (a loop, or a client saying so): direct.
            return .dataPlaneUnavailable()
        }
        health.succeeded(.dataPlane)
        var headers = answer.headers
        HopByHop.remove(from: &headers)
        // Only xs3lerator's own contract headers are believed; passsage's are never an origin's.
        for name in Set(headers.map(\.name)) where name.lowercased().hasPrefix("x-passsage-") { headers.remove(name: name) }
        if let manifest = request.manifest, headers.first(name: "x-xs3lerator-cache-hit") == "true",
           let size = headers.first(name: "x-xs3lerator-full-size").flatMap({ Int64($0) }), size != manifest.totalSize {
            // A manifest too large to send was read from the index, and it is not the entry's any
            // more: its bytes are not this entry's. Not a hit; passsage fetches it afresh.
            return DataPlaneResponse(status: .gatewayTimeout, headers: ["X-Xs3lerator-Cache-Hit": "false"])
        }
        var body = ByteStream(erasing: answer.body)
        if request.method != .HEAD, let length = headers.first(name: "content-length").flatMap({ Int64($0) }) {
            let url = RedirectSafeURL.withoutQuery(request.url)
            body = body.verifyingLength(length) { received in
                RemoteDataPlaneError("xs3lerator sent \(received) of \(length) bytes for \(url)")
            }
        }
        if request.method == .GET, let storeFields = request.storeFields, let key = request.cacheKey,
           let tag = headers.first(name: "X-Xs3lerator-Fill-Tag") {
            let (status, upstreamHeaders) = Self.upstreamView(status: answer.status, headers: headers)
            if let directive = storeFields(status, upstreamHeaders) {
                // Written now: the document waits for the manifest with the same tag, and requests
                // meanwhile miss and join the download in flight instead of starting another.
                let storedUnder = upstreamHeaders.contains(name: "vary") ? key : (request.unvariedKey ?? key)
                tasks.run { [self] in await writeFields(directive, tag: tag, storedUnder: storedUnder) }
            }
        }
        return DataPlaneResponse(status: answer.status, headers: headers, body: body)
    }

    /// Whether a failed request to xs3lerator says it cannot be reached (so the next requests
    /// should not try for a while), rather than something about this one request.
    static func meansUnreachable(_ error: any Error) -> Bool {
        if error is CancellationError { return false }
        if let error = error as? HTTPClientError {
            return [.connectTimeout, .remoteConnectionClosed, .getConnectionFromPoolTimeout, .alreadyShutdown].contains(error)
        }
        // NIO's connection errors: refused, reset, unreachable, name resolution.
        return error is NIOConnectionError || error is IOError || error is ChannelError
    }

    /// `<xs3lerator>/<absolute URL>`: the URL as it is, never re-encoded or collapsed.
    static func target(for url: String, configuration: RemoteDataPlaneConfiguration) -> String {
        configuration.url + "/" + url
    }

    /// The request's contract headers, its client headers (minus `Range`, sent from `range`) and
    /// the token.
    static func contractHeaders(_ request: DataPlaneRequest, configuration: RemoteDataPlaneConfiguration) -> HTTPHeaders {
        var headers = request.headers
        headers.remove(name: "range")
        headers.remove(name: "host")
        InternalHeaders.remove(from: &headers)
        if let range = request.range { headers.add(name: "Range", value: range) }
        func set(_ name: String, _ value: String?) {
            if let value { headers.add(name: "X-Xs3lerator-" + name, value: value) }
        }
        func flag(_ name: String, _ on: Bool) { if on { set(name, "true") } }
        set("Auth", configuration.authToken)
        set("Cache-Key", request.cacheKey)
        set("Unvaried-Key", request.unvariedKey)
        flag("Cache-Skip", request.cacheSkip)
        flag("Cache-Only", request.cacheOnly)
        if let manifest = request.manifest {
            let encoded = ManifestCodec.encodeBase64(manifest)
            if encoded.utf8.count <= configuration.inlineManifestLimit { set("Manifest", encoded) }
        }
        set("If-None-Match", request.ifNoneMatch)
        set("If-Modified-Since", request.ifModifiedSince)
        flag("Stale-If-Error", request.staleIfError)
        flag("Tls-Skip-Verify", request.tlsSkipVerify)
        flag("Follow-Redirects", request.followRedirects)
        // passsage stores only what a shared cache may; xs3lerator stores no more than that.
        flag("Shared-Cache", request.storeFields != nil)
        set("Connect-Timeout", request.connectTimeout.map(Self.seconds))
        if let read = request.readTimeout { set("Read-Timeout", read.map(Self.seconds) ?? "0") }
        return headers
    }

    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? String(milliseconds / 1000) : String(Double(milliseconds) / 1000)
    }

    /// The upstream response as the store hook sees it in-process: a 206 that answers the
    /// client's range from a whole download is the 200 being stored, with its full length.
    static func upstreamView(status: HTTPResponseStatus, headers: HTTPHeaders) -> (HTTPResponseStatus, HTTPHeaders) {
        var headers = headers
        InternalHeaders.remove(from: &headers)
        guard status == .partialContent, let range = headers.first(name: "content-range"),
              let total = range.split(separator: "/").last.flatMap({ Int64($0) }) else {
            return (status, headers)
        }
        headers.remove(name: "content-range")
        headers.replaceOrAdd(name: "Content-Length", value: String(total))
        return (.ok, headers)
    }

    /// passsage's half of a stored entry: its fields with the download's tag (the headers under
    /// the tag, so that two writers of one document never merge their header objects), and the
    /// manifest alias when the variant's id is not where xs3lerator stores the download.
    func writeFields(_ directive: StoreDirective, tag: String, storedUnder: String) async {
        let id = directive.key ?? storedUnder
        do {
            // Earlier downloads' headers go first; this download's land in the next update. Each
            // writer clears before it writes, so the last writer's headers are always there.
            try await metadata.upsert(id, fields: ["headers_by_tag": .null])
            try await metadata.upsert(id, fields: Self.taggedFields(directive.fields, tag: tag))
        } catch {
            logger.warning("storing an entry's fields failed; it will be fetched again", metadata: ["key": "\(id)", "error": "\(error)"])
            return
        }
        if id != storedUnder { await linkManifest(source: storedUnder, target: id) }
    }

    /// The fields as split mode writes them, in one update: `headers` moves under
    /// `headers_by_tag.<tag>` (`CacheDocument.entry` reads the headers of the matching tag), the
    /// plain `headers` is cleared, and `fields_tag` names the download.
    static func taggedFields(_ fields: MetadataFields, tag: String) -> MetadataFields {
        var tagged = fields
        tagged.removeValue(forKey: "manifest_tag")
        tagged["fields_tag"] = .string(tag)
        tagged["headers"] = .null
        tagged["headers_by_tag"] = .object([tag: fields["headers"] ?? .object([:])])
        return tagged
    }

    /// `POST /` with the alias headers: xs3lerator copies the manifest (and its tag) once the
    /// download is stored. It waits up to a minute for a download in flight and answers 504 if
    /// it is still going; a slow download is waited for again, up to an hour.
    func linkManifest(source: String, target: String) async {
        for _ in 0..<60 {
            var outgoing = HTTPClientRequest(url: configuration.url + "/")
            outgoing.method = .POST
            outgoing.headers.add(name: "X-Xs3lerator-Link-Manifest-Source", value: source)
            outgoing.headers.add(name: "X-Xs3lerator-Link-Manifest-Target", value: target)
            if let token = configuration.authToken { outgoing.headers.add(name: "X-Xs3lerator-Auth", value: token) }
            do {
                let answer = try await client.execute(outgoing, timeout: .seconds(90), logger: logger)
                _ = try? await answer.body.collect(upTo: 4096)
                if answer.status == .noContent { return }
                if answer.status == .gatewayTimeout, !Task.isCancelled { continue }
                logger.warning("manifest alias refused", metadata: ["source": "\(source)", "target": "\(target)",
                                                                   "status": "\(answer.status.code)"])
            } catch {
                logger.warning("manifest alias failed", metadata: ["source": "\(source)", "target": "\(target)", "error": "\(error)"])
            }
            return
        }
    }

    // MARK: Stale-while-revalidate

    /// The stored body now, and a revalidation in the background (once per key, bounded): a 304
    /// refreshes `stored_at`; a 200 is stored like a miss, its fields written at once since no
    /// client reads it.
    func serveThenRevalidate(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        var read = request
        read.backgroundRevalidate = false
        read.ifNoneMatch = nil
        read.ifModifiedSince = nil
        read.cacheOnly = true
        read.storeFields = nil
        let response = await send(read)
        guard response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true", let key = request.cacheKey else {
            return response
        }
        let limit = configuration.maximumBackgroundRefreshes
        guard revalidating.withLockedValue({ $0.count < limit && $0.insert(key).inserted }) else { return response }
        var refresh = request
        refresh.backgroundRevalidate = false
        // One byte: a 304 then reads almost nothing of the stored body, and a 200 is stored whole
        // all the same (the download is the object's, whatever its first reader asks).
        refresh.range = "bytes=0-0"
        // Nobody waits on it, so a stalled origin must not hold it for ever.
        if case .some(.none) = refresh.readTimeout { refresh.readTimeout = .some(.seconds(300)) }
        let prepared = refresh
        tasks.run { [self] in
            let answer = await send(prepared)
            if answer.headers.first(name: "X-Xs3lerator-Revalidated") == "true" {
                do {
                    try await metadata.upsert(key, fields: ["stored_at": .string(Timestamps.formatISO8601(Self.now())),
                                                            "initial_age": .int(0)])
                } catch {
                    logger.warning("background revalidation: refreshing stored_at failed", metadata: ["key": "\(key)", "error": "\(error)"])
                }
            }
            _ = revalidating.withLockedValue { $0.remove(key) }
            // The body is dropped unread: xs3lerator finishes storing a new one on its own.
        }
        return response
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }
}

public struct RemoteDataPlaneError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A URL without its query, for messages (presigned queries carry credentials).
enum RedirectSafeURL {
    static func withoutQuery(_ url: String) -> String { String(url.prefix { $0 != "?" }) }
}

/// Unstructured work this data plane starts (metadata writes, background refreshes), tracked so
/// shutdown waits for it; after `close`, new work is dropped.
final class BackgroundTasks: Sendable {
    private struct State {
        var next = 0
        var running: [Int: Task<Void, Never>] = [:]
        var closed = false
    }

    private let state = NIOLockedValueBox(State())

    func run(_ work: @escaping @Sendable () async -> Void) {
        state.withLockedValue { state in
            guard !state.closed else { return }
            let id = state.next
            state.next += 1
            state.running[id] = Task { [weak self] in
                await work()
                self?.state.withLockedValue { _ = $0.running.removeValue(forKey: id) }
            }
        }
    }

    /// Refuses new work, waits for the running work up to `limit`, then cancels what is left and
    /// waits for it to end.
    func close(within limit: Duration) async {
        let running = state.withLockedValue { state -> [Task<Void, Never>] in
            state.closed = true
            return Array(state.running.values)
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline, !state.withLockedValue({ $0.running.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}
