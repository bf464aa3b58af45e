import Foundation
import TestSupport
import Testing
import TestOrigin

@Suite("Upstream failures and bad input", .serialized)
struct ErrorTests {
    private func statusAndRequestID(_ headers: String) -> (Int?, String?) {
        var status: Int?
        var requestID: String?
        for line in headers.split(separator: "\r\n") {
            if line.hasPrefix("HTTP/") { status = Int(line.split(separator: " ")[1]) }
            if line.lowercased().hasPrefix("x-request-id:") {
                requestID = line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return (status, requestID)
    }

    @Test("an untrusted upstream certificate gives 502 with a body that says so")
    func untrustedUpstream() async throws {
        let fixture = try await Fixture.start(trustOrigin: false)
        try await withTeardown {
            let result = try await fixture.proxiedCurl(["-D", "-", "\(fixture.originURL)/small"])
            let (status, requestID) = statusAndRequestID(result.stdout)
            #expect(status == 502)
            #expect(requestID?.isEmpty == false)
            #expect(result.stdout.lowercased().contains("certificate"), "\(result.stdout)")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("a refused connection gives 502 at once")
    func refusedConnection() async throws {
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        let port = try unusedPort()
        let started = Date()
        let result = try await curl(["-x", proxy.proxyURL, "-D", "-", "http://127.0.0.1:\(port)/"])
        let (status, requestID) = statusAndRequestID(result.stdout)
        #expect(status == 502)
        #expect(requestID != nil)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("an upstream that stalls gives 504 after the read timeout")
    func stallingUpstream() async throws {
        let fixture = try await Fixture.start(proxyArguments: ["--upstream-read-timeout", "1s"])
        try await withTeardown {
            let started = Date()
            let result = try await fixture.proxiedCurl(["-D", "-", "\(fixture.originURL)/stall"], timeout: 30)
            let elapsed = Date().timeIntervalSince(started)
            let (status, requestID) = statusAndRequestID(result.stdout)
            #expect(status == 504)
            #expect(requestID != nil)
            #expect(elapsed >= 0.9 && elapsed < 15, "took \(elapsed)s")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("malformed, oversized and bad CONNECT requests get 400/431 and the proxy keeps serving")
    func badInput() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {

            let garbage = try await rawExchange(port: proxy.port, send: Array("GARBAGE\u{1}\r\n\r\n".utf8))
            #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
            #expect(garbage.lowercased().contains("x-request-id:"))

            let big = "GET http://127.0.0.1:\(origin.port)/small HTTP/1.1\r\nHost: x\r\nX-Big: "
                + String(repeating: "a", count: 100 * 1024) + "\r\n\r\n"
            let oversized = try await rawExchange(port: proxy.port, send: Array(big.utf8))
            #expect(oversized.hasPrefix("HTTP/1.1 431"), "\(oversized.prefix(200))")

            let badConnect = try await rawExchange(port: proxy.port, send: Array("CONNECT not a host:99999 HTTP/1.1\r\n\r\n".utf8))
            #expect(badConnect.hasPrefix("HTTP/1.1 400"), "\(badConnect)")

            let badScheme = try await rawExchange(port: proxy.port, send: Array("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(badScheme.hasPrefix("HTTP/1.1 400"), "\(badScheme)")

            let stillServing = try await curl(["-x", proxy.proxyURL, "http://127.0.0.1:\(origin.port)/small"])
            #expect(stillServing.stdout == "ok\n")
            #expect(proxy.process.isRunning)
        } teardown: {
            await origin.stop()
        }
    }

    @Test("a client that disconnects mid-download closes the upstream connection")
    func clientDisconnectCancelsUpstream() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            // 10 MB at 1 MB/s; curl gives up after 2 s.
            let result = try await fixture.proxiedCurl(["-o", "/dev/null", "\(fixture.originURL)/bytes/10000000?rate=1000000"],
                                                       timeout: 2)
            #expect(result.status == 28)
            try await waitUntil(timeout: 10, "the origin connection to close") { fixture.origin.connectionCount == 0 }
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("a chunked response broken before any byte reached the client becomes a 502, logged as such")
    func brokenChunkedResponse() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let reply = try await rawExchange(port: proxy.port, send: Array(
                "GET http://127.0.0.1:\(origin.port)/badchunk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            #expect(reply.hasPrefix("HTTP/1.1 502"), "\(reply)")
            #expect(reply.contains("upstream sent a malformed response\nrequest id: "), "\(reply)")
            try await waitUntil(timeout: 5, "the access-log line") { proxy.output.contains("/badchunk 502 ") }
            #expect(!proxy.output.contains("/badchunk 200"))
        } teardown: {
            await origin.stop()
        }
    }

    @Test("a malformed chunked request body gets 400 on the wire and in the log")
    func malformedRequestBody() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let reply = try await rawExchange(port: proxy.port, send: Array(
                ("POST http://127.0.0.1:\(origin.port)/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "4\r\nabcd\r\nzz\r\n").utf8))
            #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
            #expect(reply.contains("malformed chunked request body"), "\(reply)")
            try await waitUntil(timeout: 5, "the access-log line") { proxy.output.contains("/upload 400 bytes=") }
            let line = proxy.output.split(separator: "\n").first { $0.contains("/upload 400 bytes=") }.map(String.init) ?? ""
            #expect(line.contains("malformed_request"), "\(line)")
            #expect(!proxy.output.contains("client_closed"), "\(proxy.output)")
        } teardown: {
            await origin.stop()
        }
    }

    @Test("error bodies carry a short cause and the request id, not internal error text")
    func stableErrorBodies() async throws {
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        let port = try unusedPort()
        let reply = try await rawExchange(port: proxy.port, send: Array(
            "GET http://127.0.0.1:\(port)/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let (status, requestID) = statusAndRequestID(reply)
        #expect(status == 502)
        let body = reply.components(separatedBy: "\r\n\r\n").dropFirst().joined()
        #expect(body == "upstream connection failed\nrequest id: \(requestID ?? "?")\n", "\(body)")
        try await waitUntil(timeout: 5, "the detail in the log") {
            proxy.output.contains("request_id=\(requestID ?? "?") cause=")
        }
    }

    @Test("request framing the proxy will not pass on: other transfer codings get 501, Transfer-Encoding in HTTP/1.0 gets 400")
    func unsupportedFraming() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let gzipped = try await rawExchange(port: proxy.port, send: Array(
                ("POST http://127.0.0.1:\(origin.port)/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                    + "4\r\nabcd\r\n0\r\n\r\n").utf8))
            #expect(gzipped.hasPrefix("HTTP/1.1 501"), "\(gzipped)")
            let old = try await rawExchange(port: proxy.port, send: Array(
                ("POST http://127.0.0.1:\(origin.port)/upload HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "4\r\nabcd\r\n0\r\n\r\n").utf8))
            #expect(old.hasPrefix("HTTP/1.1 400"), "\(old)")
            #expect(origin.acceptedConnections == 0)
        } teardown: {
            await origin.stop()
        }
    }

    @Test("an unrequested 101 from the origin is a 502, and the client connection stays in step")
    func unrequestedUpgrade() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let reply = try await rawExchange(port: proxy.port, send: Array(
                ("GET http://127.0.0.1:\(origin.port)/status/101 HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "GET http://127.0.0.1:\(origin.port)/small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").utf8))
            #expect(reply.hasPrefix("HTTP/1.1 502"), "\(reply)")
            #expect(!reply.contains("101 Switching"), "\(reply)")
            #expect(reply.components(separatedBy: "HTTP/1.1 200 OK").count == 2, "the next response follows: \(reply)")
            #expect(reply.hasSuffix("ok\n"), "\(reply)")
        } teardown: {
            await origin.stop()
        }
    }
}
