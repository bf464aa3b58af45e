import CachePolicy
import DataPlane
import ForwardProxy
import HTTPRules
import Logging
import MetadataStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import OriginConnections
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the cache may be tuned with.
public struct CacheSettings: Sendable {
    /// The longest heuristic freshness lifetime (RFC 9111 §4.2.2), in seconds.
    public var heuristicLimit: Int64
    /// How long name resolution for a destination check may take.
    public var destinationCheckTimeout: TimeAmount

    public init(heuristicLimit: Int64 = 86_400, destinationCheckTimeout: TimeAmount = .seconds(10)) {
        self.heuristicLimit = heuristicLimit
        self.destinationCheckTimeout = destinationCheckTimeout
    }
}

/// The cache as a response source: per cacheable request, one metadata lookup, an RFC 9111
/// decision (`CachePolicy`), then the data plane for hits, misses and revalidations; HEAD and
/// conditional requests on fresh entries are answered from the metadata alone. Everything else
/// (unsafe methods, NoCache, `no-store` requests) is left to the origin relay.
public final class CacheSource: ResponseSource {
    let dataPlane: DataPlane
    let metadata: any MetadataStore
    let destinations: DestinationGuard
    let resolver: any PolicyResolver
    let settings: CacheSettings
    let logger: Logger

    public init(dataPlane: DataPlane, metadata: any MetadataStore, destinations: DestinationGuard,
                resolver: any PolicyResolver = DefaultPolicyResolver(), settings: CacheSettings = CacheSettings(),
                logger: Logger) {
        self.dataPlane = dataPlane
        self.metadata = metadata
        self.destinations = destinations
        self.resolver = resolver
        self.settings = settings
        self.logger = logger
    }

    /// One request as the cache sees it, resolved once.
    struct Lookup: Sendable {
        let url: String
        let host: String
        let port: Int
        let key: CacheKey
        let request: CacheRequest
        let policy: ResolvedPolicy
        /// The client's headers minus hop-by-hop and internal ones: what the data plane may send on.
        let headers: HTTPHeaders
        let isHead: Bool
        let eventLoop: any EventLoop

        /// The key a download is shared under before its `Vary` is known: the URL's id plus the
        /// request's `Accept-Encoding`, so gzip and identity downloads never merge (the original's
        /// speculative key). Where it is stored is decided when the response arrives.
        var downloadKey: String {
            let encodings = headers[canonicalForm: "accept-encoding"].joined(separator: ", ")
            guard !encodings.isEmpty else { return key.id }
            return key.variantID(varyKey: CacheKey.varyKey("accept-encoding=" + encodings))
        }

        /// The id of the variant this request selects under `vary`, or nil for `Vary: *`.
        func variantID(vary: [String]) -> String? {
            CacheKey.varyRequestString(vary: vary, requestHeaders: headers).map { key.variantID(varyKey: CacheKey.varyKey($0)) }
        }
    }

