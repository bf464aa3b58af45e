import Foundation
import TestSupport
import Testing
import TestOrigin

@Suite("Streaming through interception", .serialized)
struct StreamingTests {
    @Test("50 MiB POST and PUT bodies reach the origin intact", arguments: ["POST", "PUT"])
    func largeUploads(method: String) async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let file = fixture.directory + "/upload.bin"
            let size = 50 * 1024 * 1024
            var data = Data(capacity: size)
            while data.count < size {
                data.append(contentsOf: OriginContent.block.prefix(size - data.count))
            }
            data[12345] ^= 0xFF  // not just the origin's own pattern
            try data.write(to: URL(fileURLWithPath: file))
            let expected = try await sha256Hex(ofFile: file)
            let upload = method == "PUT" ? ["-T", file] : ["--data-binary", "@" + file]
            let result = try await fixture.proxiedCurl(["-X", method, "-H", "Content-Type: application/octet-stream"]
                + upload + ["\(fixture.originURL)/upload"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "sha256=\(expected) bytes=\(size)\n")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("a 1 GiB download through interception is intact and the proxy stays under 150 MiB RSS", .tags(.heavy))
    func oneGiBDownload() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let size = 1 << 30
            let pid = fixture.proxy.pid
            let sampling = PeakRSSSampler(pid: pid)
            let result = try await run("/usr/bin/env", [
                "bash", "-c",
                "set -o pipefail; curl -sS --max-time 600 -x \(fixture.proxy.proxyURL) --cacert \(fixture.proxyCAFile) " +
                    "\(fixture.originURL)/bytes/\(size) | sha256sum",
            ], timeout: 620)
            let peak = await sampling.stop()
            #expect(result.status == 0, "\(result.stderr)")
            #expect(String(result.stdout.prefix(64)) == OriginContent.sha256(count: size))
            #expect(peak > 0 && peak < 150 * 1024 * 1024, "peak RSS \(peak / 1024 / 1024) MiB")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("plain http:// absolute-form requests are forwarded with Via and X-Request-Id, hop-by-hop removed")
    func absoluteFormHeaders() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let result = try await curl([
                "-x", proxy.proxyURL, "-D", "-",
                "-H", "Connection: keep-alive, X-Secret-Hop", "-H", "X-Secret-Hop: 1", "-H", "Proxy-Authorization: Basic Zm9vOmJhcg==",
                "-H", "X-Request-Id: client-chosen-id", "-H", "Via: 1.0 upstream-thing",
                "http://127.0.0.1:\(origin.port)/headers",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let text = result.stdout.lowercased()
            #expect(text.contains("x-request-id: client-chosen-id"))
            #expect(text.contains("via: 1.0 upstream-thing, 1.1 passsage"))
            #expect(!text.contains("x-secret-hop"))
            #expect(!text.contains("proxy-authorization"))
            #expect(text.contains("host: 127.0.0.1:\(origin.port)"))
        } teardown: {
            await origin.stop()
        }
    }

    @Test("pipelined requests are answered in order, on one connection, and Connection: close ends it")
    func pipelinedRequests() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let base = "http://127.0.0.1:\(origin.port)"
            // All three in one write: the second and third arrive while the first is still being relayed.
            let requests = "GET \(base)/bytes/300000 HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET \(base)/status/201?body=second HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET \(base)/headers HTTP/1.1\r\nHost: x\r\nX-Marker: third\r\nConnection: close\r\n\r\n"
            let reply = try await rawExchange(port: proxy.port, send: Array(requests.utf8), timeout: 20)
            let first = try #require(reply.range(of: "HTTP/1.1 200"))
            let second = try #require(reply.range(of: "HTTP/1.1 201"))
            let secondBody = try #require(reply.range(of: "\r\n\r\nsecond"))
            let third = try #require(reply.range(of: "HTTP/1.1 200", range: secondBody.upperBound..<reply.endIndex))
            #expect(first.lowerBound < second.lowerBound)
            #expect(reply[third.upperBound...].contains("x-marker: third"))
            #expect(origin.acceptedConnections == 1)
        } teardown: {
            await origin.stop()
        }
    }
}
