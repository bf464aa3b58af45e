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
    /// Once xs3lerator is found unreachable, requests go straight upstream for this long before
    /// it is tried again.
    public var retryAfter: Duration
    /// Connections to xs3lerator at once; one per request in flight, so as many as client
    /// connections.
    public var maximumConnections: Int
    /// Background revalidations at once (stale-while-revalidate).
    public var maximumBackgroundRefreshes: Int
    /// Manifests are sent inline in `X-Xs3lerator-Manifest` up to this encoded size; a larger
    /// one is read by xs3lerator from the shared index.
    public var inlineManifestLimit: Int

    public init(url: String, authToken: String? = nil, connectTimeout: Duration = .seconds(2),
                readTimeout: Duration = .seconds(600), retryAfter: Duration = .seconds(1),
                maximumConnections: Int = 1024, maximumBackgroundRefreshes: Int = 32,
                inlineManifestLimit: Int = 48 << 10) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.authToken = authToken
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.retryAfter = retryAfter
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
/// directive) with the same tag as `fields_tag`: at once for a new entry, and once the client has
/// had the whole body for one that replaces an entry (which stays valid until then). A
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

    /// Waits for the metadata writes still in flight, then closes the connections.
    public func shutdown() async {
        await tasks.waitForAll()
        try? await client.shutdown()
    }

    public func serve(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        guard health.allows(.dataPlane) else {
            health.passedThrough(.dataPlane)
            return .dataPlaneUnavailable()
        }
        if request.backgroundRevalidate { return await serveThenRevalidate(request) }
        return await send(request, fieldsWhen: .bodyComplete)
    }

    /// When passsage's fields are written for a download xs3lerator stores.
    enum FieldsWrite {
        /// Once the whole body has reached the client: until then the entry it replaces stays
        /// (only for a directive that `replacesEntry`; others are written at once).
        case bodyComplete
        /// At once (nobody reads the body: a background refresh).
        case head
    }

    // MARK: One request

    func send(_ request: DataPlaneRequest, fieldsWhen: FieldsWrite) async -> DataPlaneResponse {
        var outgoing = HTTPClientRequest(url: Self.target(for: request.url, configuration: configuration))
        outgoing.method = request.method
        outgoing.headers = Self.contractHeaders(request, configuration: configuration)
        let answer: HTTPClientResponse
        do {
            answer = try await client.execute(outgoing, deadline: .distantFuture, logger: logger)
        } catch let error as HTTPClientError where [.invalidURL, .emptyHost, .emptyScheme].contains(error) {
            // This URL cannot be put into a request line to xs3lerator: it alone goes direct.
            logger.debug("URL not sendable to xs3lerator; relaying", metadata: ["error": "\(error)"])
            return .dataPlaneUnavailable()
        } catch {
            health.failed(.dataPlane, error: "\(error)")
            health.passedThrough(.dataPlane)
            return .dataPlaneUnavailable()
        }
        if answer.status == .unauthorized || answer.status == .loopDetected {
            // Misconfigured (a wrong token, or a URL that leads back here): the origin still answers.
            health.failed(.dataPlane, error: "xs3lerator answered \(answer.status.code)")
            health.passedThrough(.dataPlane)
            return .dataPlaneUnavailable()
        }
        health.succeeded(.dataPlane)
        var headers = answer.headers
        HopByHop.remove(from: &headers)
        // Only xs3lerator's own contract headers are believed; passsage's are never an origin's.
        for name in Set(headers.map(\.name)) where name.lowercased().hasPrefix("x-passsage-") { headers.remove(name: name) }
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
                let write = { @Sendable [self] in await writeFields(directive, tag: tag, downloadKey: key) }
                // Nothing to keep: written now, the document waits for the manifest, and requests
                // meanwhile miss and join the download in flight instead of starting another.
                switch directive.replacesEntry ? fieldsWhen : .head {
                case .head:
                    tasks.run(write)
                case .bodyComplete:
                    let tasks = self.tasks
                    let length = headers.first(name: "content-length").flatMap { Int64($0) }
                    body = ByteStream(CompletionSequence(base: body, expectedLength: length) { tasks.run(write) })
                }
            }
        }
        return DataPlaneResponse(status: answer.status, headers: headers, body: body)
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

    /// passsage's half of a stored entry: its fields with the download's tag, and the manifest
    /// alias when the variant's id is not the download's.
    func writeFields(_ directive: StoreDirective, tag: String, downloadKey: String) async {
        let id = directive.key ?? downloadKey
        var fields = directive.fields
        fields.removeValue(forKey: "manifest_tag")
        fields["fields_tag"] = .string(tag)
        do {
            if !directive.clearing.isEmpty {
                try await metadata.upsert(id, fields: Dictionary(uniqueKeysWithValues: directive.clearing.map { ($0, JSONValue.null) }))
            }
            try await metadata.upsert(id, fields: fields)
        } catch {
            logger.warning("storing an entry's fields failed; it will be fetched again", metadata: ["key": "\(id)", "error": "\(error)"])
            return
        }
        if id != downloadKey { await linkManifest(source: downloadKey, target: id) }
    }

    /// `POST /` with the alias headers: xs3lerator copies the manifest (and its tag) once the
    /// download is stored.
    func linkManifest(source: String, target: String) async {
        var outgoing = HTTPClientRequest(url: configuration.url + "/")
        outgoing.method = .POST
        outgoing.headers.add(name: "X-Xs3lerator-Link-Manifest-Source", value: source)
        outgoing.headers.add(name: "X-Xs3lerator-Link-Manifest-Target", value: target)
        if let token = configuration.authToken { outgoing.headers.add(name: "X-Xs3lerator-Auth", value: token) }
        do {
            let answer = try await client.execute(outgoing, timeout: .seconds(90), logger: logger)
            _ = try? await answer.body.collect(upTo: 4096)
            if answer.status != .noContent {
                logger.warning("manifest alias refused", metadata: ["source": "\(source)", "target": "\(target)",
                                                                   "status": "\(answer.status.code)"])
            }
        } catch {
            logger.warning("manifest alias failed", metadata: ["source": "\(source)", "target": "\(target)", "error": "\(error)"])
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
        let response = await send(read, fieldsWhen: .bodyComplete)
        guard response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true", let key = request.cacheKey else {
            return response
        }
        let limit = configuration.maximumBackgroundRefreshes
        guard revalidating.withLockedValue({ $0.count < limit && $0.insert(key).inserted }) else { return response }
        var refresh = request
        refresh.backgroundRevalidate = false
        refresh.range = nil
        // Nobody waits on it, so a stalled origin must not hold it for ever.
        if case .some(.none) = refresh.readTimeout { refresh.readTimeout = .some(.seconds(300)) }
        let prepared = refresh
        tasks.run { [self] in
            let answer = await send(prepared, fieldsWhen: .head)
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

/// Passes a stream through and calls `onEnd` once when it ends complete: at its end, or as soon
/// as `expectedLength` bytes have passed (a consumer that knows the length stops asking there).
/// Never when it fails or is dropped early.
struct CompletionSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let base: ByteStream
    let expectedLength: Int64?
    let onEnd: @Sendable () -> Void

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), expectedLength: expectedLength, onEnd: onEnd) }

    struct Iterator: AsyncIteratorProtocol {
        var base: ByteStream.AsyncIterator
        let expectedLength: Int64?
        let onEnd: @Sendable () -> Void
        var received: Int64 = 0
        var ended = false

        mutating func next() async throws -> ByteBuffer? {
            guard let part = try await base.next() else {
                end()
                return nil
            }
            received += Int64(part.readableBytes)
            if received == expectedLength { end() }
            return part
        }

        private mutating func end() {
            guard !ended else { return }
            ended = true
            onEnd()
        }
    }
}

/// Unstructured work this data plane starts (metadata writes, background refreshes), tracked so
/// shutdown waits for it.
final class BackgroundTasks: Sendable {
    private let state = NIOLockedValueBox<(next: Int, running: [Int: Task<Void, Never>])>((0, [:]))

    func run(_ work: @escaping @Sendable () async -> Void) {
        state.withLockedValue { state in
            let id = state.next
            state.next += 1
            state.running[id] = Task { [weak self] in
                await work()
                self?.state.withLockedValue { _ = $0.running.removeValue(forKey: id) }
            }
        }
    }

    func waitForAll() async {
        while let task = state.withLockedValue({ $0.running.values.first }) {
            await task.value
            state.withLockedValue { state in
                if let id = state.running.first(where: { $0.value == task })?.key { state.running.removeValue(forKey: id) }
            }
        }
    }
}
