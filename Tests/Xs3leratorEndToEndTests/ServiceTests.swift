import Foundation
import TestOrigin
import TestSupport
import Testing

/// The HTTP surface: routing, HEAD, redirects, headers that cross, startup errors, shutdown.
@Suite("xs3lerator service")
struct ServiceTests {
    @Test func routingHealthMethodsAndBadTargets() async throws {
        try await Xs3Fixture.with { fixture in
            let health = try await curl(["-w", " %{http_code}", "\(fixture.base)/healthz"])
            #expect(health.stdout == "ok 200")
            let put = try await curl(["-D", "-", "-o", "/dev/null", "-X", "PUT", fixture.url("/small")])
            #expect(put.stdout.hasPrefix("HTTP/1.1 405"))
            #expect(put.stdout.lowercased().contains("allow: get, head, post"))
            // POST is the manifest alias; without its two headers it is a bad request.
            let post = try await curl(["-w", " %{http_code}", "-X", "POST", fixture.url("/small")])
            #expect(post.stdout.hasSuffix(" 400"), "\(post.stdout)")
            for target in ["/test-key", "/", "/ftp://example.com/x", "/http:///nohost"] {
                let bad = try await curl(["-w", " %{http_code}", "--path-as-is", "\(fixture.base)\(target)"])
                #expect(bad.stdout.hasSuffix(" 400"), "\(target): \(bad.stdout)")
            }
        }
    }

    @Test func headIsPassedThroughWithItsLength() async throws {
        try await Xs3Fixture.with { fixture in
            let head = try await curl(["-I", fixture.url("/object/123456")])
            let lower = head.stdout.lowercased()
            #expect(head.stdout.hasPrefix("HTTP/1.1 200"))
            #expect(lower.contains("content-length: 123456"))
            #expect(lower.contains("etag: \"obj-123456\""))
            #expect(!lower.contains("x-xs3lerator"))
        }
    }

    @Test func headersThatCrossToTheOrigin() async throws {
        try await Xs3Fixture.with { fixture in
            let result = try await curl(["-H", "X-Xs3lerator-Cache-Key: k", "-H", "X-Xs3lerator-Read-Timeout: 30",
                                         "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: 1", "-H", "Proxy-Authorization: Basic eA==",
                                         "-H", "User-Agent: pip/24.0", "-H", "Authorization: Bearer token",
                                         "--path-as-is", fixture.url("/headers?a=1&b=%2F//x")])
            let lines = Set(result.stdout.split(separator: "\n").map(String.init))
            #expect(lines.contains("host: 127.0.0.1:\(fixture.origin.port)"))
            #expect(lines.contains("user-agent: pip/24.0"))
            #expect(lines.contains("authorization: Bearer token"))
            #expect(!lines.contains { $0.hasPrefix("x-xs3lerator") || $0.hasPrefix("range") || $0.hasPrefix("x-hop") || $0.hasPrefix("proxy-") })
        }
    }

    @Test func redirectsPassThroughOrAreFollowed() async throws {
        try await Xs3Fixture.with { fixture in
            let passed = try await curl(["-D", "-", "-o", "/dev/null", fixture.url("/redirect/2/object/1000")])
            #expect(passed.stdout.hasPrefix("HTTP/1.1 302"))
            #expect(passed.stdout.lowercased().contains("location: /redirect/1/object/1000"))

            let followed = try await curl(["-D", "-", "-o", "/dev/null", "-H", "X-Xs3lerator-Follow-Redirects: true",
                                           fixture.url("/redirect/3/object/1000?x=1")])
            #expect(followed.stdout.hasPrefix("HTTP/1.1 200"))
            #expect(followed.stdout.lowercased().contains("x-xs3lerator-final-url: \(fixture.originBase)/object/1000?x=1"))

            let tooMany = try await curl(["-w", "\n%{http_code}", "-H", "X-Xs3lerator-Follow-Redirects: true",
                                          fixture.url("/redirect/11/object/1000")])
            #expect(tooMany.stdout.hasSuffix("502"), "\(tooMany.stdout)")
        }
    }

    @Test func upstreamErrorsArePassedThrough() async throws {
        try await Xs3Fixture.with { fixture in
            let result = try await curl(["-w", "\n%{http_code}", fixture.url("/status/404?body=gone")])
            #expect(result.stdout == "gone\n404")
        }
    }

    @Test func gracefulShutdownWaitsForInFlightDownloads() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB", "--shutdown-grace-period", "30s"]) { fixture in
            let size: Int64 = 30_000_000
            // About 3 s at 10 MB/s per connection.
            async let transfer = download(fixture.url("/object/\(size)?ranges=none&rate=10000000"))
            try await waitUntil(timeout: 10, "the download to start") { fixture.origin.stats.bytesSent > 1_000_000 }
            fixture.xs3.signal(SIGTERM)
            let result = try await transfer
            #expect(result.sha256 == OriginContent.sha256(range: 0..<size))
            #expect(await fixture.xs3.waitForExit(timeout: 15) == 0)
        }
    }

    @Test(arguments: [
        (["--chunk-size", "512"], "--chunk-size"),
        (["--chunk-size", "6GiB"], "--chunk-size"),
        (["--chunk-size", "lots"], "--chunk-size"),
        (["--http-concurrency", "0"], "--http-concurrency"),
        (["--read-ahead", "1MiB", "--chunk-size", "8MiB"], "--read-ahead"),
        (["--temp-dir", "/nonexistent/dir"], "--temp-dir"),
        (["--upstream-connect-timeout", "0"], "--upstream-connect-timeout"),
        (["--port", "70000"], "--port"),
        (["--max-range-workers", "0"], "--max-range-workers"),
        (["--range-size", "100"], "--range-size"),
    ])
    func badOptionsFailWithAClearMessage(_ arguments: [String], option: String) async throws {
        let result = try await run(builtExecutable("xs3lerator"), arguments, timeout: 30)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("xs3lerator: error: "), "\(result.stderr)")
        #expect(result.stderr.contains(option))
    }
}
