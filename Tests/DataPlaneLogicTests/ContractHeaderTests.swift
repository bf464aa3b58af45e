import NIOHTTP1
import Testing
import DataPlane
import Xs3leratorService

@Suite("xs3lerator contract headers")
struct ContractHeaderTests {
    @Test func everyContractHeaderIsParsed() {
        let headers = HTTPHeaders([
            ("X-Xs3lerator-Cache-Key", "https/pypi.org/abc"), ("x-xs3lerator-cache-skip", "true"),
            ("X-Xs3lerator-Object-Size", "1234"), ("X-Xs3lerator-Tls-Skip-Verify", "true"),
            ("X-Xs3lerator-Follow-Redirects", "true"), ("X-Xs3lerator-Manifest", "WFMzTQ=="),
            ("X-Xs3lerator-If-None-Match", "\"v1\""), ("X-Xs3lerator-If-Modified-Since", "Sat, 21 Nov 2026 00:00:00 GMT"),
            ("X-Xs3lerator-Stale-If-Error", "true"), ("X-Xs3lerator-Background-Revalidate", "true"),
            ("X-Xs3lerator-Connect-Timeout", "2.5"), ("X-Xs3lerator-Read-Timeout", "0"),
            ("X-Xs3lerator-Link-Manifest-Source", "a"), ("X-Xs3lerator-Link-Manifest-Target", "b"),
        ])
        let contract = ContractHeaders(headers)
        #expect(contract.cacheKey == "https/pypi.org/abc")
        #expect(contract.cacheSkip)
        #expect(contract.objectSize == 1234)
        #expect(contract.tlsSkipVerify && contract.followRedirects && contract.staleIfError && contract.backgroundRevalidate)
        #expect(contract.manifest == "WFMzTQ==")
        #expect(contract.ifNoneMatch == "\"v1\"")
        #expect(contract.ifModifiedSince == "Sat, 21 Nov 2026 00:00:00 GMT")
        #expect(contract.connectTimeout == .milliseconds(2500))
        #expect(contract.readTimeout == .some(nil), "0 means no read timeout")
        #expect(contract.linkManifestSource == "a" && contract.linkManifestTarget == "b")
    }

    @Test func oddValuesCountAsAbsentOrFalse() {
        let contract = ContractHeaders(HTTPHeaders([
            ("X-Xs3lerator-Cache-Skip", "TRUE"), ("X-Xs3lerator-Follow-Redirects", "1"), ("X-Xs3lerator-Cache-Key", ""),
            ("X-Xs3lerator-Connect-Timeout", "-1"), ("X-Xs3lerator-Read-Timeout", "soon"), ("X-Xs3lerator-Object-Size", "-4"),
            ("X-Xs3lerator-Manifest", "caf\u{e9}"),
        ]))
        #expect(!contract.cacheSkip && !contract.followRedirects)
        #expect(contract.cacheKey == nil && contract.manifest == nil && contract.objectSize == nil)
        #expect(contract.connectTimeout == nil)
        #expect(contract.readTimeout == nil, "unparseable: use the default")
        #expect(ContractHeaders(HTTPHeaders([("X-Xs3lerator-Read-Timeout", "1.5")])).readTimeout == .some(.milliseconds(1500)))
    }

    @Test func aRequestThatWentThroughAnXs3leratorHasLooped() {
        #expect(DataPlaneHeaders.hasLooped(HTTPHeaders([("Via", DataPlaneHeaders.via)])))
        #expect(DataPlaneHeaders.hasLooped(HTTPHeaders([("Via", "1.0 fred, 1.1 xs3lerator")])))
        #expect(!DataPlaneHeaders.hasLooped(HTTPHeaders([("Via", "1.1 squid (squid/6.6), 1.1 xs3lerator-like")])))
        #expect(!DataPlaneHeaders.hasLooped(HTTPHeaders()))
    }

    @Test func hugeTimeoutsAreClampedNotATrap() {
        let contract = ContractHeaders(HTTPHeaders([
            ("X-Xs3lerator-Connect-Timeout", "1e300"), ("X-Xs3lerator-Read-Timeout", "9300000000000000"),
        ]))
        #expect(contract.connectTimeout == ContractHeaders.longestTimeout)
        #expect(contract.readTimeout == .some(ContractHeaders.longestTimeout))
        #expect(ContractHeaders(HTTPHeaders([("X-Xs3lerator-Read-Timeout", "inf")])).readTimeout == nil)
    }

    @Test func upstreamRequestHeadersLoseContractHopByHopHostAndRange() {
        let client = HTTPHeaders([
            ("Host", "xs3:8080"), ("Range", "bytes=0-1"), ("X-Xs3lerator-Cache-Key", "k"), ("Connection", "keep-alive, X-Private"),
            ("X-Private", "secret"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic x"),
            ("User-Agent", "pip/24"), ("Accept-Encoding", "gzip"), ("Authorization", "Bearer t"), ("If-None-Match", "\"e\""),
            ("Cookie", "a=1"), ("Cookie", "b=2"),
        ])
        let upstream = DataPlaneHeaders.upstreamRequestHeaders(from: client)
        #expect(upstream.map(\.name) == ["User-Agent", "Accept-Encoding", "Authorization", "If-None-Match", "Cookie", "Cookie"])
        // Keyed: the client's conditionals never go upstream (only the cached entry's validators do).
        var conditional = client
        conditional.add(contentsOf: [("If-Modified-Since", "x"), ("If-Range", "\"e\"")])
        let keyed = DataPlaneHeaders.upstreamRequestHeaders(from: conditional, keyed: true)
        #expect(keyed.map(\.name) == ["User-Agent", "Accept-Encoding", "Authorization", "Cookie", "Cookie"])
    }

    @Test func clientResponseHeadersLoseFramingUnlessKept() {
        let upstream = HTTPHeaders([
            ("Content-Type", "application/zip"), ("Content-Length", "10"), ("Content-Range", "bytes 0-9/10"),
            ("Accept-Ranges", "none"), ("Transfer-Encoding", "chunked"), ("Connection", "close"),
            ("X-Xs3lerator-Cache-Hit", "true"), ("ETag", "\"e\""), ("Content-Encoding", "gzip"),
        ])
        #expect(DataPlaneHeaders.clientResponseHeaders(from: upstream).map(\.name) == ["Content-Type", "ETag", "Content-Encoding"])
        #expect(DataPlaneHeaders.clientResponseHeaders(from: upstream, keepFraming: true).map(\.name)
            == ["Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Content-Encoding"])
    }
}
