import HTTPRules
import NIOHTTP1

/// Whether a shared cache may store a response (RFC 9111 §3), and which of its headers.
public enum Storability {
    /// Statuses passsage stores. Errors are not (a 404 from a mirror that is still syncing must not
    /// outlive the sync; the original never stored them either); 206 is a slice the data plane
    /// answers from a whole object; 304 refreshes an entry, it is not one. 302, 303 and 307 are
    /// stored only with explicit freshness, since they have no heuristic lifetime.
    public static let storedStatuses: Set<Int> = [200, 203, 300, 301, 302, 303, 307, 308]

    /// Why a response is not stored (also the `Cache-Status` detail).
    public enum Refusal: String, Sendable, Equatable {
        case method
        case status
        case requestNoStore = "request-no-store"
        case noStore = "no-store"
        case `private`
        case authorization
        case varyAll = "vary-star"
        /// Neither explicit freshness, `public`, nor a status with a heuristic lifetime (§3).
        case noFreshness = "no-freshness"
    }

    /// Redirects with no heuristic lifetime, which a `redirect_fallback` rule stores anyway, as
    /// fallbacks (`StoredResponse.isFallbackOnly`).
    public static let fallbackRedirectStatuses: Set<Int> = [302, 303, 307]

    /// `max-age`, `s-maxage` or `Expires`: the origin gave the response a lifetime.
    static func hasExplicitLifetime(_ headers: HTTPHeaders, _ cacheControl: CacheControl) -> Bool {
        cacheControl.maxAge != nil || cacheControl.sharedMaxAge != nil || headers.contains(name: "expires")
    }

    /// nil when the response to a `method` request with `requestHeaders` may be stored.
    /// `keepingRedirectFallbacks`: the rule's `redirect_fallback`, which stores 302, 303 and 307
    /// without a lifetime (as fallbacks only); every other condition still applies.
    public static func refusal(method: String, requestHeaders: HTTPHeaders, status: Int,
                               responseHeaders: HTTPHeaders, keepingRedirectFallbacks: Bool = false) -> Refusal? {
        guard method == "GET" else { return .method }
        guard storedStatuses.contains(status) else { return .status }
        if CacheControl(requestHeaders).noStore { return .requestNoStore }
        let cacheControl = CacheControl(responseHeaders)
        if cacheControl.noStore { return .noStore }
        // Qualified `private="..."` would allow storing the rest; storing none of it is simpler and
        // never wrong.
        if cacheControl.isPrivate { return .private }
        // §3.5: a shared cache stores a response to an authenticated request only when the origin
        // says it may be shared.
        if requestHeaders.contains(name: "authorization"),
           !(cacheControl.mustRevalidate || cacheControl.isPublic || cacheControl.sharedMaxAge != nil) {
            return .authorization
        }
        if responseHeaders[canonicalForm: "vary"].contains(where: { String($0).trimmingASCIIWhitespace() == "*" }) {
            return .varyAll
        }
        let explicit = hasExplicitLifetime(responseHeaders, cacheControl) || cacheControl.isPublic
        let fallback = keepingRedirectFallbacks && fallbackRedirectStatuses.contains(status)
        guard explicit || fallback || Freshness.heuristicallyCacheable.contains(status) else { return .noFreshness }
        return nil
    }

    /// Fields that are never stored: hop-by-hop ones, `Set-Cookie` (another client must never get
    /// this one's cookies), those a qualified `no-cache="..."` names (they may not be reused without
    /// revalidation; dropping them is the simple way), `Age` (recomputed on every hit), and
    /// `Content-Range` (hits answer ranges from the whole object).
    public static func headersToStore(_ responseHeaders: HTTPHeaders) -> HTTPHeaders {
        var headers = responseHeaders
        HopByHop.remove(from: &headers)
        var dropped: Set<String> = ["set-cookie", "set-cookie2", "age", "content-range"]
        dropped.formUnion(CacheControl(responseHeaders).noCacheFields)
        for name in Set(headers.map { $0.name.lowercased() }) where dropped.contains(name) || InternalHeaders.isInternal(name) {
            headers.remove(name: name)
        }
        return headers
    }
}