    public func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan? {
        guard case .url(let scheme, let authority, let path) = request.target else { return nil }
        let method = request.head.method.rawValue
        let url = "\(scheme.rawValue)://\(authority.urlAuthority(scheme: scheme))\(path)"
        let policy = resolver.resolve(method: method, url: url, host: authority.host.lowercased())
        let cacheRequest = CacheRequest(method: method, headers: request.head.headers)
        if !Invalidation.safeMethods.contains(method) {
            // Relayed; if it succeeds, what the cache holds for its target is invalid (§4.4).
            return .observedRelay(Invalidator(source: self, method: method, url: url))
        }
        guard CacheDecisions.bypassReason(cacheRequest, policy: policy.policy) == nil, let key = CacheKey(url: url) else {
            return nil
        }
        var headers = request.head.headers
        HopByHop.remove(from: &headers)
        InternalHeaders.remove(from: &headers)
        let lookup = Lookup(url: url, host: authority.host, port: authority.port, key: key, request: cacheRequest,
                            policy: policy, headers: headers, isHead: request.head.method == .HEAD, eventLoop: eventLoop)
        let promise = eventLoop.makePromise(of: ResponsePlan.self)
        promise.completeWithTask { [self] in await answer(lookup) }
        return .pending(promise.futureResult)
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    // MARK: Deciding

    private func answer(_ lookup: Lookup) async -> ResponsePlan {
        let requestTime = Self.now()
        let found: (id: String, document: MetadataFields?, varyIndex: Bool)
        do {
            found = try await find(lookup)
        } catch {
            // Fail open: without metadata the proxy still proxies.
            logger.warning("cache lookup failed; relaying", metadata: ["key": "\(lookup.key.id)", "error": "\(error)"])
            return .relay
        }
        let entry = found.document.flatMap(CacheDocument.entry)
        let freshness = entry.map { Freshness.of($0.stored, now: requestTime, heuristicLimit: settings.heuristicLimit) }
        let decision = CacheDecisions.decide(lookup.request, policy: lookup.policy.policy,
                                             entry: entry.map { ($0.stored, freshness!) })
        if lookup.isHead {
            // HEAD is answered from a fresh entry's metadata, with its real length; otherwise the
            // origin answers it.
            if case .gatewayTimeout = decision { return .local(Self.notCached(entry: entry != nil)) }
            guard case .hit = decision, let entry, let freshness else { return .relay }
            return .local(localAnswer(entry, freshness: freshness, status: CacheStatus(hit: true, ttl: freshness.remaining),
                                      request: lookup))
        }
        switch decision {
        case .bypass:
            return .relay
        case .gatewayTimeout:
            return .local(Self.notCached(entry: entry != nil))
        case .hit(let kind):
            guard let entry, let freshness else { return .relay }
            let status = CacheStatus(hit: true, ttl: freshness.lifetime - freshness.age,
                                     detail: kind == .staleAllowed ? "max-stale" : nil)
            return await serveStored(entry, id: found.id, freshness: freshness, status: status, lookup: lookup, validators: nil)
        case .staleWhileRevalidate:
            guard let entry, let freshness else { return .relay }
            let status = CacheStatus(hit: true, ttl: freshness.lifetime - freshness.age, detail: "stale-while-revalidate")
            return await serveStored(entry, id: found.id, freshness: freshness, status: status, lookup: lookup,
                                     validators: Validators(entry.stored.headers), background: true)
        case .revalidate(let validators, let staleIfError, let reason):
            guard let entry, let freshness else { return .relay }
            return await revalidate(entry, id: found.id, freshness: freshness, validators: validators,
                                    staleIfError: staleIfError, reason: reason, lookup: lookup, requestTime: requestTime)
        case .miss:
            return await fetch(lookup, forward: found.varyIndex ? .varyMiss : .uriMiss, requestTime: requestTime,
                               variant: found.varyIndex ? found.id : nil)
        case .refetch(let reason):
            return await fetch(lookup, forward: reason == .request ? .request : .stale, requestTime: requestTime,
                               variant: found.varyIndex ? found.id : nil)
        }
    }

    /// 504 for `only-if-cached` with nothing servable (RFC 9111 §5.2.1.7).
    static func notCached(entry: Bool) -> LocalReply {
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")])
        headers.add(name: "Cache-Status", value: CacheStatus(forward: entry ? .stale : .uriMiss, detail: "only-if-cached").fieldValue)
        return LocalReply(status: .gatewayTimeout, headers: headers,
                          body: Array("not in the cache, and the request said only-if-cached\n".utf8))
    }

    /// The client's `Range` for a request that goes upstream: dropped when it comes with
    /// `If-Range`, which names a representation the origin may no longer have (the whole new one
    /// is sent instead of a slice of it).
    static func upstreamRange(_ headers: HTTPHeaders) -> String? {
        headers.contains(name: "if-range") ? nil : headers.first(name: "range")
    }

    /// One round trip for the vary index, the plain entry and the speculative variant; a second
    /// only when the vary index selects a variant not fetched yet.
    /// An entry stored no later than an invalidation of its URL (`invalidated_at`, on the URL's
    /// document or its vary index) counts as absent.
    private func find(_ lookup: Lookup) async throws -> (id: String, document: MetadataFields?, varyIndex: Bool) {
        let ids = Array(Set([lookup.key.varyIndexID, lookup.key.id, lookup.downloadKey]))
        let documents = try await metadata.get(ids)
        let invalidatedAt = [documents[lookup.key.id], documents[lookup.key.varyIndexID]]
            .compactMap { $0?["invalidated_at"]?.intValue }.max()
        func valid(_ document: MetadataFields?) -> MetadataFields? {
            guard let document, let invalidatedAt else { return document }
            let storedAt = document["stored_at"]?.stringValue.flatMap(Timestamps.parseISO8601) ?? 0
            return storedAt > invalidatedAt ? document : nil
        }
        guard let vary = documents[lookup.key.varyIndexID]?["vary"]?.stringValue else {
            return (lookup.key.id, valid(documents[lookup.key.id]), false)
        }
        guard let variant = lookup.variantID(vary: [vary]) else { return (lookup.key.id, nil, true) }
        if let document = documents[variant] { return (variant, valid(document), true) }
        return (variant, valid(try await metadata.get([variant])[variant]), true)
    }

    /// Marks what the cache holds for `urls` invalid: entries stored before now are not served again.
    func invalidate(_ urls: [String]) async {
        let now = Self.now()
        var updates: [MetadataUpdate] = []
        for url in urls {
            guard let key = CacheKey(url: url) else { continue }
            for id in [key.id, key.varyIndexID] {
                updates.append(MetadataUpdate(id: id, fields: ["invalidated_at": .int(now)], createIfMissing: false))
            }
        }
        guard !updates.isEmpty else { return }
        do {
            // Items for documents that do not exist fail, as they should: nothing to invalidate.
            _ = try await metadata.bulkUpdate(updates)
        } catch {
            logger.warning("invalidation failed", metadata: ["urls": "\(urls)", "error": "\(error)"])
        }
    }

    // MARK: Serving

    /// A stored entry: from metadata alone for redirects and satisfied client conditionals, else
    /// its body from the data plane (with the client's range). `validators` with `background`
    /// ask the data plane to revalidate it after answering.
    private func serveStored(_ entry: CacheDocument.Entry, id: String, freshness: Freshness, status: CacheStatus,
                             lookup: Lookup, validators: Validators?, background: Bool = false) async -> ResponsePlan {
        if entry.manifest == nil || ClientConditionals.notModified(lookup.headers, stored: entry.stored.headers) {
            return .local(localAnswer(entry, freshness: freshness, status: status, request: lookup))
        }
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers,
                                       range: ClientConditionals.range(lookup.headers, stored: entry.stored.headers),
                                       cacheKey: id, manifest: entry.manifest)
        request.cacheOnly = true
        if background, let validators {
            guard await destinationAllowed(lookup) else { return .relay }
            request.ifNoneMatch = validators.entityTag
            request.ifModifiedSince = validators.lastModified
            request.backgroundRevalidate = true
            request.storeFields = storeFields(lookup, requestTime: Self.now(), stored: nil)
        }
        let response = await dataPlane.serve(request)
        if response.headers.first(name: "X-Xs3lerator-Cache-Hit") != "true", !background {
            // The stored body is gone or damaged: fetch it like a stale entry, vetted and checked.
            return await fetch(lookup, forward: .stale, requestTime: Self.now(), variant: id == lookup.key.id ? nil : id)
        }
        return stream(response, entry: entry, freshness: freshness, status: status, lookup: lookup)
    }

