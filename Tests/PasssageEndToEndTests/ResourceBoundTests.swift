import Foundation
import TestSupport
import Testing
import TestOrigin

/// Clients that send and never read, and more connections than descriptors: memory, log volume and
/// CPU stay bounded, and the proxy serves again afterwards.
@Suite("Hostile clients: memory, log volume, descriptors", .serialized)
struct ResourceBoundTests {
    static let mib = 1024 * 1024

    /// Floods `request` pipelined 2,000 times per write for 5 s without reading, on one connection,
    /// and checks RSS during and after, and the number of access-log lines.
    private func floodWithoutReading(_ request: String, proxy: PasssageProcess) async throws {
        let baseline = residentSetSize(pid: proxy.pid) ?? 0
        let linesBefore = proxy.output.split(separator: "\n").count
        let pid = proxy.pid
        let sampling = PeakRSSSampler(pid: pid)
        let batch = Array(String(repeating: request, count: 2000).utf8)
        // One connection at a time for 5 s; a closed one (pipelining limit reached) is replaced.
        let (sent, connections) = try await onThread { () -> (Int, Int) in
            let deadline = Date().addingTimeInterval(5)
            var sent = 0
            var connections = 0
            while Date() < deadline, connections < 10_000 {
                let connection = try RawConnection(port: proxy.port)
                connections += 1
                sent += connection.flood(batch, seconds: deadline.timeIntervalSinceNow)
            }
            return (sent, connections)
        }
        let peak = await sampling.stop()
        // The connection is closed now; memory goes back down (allocator caches aside).
        try await waitUntil(timeout: 10, "RSS to return near its baseline") {
            (residentSetSize(pid: pid) ?? .max) < baseline + 40 * Self.mib
        }
        let lines = proxy.output.split(separator: "\n").count - linesBefore
        print("flood: \(connections) connections, \(sent) bytes sent, \(lines) log lines, peak RSS \(peak / Self.mib) MiB, baseline \(baseline / Self.mib) MiB")
        #expect(peak < 100 * Self.mib, "peak RSS \(peak / Self.mib) MiB (baseline \(baseline / Self.mib) MiB)")
        // Per connection: what the socket buffers take before the client's output backs up, or the
        // pipelining limit (32) and one notice line when the responses are small.
        #expect(lines < connections * 34 + 20_000, "\(lines) log lines for \(connections) flooding connections")
        #expect(sent > 0)
        #expect(proxy.process.isRunning)
    }

    @Test("pipelined requests from a client that never reads: RSS under 100 MiB, log lines bounded", .tags(.heavy))
    func pipelinedFloodPlain() async throws {
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await floodWithoutReading("GET http://mitm.it/ HTTP/1.1\r\nHost: mitm.it\r\n\r\n", proxy: proxy)
        let after = try await curl(["-x", proxy.proxyURL, "-o", "/dev/null", "-w", "%{http_code}", "http://mitm.it/cert/pem"])
        #expect(after.stdout == "200")
    }

    @Test("the same flood of requests answered with 502 stays bounded too", .tags(.heavy))
    func pipelinedFloodOf502s() async throws {
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        let refused = try unusedPort()
        try await floodWithoutReading("GET http://127.0.0.1:\(refused)/ HTTP/1.1\r\nHost: x\r\n\r\n", proxy: proxy)
    }

