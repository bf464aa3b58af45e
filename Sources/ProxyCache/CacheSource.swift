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
import Recency
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
    /// The pieces stored bodies are read in: what a client that stops reading a hit holds (one
    /// piece on its way to it, one being read). The data plane's own service reads 1 MiB.
    public var hitPieceSize: Int
    /// Whether a client's `X-Passsage-Policy` chooses its request's policy (`--allow-policy-header`).
    /// The header never goes upstream either way.
    public var policyHeaderAllowed: Bool

    public init(heuristicLimit: Int64 = 86_400, destinationCheckTimeout: TimeAmount = .seconds(10),
                hitPieceSize: Int = 256 << 10, policyHeaderAllowed: Bool = false) {
        self.heuristicLimit = heuristicLimit
        self.destinationCheckTimeout = destinationCheckTimeout
        self.hitPieceSize = hitPieceSize
        self.policyHeaderAllowed = policyHeaderAllowed
    }
}

/// The cache as a response source: per cacheable request, one metadata lookup, an RFC 9111
/// decision (`CachePolicy`), then the data plane for hits, misses and revalidations; HEAD and
/// conditional requests on fresh entries are answered from the metadata alone. Everything else
/// (unsafe methods, NoCache, `no-store` requests) is left to the origin relay.
public final class CacheSource: ResponseSource {
    let dataPlane: any CacheDataPlane
    let metadata: any MetadataStore
    let destinations: DestinationGuard
    let resolver: any PolicyResolver
    let settings: CacheSettings
    let logger: Logger
    /// Where found entries' `last_access` is batched, when it is kept.
    let accessTimes: AccessTimes?
    /// The metadata store's and data plane's availability; a dependency that is down passes
    /// requests through to the origin relay.
    let health: CacheHealth
    /// The metadata store's memory, when it has one: lookups of hot entries then never wait.
    let memo: MemoizedMetadataStore?
    /// Keys of recently requested URLs, and the vary keys of recent `Accept-Encoding` values:
    /// parsing a URL, sorting its query and hashing it is most of a hot hit's cost otherwise.
    private let keys = NIOLockedValueBox(LRUCache<KeyName, CacheKey>(capacity: 4096))
    private let encodingKeys = NIOLockedValueBox(LRUCache<String, String>(capacity: 64))

    public init(dataPlane: any CacheDataPlane, metadata: any MetadataStore, destinations: DestinationGuard,
                resolver: any PolicyResolver = DefaultPolicyResolver(), settings: CacheSettings = CacheSettings(),
                accessTimes: AccessTimes? = nil, health: CacheHealth? = nil, logger: Logger) {
        self.health = health ?? CacheHealth(logger: logger)
        self.dataPlane = dataPlane
        self.metadata = metadata
        self.destinations = destinations
        self.resolver = resolver
        self.settings = settings
        self.logger = logger
        self.accessTimes = accessTimes
        self.memo = metadata as? MemoizedMetadataStore
    }

    /// One request as the cache sees it, resolved once.
    struct Lookup: Sendable {
        let url: String
        let host: String
        let port: Int
        let key: CacheKey
        let request: CacheRequest
        /// The request's policy, and the `content_type` rules that may still change it.
        let resolution: PolicyResolution
        /// The policy before any content type is known.
        var policy: ResolvedPolicy { resolution.resolved }
        /// The client's headers minus hop-by-hop and internal ones: what the data plane may send on.
        let headers: HTTPHeaders
        let isHead: Bool
        let eventLoop: any EventLoop

        /// The key a download is shared under before its `Vary` is known: the URL's id plus the
        /// request's `Accept-Encoding`, so gzip and identity downloads never merge (the original's
        /// speculative key). Where it is stored is decided when the response arrives.
        let downloadKey: String

        /// The id of the variant this request selects under `vary`, or nil for `Vary: *`.
        func variantID(vary: [String]) -> String? {
            CacheKey.varyRequestString(vary: vary, requestHeaders: headers).map { key.variantID(varyKey: CacheKey.varyKey($0)) }
        }
    }

