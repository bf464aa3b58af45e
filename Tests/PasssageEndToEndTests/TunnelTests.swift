import Foundation
import TestSupport
import Testing
import TestOrigin

@Suite("Tunnel contents and early bytes", .serialized)
struct TunnelTests {
    @Test("plain HTTP inside a CONNECT tunnel is proxied as HTTP")
    func plainHTTPInTunnel() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let result = try await curl(["--proxytunnel", "-x", proxy.proxyURL, "-D", "-",
                                         "http://127.0.0.1:\(origin.port)/small"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.lowercased().contains("via: 1.1 passsage"), "proxied, not spliced: \(result.stdout)")
            #expect(result.stdout.hasSuffix("ok\n"))
        } teardown: {
            await origin.stop()
        }
    }

    @Test("a request sent together with CONNECT, before the 200 is read, is not lost")
    func earlyPlainBytes() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let wire = "CONNECT 127.0.0.1:\(origin.port) HTTP/1.1\r\nHost: 127.0.0.1:\(origin.port)\r\n\r\n"
                + "GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            let reply = try await rawExchange(port: proxy.port, send: Array(wire.utf8))
            #expect(reply.hasPrefix("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK"), "\(reply)")
            #expect(reply.hasSuffix("ok\n"))
        } teardown: {
            await origin.stop()
        }
    }

    @Test("bytes that are neither TLS nor HTTP are spliced to the target unchanged")
    func opaqueSplice() async throws {
        let origin = try await TestOriginServer.start()
        let proxy = try await PasssageProcess.launch()
        defer { proxy.stop() }
        try await withTeardown {
            let wire = "CONNECT 127.0.0.1:\(origin.port) HTTP/1.1\r\n\r\n" + "\u{1}not http\r\n\r\n"
            let reply = try await rawExchange(port: proxy.port, send: Array(wire.utf8))
            #expect(reply.hasPrefix("HTTP/1.1 200 Connection Established\r\n\r\n"), "\(reply)")
            // The origin's own parser rejects the bytes; passsage would have added X-Request-Id.
            let afterTunnel = reply.dropFirst("HTTP/1.1 200 Connection Established\r\n\r\n".count)
            #expect(afterTunnel.hasPrefix("HTTP/1.1 400"), "\(afterTunnel)")
            #expect(!afterTunnel.lowercased().contains("x-request-id"))
        } teardown: {
            await origin.stop()
        }
    }

    @Test("a TLS ClientHello sent before reading the 200 is intercepted correctly")
    func earlyClientHello() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            // Python's ssl.MemoryBIO lets us put CONNECT and the ClientHello into one write.
            let script = """
                import socket, ssl, sys
                proxy_port, origin_port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
                ctx = ssl.create_default_context(cafile=ca)
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=20)
                connect = f"CONNECT localhost:{origin_port} HTTP/1.1\\r\\nHost: localhost:{origin_port}\\r\\n\\r\\n".encode()
                sock.sendall(connect + outgoing.read())
                pending = b""
                while b"\\r\\n\\r\\n" not in pending:
                    pending += sock.recv(65536)
                head, rest = pending.split(b"\\r\\n\\r\\n", 1)
                assert head.startswith(b"HTTP/1.1 200"), head
                incoming.write(rest)
                def pump():
                    data = outgoing.read()
                    if data:
                        sock.sendall(data)
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        pump()
                        incoming.write(sock.recv(65536))
                pump()
                tls.write(b"GET /small HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
                pump()
                body = b""
                while True:
                    try:
                        chunk = tls.read(65536)
                        if not chunk:
                            break
                        body += chunk
                    except ssl.SSLWantReadError:
                        data = sock.recv(65536)
                        if not data:
                            break
                        incoming.write(data)
                    except ssl.SSLZeroReturnError:
                        break
                print(body.decode(errors="replace"))
                """
            let result = try await run("/usr/bin/env", ["python3", "-c", script, String(fixture.proxy.port),
                                                        String(fixture.origin.port), fixture.proxyCAFile], timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("HTTP/1.1 200 OK"), "\(result.stdout)")
            #expect(result.stdout.contains("ok\n"))
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("an idle client connection is closed after --client-idle-timeout")
    func idleTimeout() async throws {
        let proxy = try await PasssageProcess.launch(["--client-idle-timeout", "1s"])
        defer { proxy.stop() }
        let started = Date()
        let reply = try await rawExchange(port: proxy.port, send: [], timeout: 20)
        let elapsed = Date().timeIntervalSince(started)
        #expect(reply.isEmpty)
        #expect(elapsed >= 0.9 && elapsed < 10, "closed after \(elapsed)s")
    }
}
