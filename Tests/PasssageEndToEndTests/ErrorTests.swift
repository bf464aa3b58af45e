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
        defer { Task { await fixture.stop() } }
        let result = try await fixture.proxiedCurl(["-D", "-", "\(fixture.originURL)/small"])
        let (status, requestID) = statusAndRequestID(result.stdout)
        #expect(status == 502)
        #expect(requestID?.isEmpty == false)
        #expect(result.stdout.lowercased().contains("certificate"), "\(result.stdout)")
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
        defer { Task { await fixture.stop() } }
        let started = Date()
        let result = try await fixture.proxiedCurl(["-D", "-", "\(fixture.originURL)/stall"], timeout: 30)
        let elapsed = Date().timeIntervalSince(started)
        let (status, requestID) = statusAndRequestID(result.stdout)
        #expect(status == 504)
        #expect(requestID != nil)
        #expect(elapsed >= 0.9 && elapsed < 15, "took \(elapsed)s")
    }

    @Test("malformed, oversized and bad CONNECT requests get 400/431 and the proxy keeps serving")
    func badInput() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop(); Task { await origin.stop() } }

        let garbage = try rawExchange(port: proxy.port, send: Array("GARBAGE\u{1}\r\n\r\n".utf8))
        #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")
        #expect(garbage.lowercased().contains("x-request-id:"))

        let big = "GET http://127.0.0.1:\(origin.port)/small HTTP/1.1\r\nHost: x\r\nX-Big: "
            + String(repeating: "a", count: 100 * 1024) + "\r\n\r\n"
        let oversized = try rawExchange(port: proxy.port, send: Array(big.utf8))
        #expect(oversized.hasPrefix("HTTP/1.1 431"), "\(oversized.prefix(200))")

        let badConnect = try rawExchange(port: proxy.port, send: Array("CONNECT not a host:99999 HTTP/1.1\r\n\r\n".utf8))
        #expect(badConnect.hasPrefix("HTTP/1.1 400"), "\(badConnect)")

        let badScheme = try rawExchange(port: proxy.port, send: Array("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(badScheme.hasPrefix("HTTP/1.1 400"), "\(badScheme)")

        let stillServing = try await curl(["-x", proxy.proxyURL, "http://127.0.0.1:\(origin.port)/small"])
        #expect(stillServing.stdout == "ok\n")
        #expect(proxy.process.isRunning)
    }

    @Test("a client that disconnects mid-download closes the upstream connection")
    func clientDisconnectCancelsUpstream() async throws {
        let fixture = try await Fixture.start()
        defer { Task { await fixture.stop() } }
        // 10 MB at 1 MB/s; curl gives up after 2 s.
        let result = try await fixture.proxiedCurl(["-o", "/dev/null", "\(fixture.originURL)/bytes/10000000?rate=1000000"],
                                                   timeout: 2)
        #expect(result.status == 28)
        try await waitUntil(timeout: 10, "the origin connection to close") { fixture.origin.connectionCount == 0 }
    }
}