    public func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan? {
        guard case .url(let scheme, let authority, let path) = request.target else { return nil }
        let method = request.head.method.rawValue
        let url = "\(scheme.rawValue)://\(authority.urlAuthority(scheme: scheme))\(path)"
        if !Invalidation.safeMethods.contains(method) {
            // Relayed; if it succeeds, what the cache holds for its target is invalid (§4.4).
            return .observedRelay(Invalidator(source: self, method: method, url: url))
        }
        let resolution = resolvePolicy(PolicyRequest(method: method, url: url, host: authority.host, path: path,
                                                     headers: request.head.headers))
        let cacheRequest = CacheRequest(method: method, headers: request.head.headers)
        guard resolution.mayUseCache,
              CacheDecisions.bypassReason(cacheRequest, policy: resolution.resolvedForMiss.policy) == nil,
              let key = cacheKey(url, stripping: resolution.resolved.stripQuery) else {
            return nil
        }
        var headers = request.head.headers
        HopByHop.remove(from: &headers)
        InternalHeaders.remove(from: &headers)
        let encodings = headers[canonicalForm: "accept-encoding"].joined(separator: ", ")
        let downloadKey = encodings.isEmpty ? key.id : key.variantID(varyKey: encodingVaryKey(encodings))
        let lookup = Lookup(url: url, host: authority.host, port: authority.port, key: key, request: cacheRequest,
                            resolution: resolution, headers: headers, isHead: request.head.method == .HEAD, eventLoop: eventLoop,
                            downloadKey: downloadKey)
        // A hot entry is decided here, on the event loop, with no task and no hop; a fresh hit
        // whose body memory holds is answered at once.
        let known = remembered(lookup)
        if let known {
            let decided = decide(lookup, found: known.found, entry: known.entry, requestTime: Self.now())
            if let plan = immediatePlan(decided, lookup: lookup, loaded: nil) { return plan }
        }
        let promise = eventLoop.makePromise(of: ResponsePlan.self)
        promise.completeWithTask { [self] in await answer(lookup, known: known?.found) }
        return .pending(promise.futureResult)
    }

    /// A URL and the rule's extra parameters to strip: what a key is computed from.
    struct KeyName: Hashable {
        let url: String
        let stripping: [String]
    }

    func cacheKey(_ url: String, stripping: [String]) -> CacheKey? {
        let name = KeyName(url: url, stripping: stripping)
        if let known = keys.withLockedValue({ $0.value(for: name, now: 0) }) { return known }
        guard let key = CacheKey(url: url, stripping: stripping) else { return nil }
        keys.withLockedValue { $0.insert(key, for: name, expires: .max) }
        return key
    }

    /// The rules' answer, or the client's `X-Passsage-Policy` when that is allowed and names a
    /// policy: it replaces the policy only (the rule's timeouts and key parameters still apply;
    /// its stale-while-revalidate window does not).
    func resolvePolicy(_ request: PolicyRequest) -> PolicyResolution {
        var resolution = resolver.resolve(request)
        guard settings.policyHeaderAllowed, let value = request.headers.first(name: "x-passsage-policy") else {
            return resolution
        }
        guard let policy = CachePolicy(name: value) else {
            logger.info("ignoring an unknown X-Passsage-Policy", metadata: ["value": "\(value.prefix(64))"])
            return resolution
        }
        resolution.resolved.policy = policy
        resolution.resolved.staleWhileRevalidate = nil
        resolution.resolved.origin = "X-Passsage-Policy"
        resolution.contentTypeRules = []
        return resolution
    }

