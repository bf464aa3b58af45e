import HTTPRules
import NIOHTTP1

/// How a request is served, decided from its method and directives, the policy, and the stored
/// entry if there is one (RFC 9111 §4). Plain values in, a decision out.
public enum CacheDecision: Sendable, Equatable {
    /// Not the cache's: forwarded to the origin, nothing stored or served from the cache.
    case bypass(BypassReason)
    /// Nothing usable is stored: fetch through the data plane and store.
    case miss
    /// Serve the stored response as it is.
    case hit(HitKind)
    /// Serve the stale entry now and revalidate it in the background, once (RFC 5861).
    case staleWhileRevalidate
    /// Ask the origin with the stored validators; on a failure serve the stale entry if
    /// `staleIfError` allows it.
    case revalidate(Validators, staleIfError: Bool, reason: ForwardReason)
    /// An entry without validators: fetch it again and store; on a failure serve the entry if
    /// `staleIfError` allows it.
    case refetch(ForwardReason, staleIfError: Bool)
    /// `only-if-cached` and nothing servable is stored: 504 (§5.2.1.7).
    case gatewayTimeout

    public enum BypassReason: String, Sendable, Equatable {
        /// An unsafe or uncached method.
        case method
        /// The policy says so (NoCache).
        case policy
        /// The request said `no-store`.
        case request
    }

    public enum HitKind: Sendable, Equatable {
        case fresh
        /// Stale, but within the request's `max-stale`.
        case staleAllowed
        /// Stale, served because the policy never revalidates (NoRefresh).
        case stalePolicy
    }

    /// Why a stored entry was not served as it was (`Cache-Status` `fwd`).
    public enum ForwardReason: String, Sendable, Equatable {
        /// It was stale.
        case stale
        /// It was fresh, but the request (or the response's `no-cache`) asked for validation.
        case request
        /// It was fresh, but the policy always asks upstream (AlwaysUpstream).
        case policy
    }
}

/// The validators of a stored response, sent as `If-None-Match` / `If-Modified-Since`.
public struct Validators: Sendable, Equatable {
    public var entityTag: String?
    public var lastModified: String?

    public init(entityTag: String?, lastModified: String?) {
        self.entityTag = entityTag
        self.lastModified = lastModified
    }

    public init(_ headers: HTTPHeaders) {
        self.init(entityTag: headers.first(name: "etag"), lastModified: headers.first(name: "last-modified"))
    }

    public var isEmpty: Bool { entityTag == nil && lastModified == nil }
}

/// The request side of a decision.
public struct CacheRequest: Sendable, Equatable {
    public var method: String
    public var cacheControl: CacheControl
    /// `Pragma: no-cache` counts as `Cache-Control: no-cache` only when the request has no
    /// Cache-Control (RFC 9111 §5.4 keeps it for HTTP/1.0 clients).
    public var pragmaNoCache: Bool

    public init(method: String, headers: HTTPHeaders) {
        self.method = method
        self.cacheControl = CacheControl(headers)
        self.pragmaNoCache = headers[canonicalForm: "pragma"].contains { $0.lowercased().contains("no-cache") }
    }

    /// The client wants the response validated whatever its freshness.
    var demandsValidation: Bool {
        cacheControl.noCache || (cacheControl.isEmpty && pragmaNoCache)
    }
}

public enum CacheDecisions {
    /// Methods whose responses the cache serves and stores.
    public static let cachedMethods: Set<String> = ["GET", "HEAD"]

    /// The decision before any lookup: whether the request is the cache's at all.
    public static func bypassReason(_ request: CacheRequest, policy: CachePolicy) -> CacheDecision.BypassReason? {
        guard cachedMethods.contains(request.method) else { return .method }
        if policy == .noCache { return .policy }
        if request.cacheControl.noStore { return .request }
        return nil
    }