    @Test("pipelined requests inside a TLS tunnel from a client that never reads stay bounded", .tags(.heavy))
    func pipelinedFloodInTunnel() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let proxy = fixture.proxy
            let baseline = residentSetSize(pid: proxy.pid) ?? 0
            let linesBefore = proxy.output.split(separator: "\n").count
            // Python's ssl: CONNECT, handshake, then write pipelined requests for 5 s and never read.
            let script = """
                import socket, ssl, sys, time
                proxy_port, ca = int(sys.argv[1]), sys.argv[2]
                sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
                sock.sendall(b"CONNECT mitm.it:443 HTTP/1.1\\r\\nHost: mitm.it:443\\r\\n\\r\\n")
                head = b""
                while b"\\r\\n\\r\\n" not in head:
                    head += sock.recv(1)
                assert head.startswith(b"HTTP/1.1 200"), head
                tls = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname="mitm.it")
                tls.settimeout(0.2)
                batch = b"GET / HTTP/1.1\\r\\nHost: mitm.it\\r\\n\\r\\n" * 2000
                sent, deadline = 0, time.time() + 5
                while time.time() < deadline:
                    try:
                        sent += tls.send(batch)
                    except (socket.timeout, ssl.SSLWantWriteError):
                        pass
                    except OSError:
                        break
                print(sent)
                """
            let pid = proxy.pid
            let sampling = PeakRSSSampler(pid: pid)
            let result = try await run("/usr/bin/env", ["python3", "-c", script, String(proxy.port), fixture.proxyCAFile],
                                       timeout: 60)
            let peak = await sampling.stop()
            #expect(result.status == 0, "\(result.stderr)")
            try await waitUntil(timeout: 10, "RSS to return near its baseline") {
                (residentSetSize(pid: pid) ?? .max) < baseline + 40 * Self.mib
            }
            let lines = proxy.output.split(separator: "\n").count - linesBefore
            #expect(peak < 100 * Self.mib, "peak RSS \(peak / Self.mib) MiB (baseline \(baseline / Self.mib) MiB)")
            print("tunnel flood: \(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) bytes sent, \(lines) log lines, peak RSS \(peak / Self.mib) MiB")
            #expect(lines < 20_000, "\(lines) log lines")
        } teardown: {
            await fixture.stop()
        }
    }

    /// Holds `count` idle connections for 5 s and returns the proxy's CPU seconds meanwhile.
    private func holdIdleConnections(_ count: Int, proxy: PasssageProcess) async throws -> (cpu: Double, held: [RawConnection]) {
        var held: [RawConnection] = []
        for _ in 0..<count {
            held.append(try RawConnection(port: proxy.port))   // the backlog accepts even when the proxy cannot
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        let before = cpuSeconds(pid: proxy.pid) ?? 0
        try await Task.sleep(nanoseconds: 5_000_000_000)
        let after = cpuSeconds(pid: proxy.pid) ?? 0
        return (after - before, held)
    }

    @Test("out of descriptors, the proxy backs off accepting instead of spinning, and serves again after")
    func descriptorExhaustion() async throws {
        // The limit is set far above the descriptors, so accept itself fails with EMFILE.
        let proxy = try await PasssageProcess.launch(["--max-client-connections", "100000"], descriptorLimit: 64)
        defer { proxy.stop() }
        var (cpu, held) = try await holdIdleConnections(150, proxy: proxy)
        #expect(cpu < 0.5, "\(cpu) s of CPU in 5 s")
        #expect(proxy.output.contains("accepting connections failed; backing off"), "\(proxy.output.suffix(2000))")
        held.removeAll()   // closes them all
        try await waitUntil(timeout: 30, "the proxy to serve again") {
            (try? await rawExchange(port: proxy.port, send: Array("GET http://mitm.it/cert/pem HTTP/1.1\r\nHost: mitm.it\r\nConnection: close\r\n\r\n".utf8), timeout: 2))?
                .hasPrefix("HTTP/1.1 200") ?? false
        }
    }

    @Test("past --max-client-connections (derived from the descriptor limit), connections get 503 and the proxy stays idle")
    func connectionLimit() async throws {
        let proxy = try await PasssageProcess.launch(descriptorLimit: 96)
        defer { proxy.stop() }
        #expect(proxy.output.contains("serving at most 16 client connections"), "\(proxy.output)")
        var (cpu, held) = try await holdIdleConnections(40, proxy: proxy)
        #expect(cpu < 0.5, "\(cpu) s of CPU in 5 s")
        let last = held.last!
        let refused = try await onThread { last.readAll(timeout: 2).text }
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
        held.removeAll()
        try await waitUntil(timeout: 30, "the proxy to serve again") {
            (try? await rawExchange(port: proxy.port, send: Array("GET http://mitm.it/cert/pem HTTP/1.1\r\nHost: mitm.it\r\nConnection: close\r\n\r\n".utf8), timeout: 2))?
                .hasPrefix("HTTP/1.1 200") ?? false
        }
    }
}
