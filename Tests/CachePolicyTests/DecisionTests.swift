@testable import CachePolicy
import HTTPRules
import NIOHTTP1
import Testing

/// RFC 9111 decision tables as plain values: freshness sources, age arithmetic, storability and the
/// request-time decision.
@Suite("Freshness, storability and decisions")
struct DecisionTests {
    static let received: Int64 = 1_800_000_000
    static let day: Int64 = 86_400

    static func headers(_ fields: [(String, String)]) -> HTTPHeaders { HTTPHeaders(fields) }

    static func stored(_ fields: [(String, String)], status: Int = 200, initialAge: Int64 = 0) -> StoredResponse {
        StoredResponse(status: status, headers: headers(fields), responseTime: received, initialAge: initialAge)
    }

    static func date(_ offset: Int64) -> String { HTTPDate.format(received + offset) }

    // MARK: Freshness

    @Test("s-maxage wins over max-age, which wins over Expires − Date")
    func freshnessOrder() {
        let all: [(String, String)] = [("Cache-Control", "max-age=60, s-maxage=30"), ("Date", Self.date(0)),
                                       ("Expires", Self.date(600))]
        #expect(Freshness.of(Self.stored(all), now: Self.received, heuristicLimit: Self.day).source == .sharedMaxAge)
        let noShared = Self.stored([("Cache-Control", "max-age=60"), ("Expires", Self.date(600))])
        #expect(Freshness.of(noShared, now: Self.received, heuristicLimit: Self.day).lifetime == 60)
        let expires = Self.stored([("Date", Self.date(-100)), ("Expires", Self.date(500))])
        let freshness = Freshness.of(expires, now: Self.received, heuristicLimit: Self.day)
        #expect(freshness.source == .expires && freshness.lifetime == 600, "Expires − Date, not Expires − now")
        let invalid = Self.stored([("Expires", "0"), ("Last-Modified", Self.date(-Self.day))])
        #expect(Freshness.of(invalid, now: Self.received, heuristicLimit: Self.day).lifetime == 0, "an invalid Expires is already expired")
    }

