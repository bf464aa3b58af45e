@testable import CachePolicy
import HTTPRules
import NIOHTTP1
import Testing

@Suite("Cache-Control, dates and SHA-224")
struct ParsingTests {
    @Test("names are case-insensitive; quoted arguments keep their commas and escapes; empty elements are skipped")
    func directiveSyntax() {
        let cc = CacheControl(fieldValues: [#"Max-Age=60, , NO-CACHE="Set-Cookie, X-Foo", private, x-ext="a\"b""#])
        #expect(cc.maxAge == 60)
        #expect(cc.noCache && cc.noCacheFields == ["set-cookie", "x-foo"])
        #expect(cc.isPrivate && cc.privateFields.isEmpty)
        #expect(cc.directives["x-ext"] == [#"a"b"#])
        #expect(CacheControl(fieldValues: [#"max-age="30""#]).maxAge == 30, "the quoted form is accepted too")
    }

    @Test("several field lines are one list")
    func severalLines() {
        var headers = HTTPHeaders()
        headers.add(name: "Cache-Control", value: "public")
        headers.add(name: "cache-control", value: "s-maxage=10")
        let cc = CacheControl(headers)
        #expect(cc.isPublic && cc.sharedMaxAge == 10)
    }

    @Test("invalid or disagreeing freshness reads as stale; invalid leniency grants nothing", arguments: [
        ("max-age=abc", 0), ("max-age=-5", 0), ("max-age", 0), ("max-age=1 0", 0), ("max-age=60, max-age=30", 0),
        ("max-age=30, max-age=30", 30), ("max-age=99999999999999", 2_147_483_648),
    ])
    func invalidMaxAge(value: String, expected: Int) {
        #expect(CacheControl(fieldValues: [value]).maxAge == expected)
    }

    @Test("invalid lenient directives give nothing; min-fresh takes the strictest reading")
    func lenientDirectives() {
        #expect(CacheControl(fieldValues: ["stale-while-revalidate=x"]).staleWhileRevalidate == nil)
        #expect(CacheControl(fieldValues: ["stale-if-error=10, stale-if-error=20"]).staleIfError == 10)
        #expect(CacheControl(fieldValues: ["max-stale"]).maxStale == .any)
        #expect(CacheControl(fieldValues: ["max-stale=5"]).maxStale == .seconds(5))
        #expect(CacheControl(fieldValues: ["max-stale=soon"]).maxStale == nil)
        #expect(CacheControl(fieldValues: ["min-fresh=5, min-fresh=50"]).minFresh == 50)
        #expect(CacheControl(fieldValues: ["min-fresh=?"]).minFresh == CacheControl.deltaLimit)
    }

    @Test("a malformed flag still counts, so no-store is never lost to a typo after it")
    func malformedFlags() {
        #expect(CacheControl(fieldValues: ["no-store junk"]).noStore)
        #expect(CacheControl(fieldValues: [#"private="unterminated"#]).isPrivate)
    }

    @Test("the three HTTP date forms parse to the same instant; IMF-fixdate formats back")
    func httpDates() {
        let instant: Int64 = 784_111_777   // 1994-11-06 08:49:37 UTC
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == instant)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT", now: 1_800_000_000) == instant)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == instant)
        #expect(HTTPDate.format(instant) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(1_764_547_512) == "Mon, 01 Dec 2025 00:05:12 GMT")
        for invalid in ["0", "-1", "", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"] {
            #expect(HTTPDate.parse(invalid) == nil, "\(invalid)")
        }
    }

    @Test("RFC 850 two-digit years more than 50 years ahead belong to the past century")
    func twoDigitYears() {
        let now: Int64 = 1_798_761_600   // 2027-01-01
        #expect(HTTPDate.parse("Friday, 01-Jan-77 00:00:00 GMT", now: now).map { CivilTime.civil($0).year } == 2077)
        #expect(HTTPDate.parse("Saturday, 01-Jan-78 00:00:00 GMT", now: now).map { CivilTime.civil($0).year } == 1978)
    }

    @Test("SHA-224 matches the FIPS 180-4 vectors")
    func sha224() {
        #expect(SHA224.hex("") == "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f")
        #expect(SHA224.hex("abc") == "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7")
        #expect(SHA224.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "75388b16512776cc5dba5da1fd890150b0c6455cb4f58b1952522525")
        #expect(SHA224.hex(String(repeating: "a", count: 1000)) == "4e8f0ce90b64661a2b5e84be6d93a7d9b76871062f1814433d04a03d")
    }
}
