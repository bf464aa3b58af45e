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
    /// A stale entry without validators: fetch it again and store.
    case refetch(ForwardReason)
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
    }

    /// Why a stored entry was not served as it was (`Cache-Status` `fwd`).
    public enum ForwardReason: String, Sendable, Equatable {
        /// It was stale.
        case stale
        /// It was fresh, but the request (or the response's `no-cache`) asked for validation.
        case request
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
        switch policy {
        case .noCache: return .policy
        case .standard: break
        }
        if request.cacheControl.noStore { return .request }
        return nil
    }

    /// Standard policy: RFC 9111 for a shared cache. `entry` is the stored response, if any;
    /// `freshness` its freshness now.
    public static func decide(_ request: CacheRequest, policy: CachePolicy,
                              entry: (stored: StoredResponse, freshness: Freshness)?) -> CacheDecision {
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
        if !freshness.isFresh, !staleForbidden, !clientWantsValidation, freshEnough,
           let window = response.staleWhileRevalidate, freshness.staleness <= Int64(window), !validators.isEmpty {
            return .staleWhileRevalidate
        }
        guard !validators.isEmpty else { return .refetch(reason) }
        return .revalidate(validators, staleIfError: staleIfErrorAllowed(request, stored: stored, freshness: freshness),
                           reason: reason)
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