    @Test("the heuristic is 10 % of Date − Last-Modified, capped, measured at reception, for heuristic statuses only")
    func heuristic() {
        let tenDaysOld = [("Date", Self.date(0)), ("Last-Modified", Self.date(-10 * Self.day))]
        let fresh = Freshness.of(Self.stored(tenDaysOld), now: Self.received, heuristicLimit: 7 * Self.day)
        #expect(fresh.source == .heuristic && fresh.lifetime == Self.day)
        let later = Freshness.of(Self.stored(tenDaysOld), now: Self.received + 365 * Self.day, heuristicLimit: 7 * Self.day)
        #expect(later.lifetime == Self.day, "bug 9: the lifetime does not grow with time")
        let ancient = [("Date", Self.date(0)), ("Last-Modified", Self.date(-3650 * Self.day))]
        #expect(Freshness.of(Self.stored(ancient), now: Self.received, heuristicLimit: 7 * Self.day).lifetime == 7 * Self.day)
        #expect(Freshness.of(Self.stored(tenDaysOld, status: 302), now: Self.received, heuristicLimit: Self.day).source == .none)
        #expect(Freshness.of(Self.stored(tenDaysOld + [("Cache-Control", "public")], status: 302), now: Self.received,
                             heuristicLimit: Self.day).source == .heuristic, "public allows a heuristic")
        #expect(Freshness.of(Self.stored([]), now: Self.received, heuristicLimit: Self.day).source == .none)
    }

    @Test("age: the larger of apparent and corrected age at reception, plus resident time (§4.2.3)")
    func ageArithmetic() {
        // The origin's clock is 30 s behind ours; an upstream cache said Age: 100; the request took 2 s.
        let upstream = Self.headers([("Date", Self.date(-30)), ("Age", "100")])
        #expect(StoredResponse.initialAge(headers: upstream, requestTime: Self.received - 2, responseTime: Self.received) == 102)
        let clockAhead = Self.headers([("Date", Self.date(50))])
        #expect(StoredResponse.initialAge(headers: clockAhead, requestTime: Self.received, responseTime: Self.received) == 0,
                "a Date in the future gives no negative age")
        let skewed = Self.headers([("Date", Self.date(-300))])
        #expect(StoredResponse.initialAge(headers: skewed, requestTime: Self.received - 1, responseTime: Self.received) == 300)
        let entry = Self.stored([("Cache-Control", "max-age=100")], initialAge: 40)
        #expect(entry.currentAge(now: Self.received + 59) == 99)
        #expect(Freshness.of(entry, now: Self.received + 59, heuristicLimit: 0).isFresh)
        #expect(!Freshness.of(entry, now: Self.received + 60, heuristicLimit: 0).isFresh, "fresh only while lifetime > age")
        #expect(entry.currentAge(now: Self.received - 10) == 40, "a clock going back never lowers the age")
    }

    // MARK: Storability

    @Test("no-store, private, Vary: * and errors are never stored; GET only")
    func refusals() {
        func refusal(method: String = "GET", request: [(String, String)] = [], status: Int = 200,
                     _ response: [(String, String)]) -> Storability.Refusal? {
            Storability.refusal(method: method, requestHeaders: Self.headers(request), status: status,
                                responseHeaders: Self.headers(response))
        }
        #expect(refusal([("Cache-Control", "max-age=60")]) == nil)
        #expect(refusal([("Cache-Control", "no-store, max-age=60")]) == .noStore)
        #expect(refusal(request: [("Cache-Control", "no-store")], [("Cache-Control", "max-age=60")]) == .requestNoStore)
        #expect(refusal([("Cache-Control", "private, max-age=60")]) == .private)
        #expect(refusal([("Cache-Control", #"private="Set-Cookie", max-age=60"#)]) == .private)
        #expect(refusal([("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding, *")]) == .varyAll)
        #expect(refusal(method: "POST", [("Cache-Control", "max-age=60")]) == .method)
        #expect(refusal(method: "HEAD", [("Cache-Control", "max-age=60")]) == .method)
        for status in [206, 304, 404, 500, 503] {
            #expect(refusal(status: status, [("Cache-Control", "max-age=60")]) == .status, "\(status)")
        }
        #expect(refusal(status: 302, []) == .noFreshness, "302 needs explicit freshness")
        #expect(refusal(status: 302, [("Cache-Control", "max-age=60"), ("Location", "/x")]) == nil)
        #expect(refusal(status: 200, []) == nil, "200 has a heuristic lifetime")
    }

    @Test("redirect_fallback: a redirect with no lifetime is kept, as a fallback only, and asked upstream every time")
    func redirectFallbacks() {
        let location = [("Location", "http://s3.test/b/data?X-Amz-Signature=1&X-Amz-Credential=c")]
        func refusal(status: Int, _ response: [(String, String)], request: [(String, String)] = []) -> Storability.Refusal? {
            Storability.refusal(method: "GET", requestHeaders: Self.headers(request), status: status,
                                responseHeaders: Self.headers(response), keepingRedirectFallbacks: true)
        }
        for status in [302, 303, 307] {
            #expect(refusal(status: status, location) == nil, "\(status)")
            #expect(Self.stored(location, status: status).isFallbackOnly, "\(status)")
        }
        #expect(refusal(status: 307, location + [("Cache-Control", "private")]) == .private, "still never private")
        #expect(refusal(status: 307, location, request: [("Authorization", "Bearer t")]) == .authorization)
        #expect(refusal(status: 404, location) == .status)
        #expect(!Self.stored(location + [("Cache-Control", "max-age=60")], status: 307).isFallbackOnly,
                "a lifetime the origin gave is served as usual")
        #expect(!Self.stored(location + [("Expires", Self.date(60))], status: 302).isFallbackOnly)
        #expect(!Self.stored(location, status: 301).isFallbackOnly, "301 has a heuristic lifetime")
        #expect(!Self.stored([], status: 200).isFallbackOnly)

        // Under NoRefresh (the registry blob rule), the stored redirect goes upstream first, with
        // the cache as its fallback; a stored body stays NoRefresh.
        let rule = ResolvedPolicy(.noRefresh, redirectFallback: true)
        let redirect = Self.stored(location, status: 307)
        let served = rule.serving(redirect)
        #expect(served.policy == .alwaysUpstream)
        let freshness = Freshness.of(redirect, now: Self.received, heuristicLimit: Self.day)
        let request = CacheRequest(method: "GET", headers: [:])
        #expect(CacheDecisions.decide(request, policy: served, entry: (redirect, freshness)) == .refetch(.stale, staleIfError: true))
        #expect(rule.serving(Self.stored([("Content-Length", "3")])).policy == .noRefresh)
        #expect(PolicyResolution(rule).resolved(for: redirect).policy == .alwaysUpstream)
        // A redirect with a lifetime is served while fresh, never replayed past it.
        let timed = Self.stored(location + [("Cache-Control", "max-age=60")], status: 307)
        #expect(rule.serving(timed).policy == .staleIfError)
        // A `public` one was storable anyway; rules without redirect_fallback are untouched.
        #expect(!Self.stored(location + [("Cache-Control", "public")], status: 307).isFallbackOnly)
        #expect(ResolvedPolicy(.standard).serving(redirect).policy == .standard)
        #expect(ResolvedPolicy(.noRefresh).serving(redirect).policy == .noRefresh)
    }

    @Test("bug 15: a response to an Authorization request is shared only where §3.5 allows")
    func bug15AuthorizationIsNotShared() {
        let auth = [("Authorization", "Bearer secret")]
        func refusal(_ cacheControl: String) -> Storability.Refusal? {
            Storability.refusal(method: "GET", requestHeaders: Self.headers(auth), status: 200,
                                responseHeaders: Self.headers([("Cache-Control", cacheControl)]))
        }
        #expect(refusal("max-age=600") == .authorization)
        #expect(refusal("public, max-age=600") == nil)
        #expect(refusal("s-maxage=600") == nil)
        #expect(refusal("must-revalidate, max-age=600") == nil)
    }

    @Test("bug 15: Set-Cookie is never stored, nor hop-by-hop, internal, Age or no-cache-named fields")
    func bug15StoredHeaders() {
        let response = Self.headers([
            ("Content-Type", "text/plain"), ("Set-Cookie", "session=1"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
            ("Age", "30"), ("X-Passsage-Policy", "nocache"), ("X-Xs3lerator-Cache-Hit", "true"), ("ETag", "\"v1\""),
            ("Cache-Control", #"no-cache="X-Secret", max-age=60"#), ("X-Secret", "s"), ("Content-Range", "bytes 0-1/2"),
        ])
        let stored = Storability.headersToStore(response)
        #expect(stored.map(\.name).sorted() == ["Cache-Control", "Content-Type", "ETag"])
    }

    // MARK: Decisions

    static func decide(request: [(String, String)] = [], method: String = "GET", policy: CachePolicy = .standard,
                       staleWhileRevalidate: Int64? = nil, _ entry: StoredResponse?, at now: Int64 = received) -> CacheDecision {
        CacheDecisions.decide(CacheRequest(method: method, headers: Self.headers(request)),
                              policy: ResolvedPolicy(policy, staleWhileRevalidate: staleWhileRevalidate),
                              entry: entry.map { ($0, Freshness.of($0, now: now, heuristicLimit: Self.day)) })
    }

    static let etag = ("ETag", "\"v1\"")
    static let lastModified = ("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT")

    @Test("unsafe methods, NoCache and request no-store bypass the cache; a miss with only-if-cached is 504")
    func bypassAndMiss() {
        #expect(Self.decide(method: "POST", nil) == .bypass(.method))
        #expect(Self.decide(policy: .noCache, nil) == .bypass(.policy))
        #expect(Self.decide(request: [("Cache-Control", "no-store")], Self.stored([("Cache-Control", "max-age=60")])) == .bypass(.request))
        #expect(Self.decide(nil) == .miss)
        #expect(Self.decide(request: [("Cache-Control", "only-if-cached")], nil) == .gatewayTimeout)
        #expect(DefaultPolicyResolver().resolve(PolicyRequest(method: "GET", url: "http://a/")!).resolved.policy == .standard)
    }

    @Test("a fresh entry is a hit; no-cache, max-age=0 and Pragma: no-cache revalidate it (fwd=request)")
    func requestForcesRevalidation() {
        let entry = Self.stored([("Cache-Control", "max-age=600"), Self.etag])
        #expect(Self.decide(entry) == .hit(.fresh))
        let revalidate = CacheDecision.revalidate(Validators(entityTag: "\"v1\"", lastModified: nil), staleIfError: false,
                                                  reason: .request)
        #expect(Self.decide(request: [("Cache-Control", "no-cache")], entry) == revalidate)
        #expect(Self.decide(request: [("Cache-Control", "max-age=0")], entry) == revalidate, "even at age 0")
        #expect(Self.decide(request: [("Pragma", "no-cache")], entry) == revalidate)
        #expect(Self.decide(request: [("Pragma", "no-cache"), ("Cache-Control", "max-age=900")], entry) == .hit(.fresh),
                "Pragma is ignored next to Cache-Control")
        #expect(Self.decide(request: [("Cache-Control", "max-age=100")], entry, at: Self.received + 100) == .hit(.fresh))
        #expect(Self.decide(request: [("Cache-Control", "max-age=100")], entry, at: Self.received + 101) == revalidate)
    }

    @Test("min-fresh wants that much freshness left; max-stale accepts staleness unless the origin forbids it")
    func minFreshAndMaxStale() {
        let entry = Self.stored([("Cache-Control", "max-age=100"), Self.etag])
        #expect(Self.decide(request: [("Cache-Control", "min-fresh=50")], entry, at: Self.received + 50) == .hit(.fresh))
        if case .revalidate = Self.decide(request: [("Cache-Control", "min-fresh=51")], entry, at: Self.received + 50) {} else {
            Issue.record("min-fresh not met: revalidate")
        }
        #expect(Self.decide(request: [("Cache-Control", "max-stale=30")], entry, at: Self.received + 130) == .hit(.staleAllowed))
        #expect(Self.decide(request: [("Cache-Control", "max-stale")], entry, at: Self.received + 10_000) == .hit(.staleAllowed))
        if case .revalidate(_, _, .stale) = Self.decide(request: [("Cache-Control", "max-stale=30")], entry, at: Self.received + 131) {} else {
            Issue.record("beyond max-stale: revalidate as stale")
        }
        for forbidding in ["max-age=100, must-revalidate", "max-age=100, proxy-revalidate", "s-maxage=100", "max-age=100, no-cache"] {
            let strict = Self.stored([("Cache-Control", forbidding), Self.etag])
            if case .revalidate = Self.decide(request: [("Cache-Control", "max-stale")], strict, at: Self.received + 200) {} else {
                Issue.record("\(forbidding) forbids serving stale")
            }
        }
    }

    @Test("response no-cache (also its field-name form) revalidates even a fresh entry")
    func responseNoCache() {
        for value in ["no-cache, max-age=600", #"no-cache="Set-Cookie", max-age=600"#] {
            let entry = Self.stored([("Cache-Control", value), Self.etag])
            guard case .revalidate(_, let staleIfError, .stale) = Self.decide(entry) else {
                Issue.record("\(value): revalidate")
                continue
            }
            #expect(!staleIfError)
        }
    }

    @Test("stale: revalidate with whichever validator exists (ETag-only, Last-Modified-only); none means refetch")
    func staleEntries() {
        let etagOnly = Self.stored([("Cache-Control", "max-age=10"), Self.etag])
        #expect(Self.decide(etagOnly, at: Self.received + 20)
            == .revalidate(Validators(entityTag: "\"v1\"", lastModified: nil), staleIfError: false, reason: .stale))
        let lastModifiedOnly = Self.stored([("Cache-Control", "max-age=10"), Self.lastModified])
        #expect(Self.decide(lastModifiedOnly, at: Self.received + 20)
            == .revalidate(Validators(entityTag: nil, lastModified: Self.lastModified.1), staleIfError: false, reason: .stale),
                "bug 6 and the cross-component bug: Last-Modified-only entries are really revalidated")
        #expect(Self.decide(Self.stored([("Cache-Control", "max-age=10")]), at: Self.received + 20) == .refetch(.stale, staleIfError: false))
        #expect(Self.decide(request: [("Cache-Control", "only-if-cached")], etagOnly, at: Self.received + 20) == .gatewayTimeout)
    }

    @Test("bug 8: stale-while-revalidate serves stale and asks for a background refresh, within its window only")
    func staleWhileRevalidate() {
        let entry = Self.stored([("Cache-Control", "max-age=10, stale-while-revalidate=60"), Self.etag])
        #expect(Self.decide(entry, at: Self.received + 70) == .staleWhileRevalidate)
        if case .revalidate = Self.decide(entry, at: Self.received + 71) {} else { Issue.record("past the window: revalidate") }
        if case .revalidate = Self.decide(request: [("Cache-Control", "no-cache")], entry, at: Self.received + 30) {} else {
            Issue.record("a client asking for validation is not served stale")
        }
        let strict = Self.stored([("Cache-Control", "max-age=10, stale-while-revalidate=60, must-revalidate"), Self.etag])
        if case .revalidate = Self.decide(strict, at: Self.received + 30) {} else { Issue.record("must-revalidate wins") }
    }

    @Test("stale-if-error from the response or the request, within its window, unless stale use is forbidden")
    func staleIfError() {
        func allowed(_ response: String, request: String? = nil, at offset: Int64) -> Bool {
            let entry = Self.stored([("Cache-Control", response), Self.etag])
            let headers: [(String, String)] = request.map { [("Cache-Control", $0)] } ?? []
            guard case .revalidate(_, let staleIfError, _) = Self.decide(request: headers, entry, at: Self.received + offset) else {
                return false
            }
            return staleIfError
        }
        #expect(allowed("max-age=10, stale-if-error=100", at: 110))
        #expect(!allowed("max-age=10, stale-if-error=100", at: 111))
        #expect(allowed("max-age=10", request: "stale-if-error=50", at: 60))
        #expect(!allowed("max-age=10", at: 20))
        #expect(!allowed("max-age=10, stale-if-error=100, must-revalidate", at: 20))
    }
}
