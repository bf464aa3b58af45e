@testable import CachePolicy
import NIOHTTP1
import Testing

@Suite("Cache keys, invalidation and Cache-Status")
struct KeyAndStatusTests {
    @Test("ids are scheme/host/sha224 of the URL with its query sorted, as the original's documents")
    func ids() throws {
        let key = try #require(CacheKey(url: "https://PyPI.org:443/simple/requests/?b=2&A=1&a=0"))
        #expect(key.normalizedURL == "https://PyPI.org:443/simple/requests/?A=1&a=0&b=2", "by lower-cased name, then name")
        #expect(key.prefix == "https/pypi.org")
        #expect(key.id == "https/pypi.org/" + SHA224.hex("https://PyPI.org:443/simple/requests/?A=1&a=0&b=2"))
        #expect(key.varyIndexID == "https/pypi.org/_vary/" + key.urlHash)
        #expect(CacheKey(url: "http://a/x?b=1&a=2")?.id == CacheKey(url: "http://a/x?a=2&b=1")?.id,
                "bug 17: parameter order does not fragment the cache")
        #expect(CacheKey(url: "http://a/x?")?.normalizedURL == "http://a/x")
        #expect(CacheKey(url: "http://a/x?x=2&b=1&x=1")?.normalizedURL == "http://a/x?b=1&x=2&x=1",
                "repeated names keep their order: ?x=2&x=1 is not ?x=1&x=2 to every server")
        #expect(CacheKey(url: "http://[::1]:8080/x")?.prefix == "http/::1")
        #expect(CacheKey(url: "ftp://a/x") == nil)
    }

    @Test("vary strings name each header in Vary's order, lower-cased; * has none")
    func varyKeys() {
        let request = HTTPHeaders([("Accept-Encoding", "gzip"), ("accept-encoding", "br"), ("Accept-Language", "en")])
        let string = CacheKey.varyRequestString(vary: ["Accept-Encoding, User-Agent", "accept-language"], requestHeaders: request)
        #expect(string == "accept-encoding=gzip, br|user-agent=|accept-language=en")
        #expect(CacheKey.varyRequestString(vary: ["Accept-Encoding, *"], requestHeaders: request) == nil)
        #expect(CacheKey.varyRequestString(vary: [""], requestHeaders: request) == nil)
        #expect(CacheKey.varyKey("accept-encoding=gzip") == SHA224.hex("accept-encoding=gzip"))
        let key = CacheKey(url: "https://a/x")!
        #expect(key.variantID(varyKey: "v") == key.id + "+v")
    }

    @Test("bug 15: a successful unsafe request invalidates its URL and same-origin Location / Content-Location")
    func invalidation() {
        let targets = Invalidation.targets(method: "POST", status: 201, requestURL: "https://a.test/items?x=1",
                                           location: "/items/7", contentLocation: "https://A.TEST:443/items/7#top")
        #expect(targets == ["https://a.test/items?x=1", "https://a.test/items/7", "https://A.TEST:443/items/7"])
        #expect(Invalidation.targets(method: "DELETE", status: 204, requestURL: "https://a.test/dir/file",
                                     location: "other", contentLocation: "https://b.test/x") == ["https://a.test/dir/file", "https://a.test/dir/other"],
                "relative references resolve; another origin is never touched")
        #expect(Invalidation.targets(method: "PUT", status: 500, requestURL: "https://a.test/x", location: nil,
                                     contentLocation: nil).isEmpty, "an error changes nothing")
        #expect(Invalidation.targets(method: "GET", status: 200, requestURL: "https://a.test/x", location: "/y",
                                     contentLocation: nil).isEmpty)
        #expect(Invalidation.targets(method: "PATCH", status: 200, requestURL: "http://a.test/x", location: "https://a.test/x",
                                     contentLocation: nil) == ["http://a.test/x"], "another scheme is another origin")
    }

    @Test("Cache-Status serialises as one RFC 9651 list item with parameters")
    func cacheStatus() {
        #expect(CacheStatus(hit: true, ttl: 120).fieldValue == "passsage;hit;ttl=120")
        #expect(CacheStatus(forward: .uriMiss, stored: true).fieldValue == "passsage;fwd=uri-miss;stored")
        #expect(CacheStatus(forward: .stale, forwardStatus: 304, ttl: -5).fieldValue == "passsage;fwd=stale;fwd-status=304;ttl=-5")
        #expect(CacheStatus(forward: .method).fieldValue == "passsage;fwd=method")
        #expect(CacheStatus(hit: true, detail: "stale-if-error").fieldValue == "passsage;hit;detail=stale-if-error")
        #expect(CacheStatus(forward: .bypass, detail: "no store").fieldValue == #"passsage;fwd=bypass;detail="no store""#)
    }

    @Test("the plain hit's shortcut writes exactly what the serializer writes")
    func plainHitShortcut() {
        for ttl: Int64? in [nil, 0, 1, -7, 3600, 999_999_999_999_999, 1_000_000_000_000_000, Int64.max, Int64.min] {
            let status = CacheStatus(hit: true, ttl: ttl)
            #expect(status.fieldValue == status.serializedFieldValue, "ttl \(String(describing: ttl))")
        }
    }
}
