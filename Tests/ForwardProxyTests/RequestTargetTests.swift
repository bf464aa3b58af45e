@testable import ForwardProxy
import HTTPRules
import NIOHTTP1
import Testing

@Suite("Request targets and authorities")
struct RequestTargetTests {
    @Test("CONNECT authorities", arguments: [
        ("example.com:443", "example.com", 443),
        ("EXAMPLE.com:8443", "example.com", 8443),
        ("127.0.0.1:1", "127.0.0.1", 1),
        ("[::1]:8443", "::1", 8443),
        ("[2001:db8::1]:443", "2001:db8::1", 443),
    ])
    func connectAuthorities(text: String, host: String, port: Int) throws {
        let target = try ProxyRequestTarget.parse(method: "CONNECT", uri: text)
        #expect(target == .authority(Authority(host: host, port: port)))
    }

    @Test("invalid CONNECT authorities", arguments: [
        "example.com", "example.com:", "example.com:0", "example.com:65536", "exa mple.com:443", ":443",
        "[::1:443", "[::1]443", "[zz::1]:443", "host:44a3", "a@b:443", "",
    ])
    func invalidAuthorities(text: String) {
        #expect(throws: RequestTargetError.self) { try ProxyRequestTarget.parse(method: "CONNECT", uri: text) }
    }

    @Test("absolute-form URLs")
    func absoluteForm() throws {
        #expect(try ProxyRequestTarget.parse(method: "GET", uri: "http://Example.com/a/b?x=1#frag")
            == .absolute(scheme: .http, authority: Authority(host: "example.com", port: 80), pathAndQuery: "/a/b?x=1"))
        #expect(try ProxyRequestTarget.parse(method: "GET", uri: "HTTPS://[::1]:8443")
            == .absolute(scheme: .https, authority: Authority(host: "::1", port: 8443), pathAndQuery: "/"))
        #expect(try ProxyRequestTarget.parse(method: "GET", uri: "http://h?q")
            == .absolute(scheme: .http, authority: Authority(host: "h", port: 80), pathAndQuery: "/?q"))
        #expect(try ProxyRequestTarget.parse(method: "GET", uri: "http://h//double//slash%2F")
            == .absolute(scheme: .http, authority: Authority(host: "h", port: 80), pathAndQuery: "//double//slash%2F"))
        #expect(try ProxyRequestTarget.parse(method: "GET", uri: "/local") == .origin(pathAndQuery: "/local"))
    }

    @Test("rejected request targets")
    func rejected() {
        #expect(throws: RequestTargetError.unsupportedScheme("ftp")) { try ProxyRequestTarget.parse(method: "GET", uri: "ftp://h/") }
        #expect(throws: RequestTargetError.userInfoNotAllowed) { try ProxyRequestTarget.parse(method: "GET", uri: "http://u:p@h/") }
        #expect(throws: RequestTargetError.self) { try ProxyRequestTarget.parse(method: "GET", uri: "*") }
        #expect(throws: RequestTargetError.self) { try ProxyRequestTarget.parse(method: "GET", uri: "http:///path") }
    }

    @Test("URL authority omits the default port and brackets IPv6")
    func urlAuthority() {
        #expect(Authority(host: "h", port: 443).urlAuthority(scheme: .https) == "h")
        #expect(Authority(host: "h", port: 8443).urlAuthority(scheme: .https) == "h:8443")
        #expect(Authority(host: "::1", port: 80).urlAuthority(scheme: .http) == "[::1]")
        #expect(Authority(host: "::1", port: 81).description == "[::1]:81")
    }

    @Test("invalid URL characters are percent-encoded, existing escapes kept")
    func upstreamURLEncoding() {
        #expect(UpstreamURL.encodeInvalidCharacters("/a b|c?d={x}") == "/a%20b%7Cc?d=%7Bx%7D")
        #expect(UpstreamURL.encodeInvalidCharacters("/already%20encoded") == "/already%20encoded")
        #expect(UpstreamURL.encodeInvalidCharacters("/é") == "/%C3%A9")
    }
}