    private func revalidate(_ entry: CacheDocument.Entry, id: String, freshness: Freshness, validators: Validators,
                            staleIfError: Bool, reason: CacheDecision.ForwardReason, lookup: Lookup,
                            requestTime: Int64) async -> ResponsePlan {
        guard await destinationAllowed(lookup) else { return .relay }
        let stored = NIOLockedValueBox<Bool?>(nil)
        // A 200 may replace the entry, so a range goes only without If-Range (`upstreamRange`).
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers, range: Self.upstreamRange(lookup.headers),
                                       cacheKey: id, manifest: entry.manifest,
                                       ifNoneMatch: validators.entityTag, ifModifiedSince: validators.lastModified,
                                       staleIfError: staleIfError)
        request.storeFields = storeFields(lookup, requestTime: requestTime, stored: stored)
        let response = await dataPlane.serve(request)
        let forward: CacheStatus.Forward = reason == .request ? .request : .stale
        switch response.headers.first(name: "X-Xs3lerator-Revalidated") {
        case "true":
            // The origin said 304: the entry is fresh again from now (bug 7 aside, only a real
            // validation refreshes it).
            await refresh(id)
            var refreshed = entry.stored
            refreshed.responseTime = Self.now()
            refreshed.initialAge = 0
            let renewed = Freshness.of(refreshed, now: refreshed.responseTime, heuristicLimit: settings.heuristicLimit)
            return stream(response, entry: CacheDocument.Entry(stored: refreshed, manifest: entry.manifest,
                                                               contentSize: entry.contentSize),
                          freshness: renewed, status: CacheStatus(forward: forward, forwardStatus: 304, ttl: renewed.remaining),
                          lookup: lookup)
        case "stale-error":
            return stream(response, entry: entry, freshness: freshness,
                          status: CacheStatus(hit: true, forward: forward, ttl: freshness.lifetime - freshness.age,
                                              detail: "stale-if-error"),
                          lookup: lookup)
        default:
            return relayFromDataPlane(response, status: CacheStatus(forward: forward, forwardStatus: Int(response.status.code),
                                                                    stored: stored.withLockedValue { $0 } == true),
                                      lookup: lookup)
        }
    }

    /// `variant`: the id the vary index selects for this request, if the URL has one; downloads are
    /// then shared per variant, otherwise per URL and `Accept-Encoding`.
    private func fetch(_ lookup: Lookup, forward: CacheStatus.Forward, requestTime: Int64,
                       variant: String?) async -> ResponsePlan {
        guard await destinationAllowed(lookup) else { return .relay }
        let hadVaryIndex = variant != nil
        let stored = NIOLockedValueBox<Bool?>(nil)
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers, range: Self.upstreamRange(lookup.headers),
                                       cacheKey: variant ?? lookup.downloadKey, cacheSkip: true)
        request.storeFields = storeFields(lookup, requestTime: requestTime, stored: stored)
        let response = await dataPlane.serve(request)
        if (300..<400).contains(response.status.code), response.status != .notModified {
            stored.withLockedValue { $0 = false }
            if await storeRedirect(response, lookup: lookup, requestTime: requestTime) {
                stored.withLockedValue { $0 = true }
            }
        }
        let verdict = stored.withLockedValue { $0 } == true
        if verdict { await updateVaryIndex(lookup, vary: response.headers[canonicalForm: "vary"].map(String.init),
                                           hadVaryIndex: hadVaryIndex) }
        return relayFromDataPlane(response, status: CacheStatus(forward: forward, stored: verdict), lookup: lookup)
    }

    /// Records the `Vary` an origin sent for the URL, so later lookups select the variant; removes
    /// the record when a response no longer varies.
    private func updateVaryIndex(_ lookup: Lookup, vary: [String], hadVaryIndex: Bool) async {
        do {
            if vary.isEmpty {
                if hadVaryIndex { try await metadata.delete(lookup.key.varyIndexID) }
            } else {
                try await metadata.upsert(lookup.key.varyIndexID, fields: [
                    "doc_type": .string("vary_index"), "vary": .string(vary.joined(separator: ", ")),
                ])
            }
        } catch {
            logger.warning("updating the vary index failed", metadata: ["key": "\(lookup.key.varyIndexID)", "error": "\(error)"])
        }
    }

    // MARK: Storing

    /// The data plane's store hook: the document fields when RFC 9111 lets a shared cache store
    /// the response, nil otherwise (the data plane then relays it uncached).
    /// A varying response is stored as the variant this request selects; any other under the
    /// URL's id, whatever key its download was shared under.
    private func storeFields(_ lookup: Lookup, requestTime: Int64, stored: NIOLockedValueBox<Bool?>?)
        -> @Sendable (HTTPResponseStatus, HTTPHeaders) -> StoreDirective? {
        { status, headers in
            let vary = headers[canonicalForm: "vary"].map(String.init)
            let target = vary.isEmpty ? lookup.key.id : lookup.variantID(vary: vary)
            guard let target, Storability.refusal(method: "GET", requestHeaders: lookup.headers, status: Int(status.code),
                                                  responseHeaders: headers) == nil else {
                stored?.withLockedValue { $0 = false }
                return nil
            }
            stored?.withLockedValue { $0 = true }
            let responseTime = Self.now()
            var fields = CacheDocument.fields(
                status: Int(status.code), headers: Storability.headersToStore(headers), responseTime: responseTime,
                initialAge: StoredResponse.initialAge(headers: headers, requestTime: requestTime, responseTime: responseTime),
                url: lookup.url, contentSize: headers.first(name: "content-length").flatMap { Int64($0) })
            if !vary.isEmpty {
                fields["vary"] = .string(vary.joined(separator: ", "))
                if let selected = CacheKey.varyRequestString(vary: vary, requestHeaders: lookup.headers) {
                    fields["vary_request"] = .string(selected)
                }
            }
            return StoreDirective(key: target, fields: fields, clearing: ["headers"])
        }
    }

    /// Redirects have no body for the data plane to store: their document is written here.
    private func storeRedirect(_ response: DataPlaneResponse, lookup: Lookup, requestTime: Int64) async -> Bool {
        guard let directive = storeFields(lookup, requestTime: requestTime, stored: nil)(response.status, response.headers) else {
            return false
        }
        do {
            // A redirect replaces whatever body was stored before.
            var document = directive.fields
            document["manifest_b64"] = .null
            let id = directive.key ?? lookup.key.id
            // Headers are replaced, not merged with the previous entry's.
            try await metadata.upsert(id, fields: Dictionary(uniqueKeysWithValues: directive.clearing.map { ($0, JSONValue.null) }))
            try await metadata.upsert(id, fields: document)
            return true
        } catch {
            logger.warning("storing a redirect failed", metadata: ["key": "\(lookup.key.id)", "error": "\(error)"])
            return false
        }
    }

    private func refresh(_ key: String) async {
        do {
            try await metadata.upsert(key, fields: ["stored_at": .string(Timestamps.formatISO8601(Self.now())), "initial_age": .int(0)])
        } catch {
            logger.warning("refreshing stored_at failed", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }

    /// The destination check the relay makes, made before the data plane goes upstream: a denied
    /// one is left to the relay, which refuses it with its usual answer.
    private func destinationAllowed(_ lookup: Lookup) async -> Bool {
        do {
            _ = try await destinations.resolve(host: lookup.host, port: lookup.port, timeout: settings.destinationCheckTimeout,
                                               on: lookup.eventLoop).get()
            return true
        } catch {
            return false
        }
    }

    // MARK: Responses

    private func localAnswer(_ entry: CacheDocument.Entry, freshness: Freshness, status: CacheStatus,
                             request: Lookup) -> LocalReply {
        var headers = entry.stored.headers
        var code = HTTPResponseStatus(statusCode: entry.stored.status)
        if ClientConditionals.notModified(request.headers, stored: entry.stored.headers) {
            code = .notModified
            for name in ["content-length", "content-encoding", "content-range"] { headers.remove(name: name) }
        }
        headers.remove(name: "content-length")
        headers.replaceOrAdd(name: "Age", value: String(freshness.age))
        headers.add(name: "Cache-Status", value: status.fieldValue)
        // HEAD and 304 carry the length a 200 would have (RFC 9110 §8.6), never a made-up 0.
        let length = entry.manifest == nil ? 0 : entry.contentSize.map { Int($0) }
        return LocalReply(status: code, headers: headers, body: [], headLength: length)
    }

    /// A stored entry's body from the data plane: the stored headers, the data plane's framing,
    /// `Age` and `Cache-Status`.
    private func stream(_ response: DataPlaneResponse, entry: CacheDocument.Entry, freshness: Freshness,
                        status: CacheStatus, lookup: Lookup) -> ResponsePlan {
        let fromCache = response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true"
        guard response.status == .ok || response.status == .partialContent, fromCache else {
            // A 416 for a range the stored object cannot satisfy is still the cache's answer;
            // anything else came from upstream after all: as it came.
            return relayFromDataPlane(response, status: fromCache ? status : CacheStatus(forward: .stale), lookup: lookup)
        }
        var headers = entry.stored.headers
        for name in ["content-length", "content-range", "transfer-encoding", "accept-ranges"] { headers.remove(name: name) }
        for name in ["content-length", "content-range", "accept-ranges"] {
            if let value = response.headers.first(name: name) { headers.add(name: name, value: value) }
        }
        headers.replaceOrAdd(name: "Age", value: String(freshness.age))
        headers.add(name: "Cache-Status", value: status.fieldValue)
        let code = response.status == .partialContent ? .partialContent : HTTPResponseStatus(statusCode: entry.stored.status)
        return .exchange(StreamedResponse(head: HTTPResponseHead(version: .http1_1, status: code, headers: headers),
                                          body: response.body, eventLoop: lookup.eventLoop))
    }

    /// An upstream answer through the data plane, minus its contract headers, plus `Cache-Status`.
    private func relayFromDataPlane(_ response: DataPlaneResponse, status: CacheStatus, lookup: Lookup) -> ResponsePlan {
        var headers = response.headers
        InternalHeaders.remove(from: &headers)
        headers.add(name: "Cache-Status", value: status.fieldValue)
        return .exchange(StreamedResponse(head: HTTPResponseHead(version: .http1_1, status: response.status, headers: headers),
                                          body: response.body, eventLoop: lookup.eventLoop))
    }
}

/// Invalidates the cache's entries for a successful unsafe request's target and the same-origin
/// `Location` / `Content-Location` of its response (RFC 9111 §4.4).
struct Invalidator: RelayObserver {
    let source: CacheSource
    let method: String
    let url: String

    func responded(status: HTTPResponseStatus, headers: HTTPHeaders) {
        let targets = Invalidation.targets(method: method, status: Int(status.code), requestURL: url,
                                           location: headers.first(name: "location"),
                                           contentLocation: headers.first(name: "content-location"))
        guard !targets.isEmpty else { return }
        Task { await source.invalidate(targets) }
    }
}
