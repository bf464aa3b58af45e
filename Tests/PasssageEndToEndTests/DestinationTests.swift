import Foundation
import TestSupport
import Testing
import TestOrigin

/// Which destinations the proxy reaches (SSRF), and that a tunnel serves its CONNECT authority only.
@Suite("Upstream destinations and tunnel authority", .serialized)
struct DestinationTests {
    /// A health listener on loopback (the baseline disables it), to try reaching it through the proxy.
    private static func healthOptions() throws -> [String] {
        ["--health-port", String(try unusedPort()), "--health-host", "127.0.0.1"]
    }

    private func status(_ reply: String) -> Int? {
        reply.hasPrefix("HTTP/1.1 ") ? Int(reply.dropFirst(9).prefix(3)) : nil
    }

    private func get(_ url: String, host: String, proxy: PasssageProcess) async throws -> String {
        try await rawExchange(port: proxy.port, send: Array("GET \(url) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8),
                        timeout: 10)
    }

    @Test("the default deny list: loopback, localhost, mapped IPv6, 0.0.0.0, the health port and metadata get 403 without a connection")
    func defaultDenyList() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch(Self.healthOptions(), denyUpstream: nil)
        defer { proxy.stop() }
        try await withTeardown {
            let health = try #require(proxy.healthPort)
            let denied = [
                ("http://127.0.0.1:\(origin.port)/small", "127.0.0.1"),
                ("http://localhost:\(origin.port)/small", "localhost"),
                ("http://[::ffff:127.0.0.1]:\(origin.port)/small", "[::ffff:127.0.0.1]"),
                ("http://0.0.0.0:\(origin.port)/small", "0.0.0.0"),
                ("http://127.0.0.2:\(origin.port)/small", "127.0.0.2"),
                ("http://127.0.0.1:\(health)/health", "127.0.0.1"),
                ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
            ]
            for (url, host) in denied {
                let reply = try await get(url, host: host, proxy: proxy)
                #expect(status(reply) == 403, "\(url): \(reply)")
                #expect(reply.lowercased().contains("x-request-id:"), "\(url)")
            }
            for target in ["127.0.0.1:\(origin.port)", "localhost:\(origin.port)", "169.254.169.254:443"] {
                let reply = try await rawExchange(port: proxy.port, send: Array("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n".utf8),
                                            timeout: 10)
                #expect(status(reply) == 403, "CONNECT \(target): \(reply)")
            }
            #expect(origin.acceptedConnections == 0, "a denied destination was connected to")
            // One log line per denied request (the output pipe is read asynchronously: poll).
            try await waitUntil(timeout: 5, "a log line per denied request") {
                proxy.output.split(separator: "\n").filter { $0.contains(" 403 ") }.count == denied.count + 3
            }
        } teardown: {
            await origin.stop()
        }
    }

    @Test("an explicit empty list allows everything; a non-empty one still denies the proxy's own listeners")
    func explicitLists() async throws {
        let origin = try await TestOriginServer.start()
        try await withTeardown {
            let open = try await PasssageProcess.launch(Self.healthOptions(), denyUpstream: "")
            defer { open.stop() }
            let allowed = try await get("http://127.0.0.1:\(origin.port)/small", host: "127.0.0.1", proxy: open)
            #expect(status(allowed) == 200, "\(allowed)")
            let health = try await get("http://127.0.0.1:\(try #require(open.healthPort))/health", host: "127.0.0.1", proxy: open)
            #expect(status(health) == 200, "\(health)")
            let viaLocalhost = try await get("http://localhost:\(origin.port)/small", host: "localhost", proxy: open)
            #expect(status(viaLocalhost) == 200, "\(viaLocalhost)")

            let listed = try await PasssageProcess.launch(Self.healthOptions())
            defer { listed.stop() }   // the tests' list: link-local only
            let healthPort = try #require(listed.healthPort)
            let ownHealth = try await get("http://127.0.0.1:\(healthPort)/health", host: "127.0.0.1", proxy: listed)
            #expect(status(ownHealth) == 403, "\(ownHealth)")
            let ownPort = try await get("http://127.0.0.1:\(listed.port)/loop", host: "127.0.0.1", proxy: listed)
            #expect(status(ownPort) == 403, "\(ownPort)")
            let metadata = try await get("http://169.254.169.254/", host: "169.254.169.254", proxy: listed)
            #expect(status(metadata) == 403, "\(metadata)")
            let fine = try await get("http://127.0.0.1:\(origin.port)/small", host: "127.0.0.1", proxy: listed)
            #expect(status(fine) == 200, "\(fine)")
        } teardown: {
            await origin.stop()
        }
    }

    @Test("inside a tunnel, a request for another authority gets 421 and reaches neither origin; SNI must name the CONNECT host")
    func tunnelAuthority() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let other = try await TestOriginServer.start(tls: try fixture.pki.serverConfiguration())
            try await withTeardown {
                let tunnelPort = fixture.origin.port
                let script = """
                    import socket, ssl, sys
                    proxy_port, tunnel_port, other_port, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
                    def request(raw, sni="localhost", connect="localhost"):
                        sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=30)
                        sock.sendall(f"CONNECT {connect}:{tunnel_port} HTTP/1.1\\r\\nHost: {connect}:{tunnel_port}\\r\\n\\r\\n".encode())
                        head = b""
                        while b"\\r\\n\\r\\n" not in head:
                            head += sock.recv(1)
                        try:
                            tls = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname=sni)
                        except ssl.SSLError as error:
                            return "handshake refused"
                        tls.sendall(raw.encode())
                        reply = b""
                        while True:
                            data = tls.recv(65536)
                            if not data:
                                break
                            reply += data
                        return reply.decode(errors="replace").split("\\r\\n")[0]
                    print(request(f"GET https://localhost:{other_port}/small HTTP/1.1\\r\\nHost: localhost:{other_port}\\r\\nConnection: close\\r\\n\\r\\n"))
                    print(request(f"GET /small HTTP/1.1\\r\\nHost: localhost:{other_port}\\r\\nConnection: close\\r\\n\\r\\n"))
                    print(request(f"GET /small HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n", sni="other.example"))
                    print(request(f"GET /small HTTP/1.1\\r\\nHost: localhost.:{tunnel_port}\\r\\nConnection: close\\r\\n\\r\\n", connect="localhost."))
                    """
                let result = try await run("/usr/bin/env", ["python3", "-c", script, String(fixture.proxy.port), String(tunnelPort),
                                                            String(other.port), fixture.proxyCAFile], timeout: 60)
                #expect(result.status == 0, "\(result.stderr)")
                let lines = result.stdout.split(separator: "\n").map(String.init)
                #expect(lines.count == 4, "\(result.stdout)")
                #expect(lines.first == "HTTP/1.1 421 Misdirected Request", "\(lines)")
                #expect(lines.dropFirst().first == "HTTP/1.1 421 Misdirected Request", "\(lines)")
                #expect(lines.dropFirst(2).first == "handshake refused", "\(lines)")
                // A trailing dot names the same host: same leaf, same tunnel.
                #expect(lines.dropFirst(3).first == "HTTP/1.1 200 OK", "\(lines)")
                #expect(other.acceptedConnections == 0)
                #expect(fixture.origin.acceptedConnections == 1, "only the last request reaches the tunnel's origin")
                #expect(fixture.proxy.output.contains("CONNECT localhost:\(tunnelPort) 200"))
                #expect(!fixture.proxy.output.contains("localhost:\(other.port)/small 200"))
            } teardown: {
                await other.stop()
            }
        } teardown: {
            await fixture.stop()
        }
    }
}
