import HTTPRules
import NIOHTTP1

/// A stored response as freshness sees it (RFC 9111 §4.2). Times are seconds since 1970.
public struct StoredResponse: Sendable, Equatable {
    public var status: Int
    /// The origin's headers as stored (`Storability.headersToStore`).
    public let headers: HTTPHeaders
    /// Their Cache-Control, parsed once (every decision on a hit reads it).
    public let cacheControl: CacheControl
    /// When the response was received (`stored_at`; refreshed by a successful revalidation).
    public var responseTime: Int64
    /// Its age when received (`corrected_initial_age`, §4.2.3), kept with the entry.
    public var initialAge: Int64

    public init(status: Int, headers: HTTPHeaders, responseTime: Int64, initialAge: Int64) {
        self.status = status
        self.headers = headers
        self.cacheControl = CacheControl(headers)
        self.responseTime = responseTime
        self.initialAge = initialAge
    }

    /// A redirect without a lifetime (302, 303 or 307 with no `max-age`, `s-maxage` or `Expires`),
    /// stored only because its rule keeps redirects as fallbacks (`redirect_fallback`): serving it
    /// while the upstream answers would replay a redirect that may have expired (a presigned
    /// URL), so it answers only when the upstream fails.
    /// (`public` ones were storable anyway, and are served as RFC 9111 says.)
    public var isFallbackOnly: Bool {
        Storability.fallbackRedirectStatuses.contains(status) && !Storability.hasExplicitLifetime(headers, cacheControl)
            && !cacheControl.isPublic
    }

    /// §4.2.3 at reception: the larger of the apparent age (`response_time - Date`) and the `Age`
    /// the upstream claimed plus the time the request took.
    public static func initialAge(headers: HTTPHeaders, requestTime: Int64, responseTime: Int64) -> Int64 {
        let date = headers.first(name: "date").flatMap { HTTPDate.parse($0, now: responseTime) } ?? responseTime
        let apparentAge = max(0, responseTime - date)
        let ageValue = headers.first(name: "age").flatMap { CacheControl.deltaSeconds($0.trimmingASCIIWhitespace()) } ?? 0
        let correctedAge = Int64(ageValue) + max(0, responseTime - requestTime)
        return max(apparentAge, correctedAge)
    }

    /// The `current_age` at `now` (§4.2.3), never negative.
    public func currentAge(now: Int64) -> Int64 {
        max(0, initialAge + max(0, now - responseTime))
    }
}

/// Where a freshness lifetime came from.
public enum FreshnessSource: String, Sendable, Equatable {
    case sharedMaxAge = "s-maxage"
    case maxAge = "max-age"
    case expires
    case heuristic
    /// None applies: the entry is stale as soon as it is stored.
    case none
}

/// How long a stored response stays fresh, and how old it is.
public struct Freshness: Sendable, Equatable {
    public var lifetime: Int64
    public var source: FreshnessSource
    public var age: Int64

    /// §4.2: fresh while the lifetime exceeds the age.
    public var isFresh: Bool { lifetime > age }
    /// Seconds past the lifetime (0 while fresh).
    public var staleness: Int64 { max(0, age - lifetime) }
    /// Seconds of freshness left (0 once stale).
    public var remaining: Int64 { max(0, lifetime - age) }

    /// Statuses a cache may give a heuristic lifetime (RFC 9110 §15.1).
    public static let heuristicallyCacheable: Set<Int> = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]

    /// The share of the time since `Last-Modified` given as a heuristic lifetime (§4.2.2: "typical
    /// setting ... 10%").
    public static let heuristicFraction: Int64 = 10

    /// The freshness of `stored` at `now` for a shared cache (§4.2.1): `s-maxage`, then `max-age`,
    /// then `Expires − Date`; failing those, a heuristic for heuristically cacheable statuses (or
    /// `public` responses): 10 % of `Date − Last-Modified`, measured when the response was
    /// received (the original measured from now, so its lifetimes grew without bound), and at most
    /// `heuristicLimit` seconds.
    public static func of(_ stored: StoredResponse, now: Int64, heuristicLimit: Int64) -> Freshness {
        let (lifetime, source) = lifetime(status: stored.status, headers: stored.headers, cacheControl: stored.cacheControl,
                                          responseTime: stored.responseTime, heuristicLimit: heuristicLimit)
        return Freshness(lifetime: lifetime, source: source, age: stored.currentAge(now: now))
    }

    /// `cacheControl`: `headers`' Cache-Control, parsed.
    public static func lifetime(status: Int, headers: HTTPHeaders, cacheControl: CacheControl, responseTime: Int64,
                                heuristicLimit: Int64) -> (Int64, FreshnessSource) {
        if let seconds = cacheControl.sharedMaxAge { return (Int64(seconds), .sharedMaxAge) }
        if let seconds = cacheControl.maxAge { return (Int64(seconds), .maxAge) }
        let date = headers.first(name: "date").flatMap { HTTPDate.parse($0, now: responseTime) } ?? responseTime
        if let expires = headers.first(name: "expires") {
            // An invalid date (`0`, `-1`) means already expired (§5.3).
            guard let time = HTTPDate.parse(expires, now: responseTime) else { return (0, .expires) }
            return (max(0, time - date), .expires)
        }
        guard heuristicallyCacheable.contains(status) || cacheControl.isPublic else { return (0, .none) }
        guard let lastModified = headers.first(name: "last-modified").flatMap({ HTTPDate.parse($0, now: responseTime) }),
              lastModified < date else { return (0, .none) }
        return (min(heuristicLimit, (date - lastModified) / heuristicFraction), .heuristic)
    }
}