    /// The vary key of `accept-encoding=<encodings>` (a download's speculative variant).
    func encodingVaryKey(_ encodings: String) -> String {
        if let known = encodingKeys.withLockedValue({ $0.value(for: encodings, now: 0) }) { return known }
        let key = CacheKey.varyKey("accept-encoding=" + encodings)
        encodingKeys.withLockedValue { $0.insert(key, for: encodings, expires: .max) }
        return key
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    // MARK: Deciding

    /// What one lookup found: the id serving would use, its document (nil: none usable), and
    /// whether the URL has a vary index.
    typealias Found = (id: String, document: MetadataFields?, varyIndex: Bool)

    /// A lookup's entry, its freshness and the RFC 9111 decision, taken at `requestTime`.
    struct Decided {
        let found: Found
        let entry: CacheDocument.Entry?
        let freshness: Freshness?
        let decision: CacheDecision
        let requestTime: Int64
    }

    /// `entry`: the found document already decoded, when it is.
    func decide(_ lookup: Lookup, found: Found, entry decoded: CacheDocument.Entry?? = nil, requestTime: Int64) -> Decided {
        let entry = decoded ?? found.document.flatMap(CacheDocument.entry)
        let freshness = entry.map { Freshness.of($0.stored, now: requestTime, heuristicLimit: settings.heuristicLimit) }
        // A stored entry's Content-Type settles the `content_type` rules; a miss is decided
        // under the policy that lets it be stored, if one may.
        let policy = entry.map { lookup.resolution.resolved(for: $0.stored) } ?? lookup.resolution.resolvedForMiss
        let decision = CacheDecisions.decide(lookup.request, policy: policy, entry: entry.map { ($0.stored, freshness!) })
        if entry != nil { accessTimes?.touch(found.id, at: requestTime) }
        return Decided(found: found, entry: entry, freshness: freshness, decision: decision, requestTime: requestTime)
    }

    /// The answers that need no waiting: relays, 504s, HEAD and client conditionals from
    /// metadata, and fresh hits whose whole body is in memory (`loaded`, or the data plane's
    /// memory). nil when the data plane must be asked.
    private func immediatePlan(_ decided: Decided, lookup: Lookup, loaded: ByteBuffer?) -> ResponsePlan? {
        let (entry, freshness) = (decided.entry, decided.freshness)
        if lookup.isHead {
            // HEAD is answered from a fresh entry's metadata, with its real length; otherwise the
            // origin answers it.
            if case .gatewayTimeout = decided.decision { return .local(Self.notCached(entry: entry != nil)) }
            // Under a policy whose fallback is the cache, a HEAD goes upstream through the data
            // plane, so that a failure can be answered from the entry (`headWithFallback`).
            if entry != nil, Self.fallbackReason(decided.decision) != nil { return nil }
            guard case .hit = decided.decision, let entry, let freshness else { return .relay }
            return .local(localAnswer(entry, freshness: freshness, status: CacheStatus(hit: true, ttl: freshness.remaining),
                                      request: lookup))
        }
        switch decided.decision {
        case .bypass:
            return .relay
        case .gatewayTimeout:
            return .local(Self.notCached(entry: entry != nil))
        case .hit(let kind):
            guard let entry, let freshness else { return .relay }
            let status = Self.hitStatus(kind, freshness: freshness)
            if entry.manifest == nil || ClientConditionals.notModified(lookup.headers, stored: entry.stored.headers) {
                return .local(localAnswer(entry, freshness: freshness, status: status, request: lookup))
            }
            guard let manifest = entry.manifest,
                  ClientConditionals.range(lookup.headers, stored: entry.stored.headers) == nil,
                  let body = loaded ?? dataPlane.bodyInMemory(manifest) else { return nil }
            if loaded == nil { dataPlane.countMemoryHit(manifest) }
            return .local(storedReply(entry, body: body, freshness: freshness, status: status))
        default:
            return nil
        }
    }

    static func hitStatus(_ kind: CacheDecision.HitKind, freshness: Freshness) -> CacheStatus {
        let detail: String? = switch kind {
        case .fresh: nil
        case .staleAllowed: "max-stale"
        case .stalePolicy: "no-refresh"
        }
        return CacheStatus(hit: true, ttl: freshness.lifetime - freshness.age, detail: detail)
    }

    static func forward(_ reason: CacheDecision.ForwardReason) -> CacheStatus.Forward {
        switch reason {
        case .stale: .stale
        case .request: .request
        case .policy: .bypass
        }
    }

    private func answer(_ lookup: Lookup, known: Found?) async -> ResponsePlan {
        let requestTime = Self.now()
        let found: Found
        if let known {
            found = known
        } else {
            guard health.allows(.metadata) else {
                health.passedThrough(.metadata)
                return .relay
            }
            do {
                found = try await find(lookup)
                health.succeeded(.metadata)
            } catch {
                // Fail open: without metadata the proxy still proxies.
                logger.debug("cache lookup failed; relaying", metadata: ["key": "\(lookup.key.id)", "error": "\(error)"])
                health.failed(.metadata, error: "\(error)")
                health.passedThrough(.metadata)
                return .relay
            }
        }
        let decided = decide(lookup, found: found, requestTime: requestTime)
        if let plan = immediatePlan(decided, lookup: lookup, loaded: nil) { return plan }
        if lookup.isHead { return await headWithFallback(decided, lookup: lookup) }
        switch decided.decision {
        case .miss:
            return await fetch(lookup, forward: found.varyIndex ? .varyMiss : .uriMiss, requestTime: requestTime,
                               variant: found.varyIndex ? found.id : nil)
        case .refetch(let reason, let staleIfError):
            let fallback = staleIfError ? decided.entry.map { ($0, found.id, decided.freshness!) } : nil
            return await fetch(lookup, forward: Self.forward(reason), requestTime: requestTime,
                               variant: found.varyIndex ? found.id : nil, fallback: fallback)
        default:
            break
        }
        guard let entry = decided.entry, let freshness = decided.freshness else { return .relay }
        switch decided.decision {
        case .hit(let kind):
            if let manifest = entry.manifest, ClientConditionals.range(lookup.headers, stored: entry.stored.headers) == nil,
               let body = await dataPlane.loadIntoMemory(manifest),
               let plan = immediatePlan(decided, lookup: lookup, loaded: body) {
                return plan
            }
            return await serveStored(entry, id: found.id, freshness: freshness, status: Self.hitStatus(kind, freshness: freshness),
                                     lookup: lookup, validators: nil)
        case .staleWhileRevalidate:
            let status = CacheStatus(hit: true, ttl: freshness.lifetime - freshness.age, detail: "stale-while-revalidate")
            return await serveStored(entry, id: found.id, freshness: freshness, status: status, lookup: lookup,
                                     validators: Validators(entry.stored.headers), background: true)
        case .revalidate(let validators, let staleIfError, let reason):
            return await revalidate(entry, id: found.id, freshness: freshness, validators: validators,
                                    staleIfError: staleIfError, reason: reason, lookup: lookup, requestTime: requestTime)
        case .bypass, .gatewayTimeout, .miss, .refetch:
            return .relay   // answered above or by immediatePlan
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

    /// The documents one lookup reads: the vary index, the plain entry and the speculative variant.
    static func lookupIDs(_ lookup: Lookup) -> [String] {
        lookup.downloadKey == lookup.key.id ? [lookup.key.varyIndexID, lookup.key.id]
            : [lookup.key.varyIndexID, lookup.key.id, lookup.downloadKey]
    }

    /// What `documents` (the lookup's ids) say, or the variant the vary index selects when they
    /// do not hold it. An entry stored no later than an invalidation of its URL
    /// (`invalidated_at`, on the URL's document or its vary index) counts as absent.
    static func select(_ documents: [String: MetadataFields], lookup: Lookup)
        -> (found: Found?, missingVariant: String?, invalidatedAt: Int64?) {
        let invalidatedAt = [documents[lookup.key.id], documents[lookup.key.varyIndexID]]
            .compactMap { $0?["invalidated_at"]?.intValue }.max()
        guard let vary = documents[lookup.key.varyIndexID]?["vary"]?.stringValue else {
            return ((lookup.key.id, valid(documents[lookup.key.id], invalidatedAt: invalidatedAt), false), nil, invalidatedAt)
        }
        guard let variant = lookup.variantID(vary: [vary]) else { return ((lookup.key.id, nil, true), nil, invalidatedAt) }
        if let document = documents[variant] {
            return ((variant, valid(document, invalidatedAt: invalidatedAt), true), nil, invalidatedAt)
        }
        return (nil, variant, invalidatedAt)
    }

    static func valid(_ document: MetadataFields?, invalidatedAt: Int64?) -> MetadataFields? {
        guard let document, let invalidatedAt else { return document }
        let storedAt = document["stored_at"]?.stringValue.flatMap(Timestamps.parseISO8601) ?? 0
        return storedAt > invalidatedAt ? document : nil
    }

    /// One round trip for the lookup's ids; a second only when the vary index selects a variant
    /// not fetched yet.
    private func find(_ lookup: Lookup) async throws -> Found {
        let selection = Self.select(try await metadata.get(Self.lookupIDs(lookup)), lookup: lookup)
        if let found = selection.found { return found }
        let variant = selection.missingVariant!
        return (variant, Self.valid(try await metadata.get([variant])[variant], invalidatedAt: selection.invalidatedAt), true)
    }

    /// A document decoded for serving, kept beside it in the metadata memo.
    struct DecodedEntry: Sendable {
        let entry: CacheDocument.Entry?
    }

    static func decode(_ document: MetadataFields?) -> DecodedEntry {
        DecodedEntry(entry: document.flatMap(CacheDocument.entry))
    }

    /// The lookup from the metadata store's memory alone, with the entry already decoded, or nil
    /// when it would have to wait.
    private func remembered(_ lookup: Lookup) -> (found: Found, entry: CacheDocument.Entry?)? {
        guard let memo, let known = memo.peek(Self.lookupIDs(lookup), deriving: Self.decode) else { return nil }
        let selection = Self.select(known.compactMapValues { $0.document }, lookup: lookup)
        if let found = selection.found {
            return (found, found.document == nil ? nil : known[found.id]?.derived.entry)
        }
        let variant = selection.missingVariant!
        guard let more = memo.peek([variant], deriving: Self.decode) else { return nil }
        let document = Self.valid(more[variant]?.document ?? nil, invalidatedAt: selection.invalidatedAt)
        return ((variant, document, true), document == nil ? nil : more[variant]?.derived.entry)
    }
}