@Suite("Header rules")
struct HeaderRulesTests {
    @Test("hop-by-hop fields and those named in Connection are removed; Via appended; id set")
    func upstreamHeaders() {
        let client = HTTPHeaders([
            ("Host", "wrong"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic xyz"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Via", "1.0 a"), ("Accept", "*/*"),
            ("X-Xs3lerator-Cache-Key", "forged"), ("x-passsage-policy", "NoRefresh"), ("X-Xs3leratorish", "kept"),
        ])
        let headers = HeaderRules.upstreamRequestHeaders(from: client, hostHeader: "example.com:8080", requestID: "rid")
        #expect(headers["host"] == ["example.com:8080"])
        #expect(headers["via"] == ["1.0 a, 1.1 passsage"])
        #expect(headers["x-request-id"] == ["rid"])
        #expect(headers["accept"] == ["*/*"])
        for name in ["connection", "x-hop", "keep-alive", "proxy-authorization", "proxy-connection", "te",
                     "transfer-encoding", "upgrade", "x-xs3lerator-cache-key", "x-passsage-policy"] {
            #expect(!headers.contains(name: name), "\(name) must be removed")
        }
        #expect(headers["x-xs3leratorish"] == ["kept"], "only the exact prefixes are internal")
    }

    @Test("one hop-by-hop list: Connection and Proxy-Connection name more, with spaces and any case")
    func hopByHopNaming() {
        var headers = HTTPHeaders([("Connection", " X-A ,x-b"), ("Proxy-Connection", "X-C"), ("X-A", "1"), ("x-B", "2"),
                                   ("X-C", "3"), ("X-D", "4")])
        HopByHop.remove(from: &headers)
        #expect(headers.map(\.name) == ["X-D"])
        #expect(Via.names("xs3lerator", in: HTTPHeaders([("Via", "1.1 passsage, 1.1 xs3lerator")])))
        #expect(!Via.names("xs3lerator", in: HTTPHeaders([("Via", "1.1 xs3lerator-2")])))
        #expect(Via.names("xs3lerator", in: HTTPHeaders([("Via", "1.1 XS3LERATOR")])))
    }

    @Test("response headers keep end-to-end fields")
    func responseHeaders() {
        let upstream = HTTPHeaders([("Content-Length", "3"), ("Connection", "close"), ("ETag", "\"x\""),
                                    ("Proxy-Authenticate", "Basic")])
        let headers = HeaderRules.clientResponseHeaders(from: upstream, requestID: "r1")
        #expect(headers["content-length"] == ["3"])
        #expect(headers["etag"] == ["\"x\""])
        #expect(!headers.contains(name: "connection"))
        #expect(!headers.contains(name: "proxy-authenticate"))
        #expect(headers["via"] == ["1.1 passsage"])
    }

    @Test("request ids: a sane client id is kept, anything else replaced")
    func requestIDs() {
        #expect(RequestID.resolve(from: HTTPHeaders([("X-Request-Id", "abc-123")])) == "abc-123")
        let generated = RequestID.resolve(from: HTTPHeaders([("X-Request-Id", "has space")]))
        #expect(generated.count == 32 && generated.allSatisfy(\.isHexDigit))
        #expect(RequestID.resolve(from: HTTPHeaders([("X-Request-Id", String(repeating: "a", count: 200))])).count == 32)
        #expect(RequestID.generate() != RequestID.generate())
    }
}

@Suite("No-intercept host patterns")
struct HostPatternListTests {
    @Test("pattern forms")
    func forms() throws {
        let list = try HostPatternList(parsing: ["pinned.example.com, .corp.example", "*.apple.com"])
        #expect(list.matches("pinned.example.com"))
        #expect(list.matches("PINNED.example.com"))
        #expect(!list.matches("other.example.com"))
        #expect(list.matches("corp.example"))
        #expect(list.matches("a.b.corp.example"))
        #expect(!list.matches("notcorp.example"))
        #expect(list.matches("x.apple.com"))
        #expect(!list.matches("apple.com"))
        #expect(try HostPatternList(parsing: ["*"]).matches("anything"))
        #expect(!HostPatternList.empty.matches("anything"))
        #expect(try HostPatternList(parsing: ["[::1]"]).matches("::1"))
    }

    @Test("invalid patterns are rejected", arguments: ["bad host!", "ex*ample.com", "*.", "."])
    func invalid(pattern: String) {
        #expect(throws: HostPatternError.self) { try HostPatternList(parsing: [pattern]) }
    }
}