    /// The decision under a request's policy. `entry` is the stored response, if any; `freshness`
    /// its freshness now.
    /// - Standard: RFC 9111 for a shared cache, with the operator's stale-while-revalidate window
    ///   if the rule has one.
    /// - StaleIfError: Standard, and a failed revalidation serves the entry unless the origin
    ///   forbade stale use.
    /// - NoRefresh: the entry is served whatever its age and whatever the request asks.
    /// - AlwaysUpstream: upstream first (conditionally with validators), the entry on failure.
    public static func decide(_ request: CacheRequest, policy resolved: ResolvedPolicy,
                              entry: (stored: StoredResponse, freshness: Freshness)?) -> CacheDecision {
        let policy = resolved.policy
        if let reason = bypassReason(request, policy: policy) { return .bypass(reason) }
        let requested = request.cacheControl
        guard let (stored, freshness) = entry else {
            return requested.onlyIfCached ? .gatewayTimeout : .miss
        }
        let response = stored.cacheControl
        // §4.2.4 and §5.2.2: these forbid serving the entry stale (s-maxage implies proxy-revalidate
        // in a shared cache), and `no-cache` forbids serving it at all without validation.
        let staleForbidden = response.mustRevalidate || response.proxyRevalidate || response.sharedMaxAge != nil
            || response.noCache
        let validators = Validators(stored.headers)
        // What a policy's fallback may serve when upstream fails: a fresh entry unless it must
        // always be validated, a stale one unless the origin forbade stale use.
        let fallbackAllowed = freshness.isFresh ? !response.noCache : !staleForbidden

        switch policy {
        case .noRefresh:
            return .hit(freshness.isFresh ? .fresh : .stalePolicy)
        case .alwaysUpstream where !requested.onlyIfCached:
            let reason: CacheDecision.ForwardReason = freshness.isFresh ? .policy : .stale
            return validators.isEmpty ? .refetch(reason, staleIfError: fallbackAllowed)
                : .revalidate(validators, staleIfError: fallbackAllowed, reason: reason)
        default:
            break
        }

        // What the client accepts of this entry.
        // `max-age=0` always asks for validation, also of an entry stored this second (age 0).
        let ageAccepted = requested.maxAge.map { $0 > 0 && freshness.age <= Int64($0) } ?? true
        let freshEnough = requested.minFresh.map { freshness.remaining >= Int64($0) } ?? true
        let clientWantsValidation = request.demandsValidation || !ageAccepted

        if freshness.isFresh, freshEnough, !clientWantsValidation, !response.noCache {
            return .hit(.fresh)
        }
        if !freshness.isFresh, !staleForbidden, !clientWantsValidation, let maxStale = requested.maxStale {
            switch maxStale {
            case .any: return .hit(.staleAllowed)
            case .seconds(let seconds) where freshness.staleness <= Int64(seconds): return .hit(.staleAllowed)
            case .seconds: break
            }
        }
        if requested.onlyIfCached { return .gatewayTimeout }
        // A fresh entry forwarded because the client asked: `fwd=request`; otherwise it counts as stale.
        let reason: CacheDecision.ForwardReason = freshness.isFresh && !response.noCache ? .request : .stale
        // The operator's window (a rule's `stale_while_revalidate`) answers at once, also when the
        // client asked for validation (pip asks with max-age=0 for every index page): the
        // background revalidation still happens. It never overrides the origin's prohibitions.
        if let window = resolved.staleWhileRevalidate, !validators.isEmpty, fallbackAllowed, freshness.staleness <= window {
            return .staleWhileRevalidate
        }
        if !freshness.isFresh, !staleForbidden, !clientWantsValidation, freshEnough,
           let window = response.staleWhileRevalidate, freshness.staleness <= Int64(window), !validators.isEmpty {
            return .staleWhileRevalidate
        }
        let staleIfError = policy == .staleIfError ? fallbackAllowed
            : staleIfErrorAllowed(request, stored: stored, freshness: freshness)
        guard !validators.isEmpty else { return .refetch(reason, staleIfError: staleIfError) }
        return .revalidate(validators, staleIfError: staleIfError, reason: reason)
    }

    /// RFC 5861 §4: a stale entry may answer a failed revalidation (5xx, unreachable origin) within
    /// the response's or the request's `stale-if-error` window, unless the origin forbade stale use.
    public static func staleIfErrorAllowed(_ request: CacheRequest, stored: StoredResponse, freshness: Freshness) -> Bool {
        let response = stored.cacheControl
        if response.mustRevalidate || response.proxyRevalidate || response.sharedMaxAge != nil || response.noCache {
            return false
        }
        let windows = [response.staleIfError, request.cacheControl.staleIfError].compactMap { $0 }
        return windows.contains { freshness.staleness <= Int64($0) }
    }
}
