import NIOCore
import NIOHTTP1
import NIOPosix
import OriginConnections
import TestOrigin
import TestSupport
import Testing

/// The relay client against our origin, in process: reuse, the stale-connection retry, the
/// per-origin limit, idle expiry, timeouts, and response backpressure.
@Suite("Origin client")
struct OriginClientTests {
    @Test("a denied destination fails before any connection is made, and never inside startExchange")
    func deniedDestination() async throws {
        var configuration = OriginClientConfiguration()
        configuration.destinations = DestinationGuard(policy: .defaultPolicy)
        try await withClient(configuration) { client, origin, server in
            let literal = try await thrownError(OriginError.self) { _ = try await client.fetch(origin, "/small") }
            #expect(literal == .destinationDenied(host: "127.0.0.1", address: "127.0.0.1"))
            let named = Origin(host: "localhost", port: origin.port, usesTLS: false)
            let byName = try await thrownError(OriginError.self) { _ = try await client.fetch(named, "/small") }
            guard case .destinationDenied(host: "localhost", _) = byName else {
                Issue.record("\(byName)")
                return
            }
            #expect(server.acceptedConnections == 0)
        }
    }

    @Test("names are resolved off the loop and connected over exactly the vetted addresses; unknown names fail cleanly")
    func resolution() async throws {
        let guardAll = DestinationGuard(policy: .allowAll)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let addresses = try await guardAll.resolve(host: "localhost", port: 80, timeout: .seconds(10), on: loop).get()
        #expect(addresses.contains { $0.ipAddress == "127.0.0.1" }, "\(addresses)")
        let unknown = try await thrownError(OriginError.self) {
            _ = try await guardAll.resolve(host: "nowhere.invalid", port: 80, timeout: .seconds(10), on: loop).get()
        }
        guard case .nameResolution(host: "nowhere.invalid", _) = unknown else {
            Issue.record("\(unknown)")
            return
        }
        try await withClient { client, origin, server in
            let named = Origin(host: "localhost", port: origin.port, usesTLS: false)
            let body = try await client.fetch(named, "/small").body
            #expect(body == "ok\n")
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test("waiting for a busy origin's only connection ends at the connect timeout")
    func boundedWaitForConnection() async throws {
        var configuration = OriginClientConfiguration()
        configuration.connectionsPerOrigin = 1
        configuration.connectTimeout = .seconds(1)
        // Far past the wait: with 3 s, a starved CI process once took long enough to see the stall
        // begin that the stalled exchange timed out and freed the connection for the waiter.
        configuration.readTimeout = .seconds(60)
        try await withClient(configuration) { client, origin, server in
            let stalled = Task { try await client.fetch(origin, "/stall") }
            try await waitUntil(timeout: 5, "the stalled request to hold the connection") { server.acceptedConnections == 1 }
            let started = ContinuousClock.now
            let error = try await thrownError(OriginError.self) { _ = try await client.fetch(origin, "/small") }
            #expect(error == .noConnectionAvailable)
            #expect(ContinuousClock.now - started < .seconds(5))
            await server.stop()   // closes the stalled connection, so the stalled exchange ends now
            _ = try? await stalled.value
        }
    }

    @Test("keep-alive connections are reused, also after a HEAD")
    func reuse() async throws {
        try await withClient { client, origin, server in
            for _ in 0..<5 {
                let response = try await client.fetch(origin, "/small")
                #expect(response.head.status == .ok)
                #expect(response.body == "ok\n")
            }
            let head = try await client.fetch(origin, "/bytes/1000", method: .HEAD)
            #expect(head.head.headers.first(name: "content-length") == "1000")
            #expect(head.bytes.readableBytes == 0)
            #expect(try await client.fetch(origin, "/small").body == "ok\n")
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test("a pooled connection the origin drops is retried once on a new one, for idempotent requests only")
    func staleConnectionRetry() async throws {
        try await withClient { client, origin, server in
            _ = try await client.fetch(origin, "/small?dropnext=1")
            let retried = try await client.fetch(origin, "/small")
            #expect(retried.body == "ok\n")
            #expect(server.acceptedConnections == 2)

            _ = try await client.fetch(origin, "/small?dropnext=1")
            let error = try await thrownError(OriginError.self) {
                _ = try await client.fetch(origin, "/upload", method: .POST, body: "payload")
            }
            #expect(error == .connectionClosed)
            #expect(server.acceptedConnections == 2)
        }
    }

    @Test("past the per-origin limit, requests wait for a connection instead of opening more")
    func connectionLimit() async throws {
        var configuration = OriginClientConfiguration()
        configuration.connectionsPerOrigin = 1
        try await withClient(configuration) { client, origin, server in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await client.fetch(origin, "/bytes/100000?delay=50").bytes.readableBytes }
                }
                for try await count in group { #expect(count == 100_000) }
            }
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test("an idle pooled connection is closed after the idle timeout")
    func idleExpiry() async throws {
        var configuration = OriginClientConfiguration()
        // Long enough that a starved test process still sees the connection pooled right after use.
        configuration.idleTimeout = .seconds(4)
        try await withClient(configuration) { client, origin, server in
            _ = try await client.fetch(origin, "/small")
            #expect(server.connectionCount == 1)
            try await waitUntil(timeout: 20, "the idle connection closes") { server.connectionCount == 0 }
        }
    }

    @Test("a silent origin hits the read timeout; a refused one fails; after shutdown nothing starts")
    func failures() async throws {
        var configuration = OriginClientConfiguration()
        configuration.readTimeout = .milliseconds(300)
        try await withClient(configuration) { client, origin, _ in
            let stalled = try await thrownError(OriginError.self) { _ = try await client.fetch(origin, "/stall") }
            #expect(stalled == .readTimeout)

            let closedPort = try unusedPort()
            let refused = try await thrownError((any Error).self) {
                _ = try await client.fetch(Origin(host: "127.0.0.1", port: closedPort, usesTLS: false), "/small")
            }
            #expect(refused is NIOConnectionError || refused is IOError, "\(refused)")

            await client.client.shutdown()
            let afterShutdown = try await thrownError(OriginError.self) { _ = try await client.fetch(origin, "/small") }
            #expect(afterShutdown == .shutdown)
        }
    }

    @Test("a paused response stops reading, and the pause does not count against the read timeout")
    func pausedResponse() async throws {
        var configuration = OriginClientConfiguration()
        // The read timeout has room for a starved CI process (all suites share 2 cores: 300 ms once
        // fired mid-body there); the pause is well past it, so the pause still proves the point.
        configuration.readTimeout = .milliseconds(1500)
        try await withClient(configuration) { client, origin, server in
            let size = 8 << 20
            let response = try await client.fetch(origin, "/bytes/\(size)", pauseFor: .seconds(4))
            #expect(response.bytes.readableBytes == size)
            #expect(response.pausedReads)
            _ = server
        }
    }
}

// MARK: Harness

/// A client on a one-loop group, so "one connection" is unambiguous.
struct ClientUnderTest: Sendable {
    let client: OriginClient
    let loop: EventLoop

    struct Response: Sendable {
        let head: HTTPResponseHead
        let bytes: ByteBuffer
        var body: String { String(buffer: bytes) }
        /// Whether the origin stopped being read during the pause (its connection's reads held back).
        let pausedReads: Bool
    }

    func fetch(_ origin: Origin, _ path: String, method: HTTPMethod = .GET, body: String? = nil,
               pauseFor pause: TimeAmount? = nil) async throws -> Response {
        let loop = self.loop
        let client = self.client
        return try await loop.flatSubmit {
            let collector = Collector(promise: loop.makePromise(), pause: pause, loop: loop)
            var headers = HTTPHeaders([("Host", "localhost")])
            if let body { headers.add(name: "Content-Length", value: String(body.utf8.count)) }
            let exchange = client.startExchange(
                on: loop, origin: origin,
                head: HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers),
                hasBody: body != nil, delegate: collector
            )
            collector.exchange = exchange
            if let body { exchange.writeBody(ByteBuffer(string: body)) }
            exchange.end()
            let keepAlive = NIOLoopBound(collector, eventLoop: loop)  // the exchange holds its delegate weakly
            return collector.promise.futureResult.map { response in
                _ = keepAlive
                return response
            }
        }.get()
    }
}

struct CalledBackTooEarly: Error {}

final class Collector: OriginExchangeDelegate {
    let promise: EventLoopPromise<ClientUnderTest.Response>
    let pause: TimeAmount?
    let loop: EventLoop
    var exchange: OriginExchange?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var paused = false
    private var bytesWhenPaused = 0
    private var pausedReads = false

    init(promise: EventLoopPromise<ClientUnderTest.Response>, pause: TimeAmount?, loop: EventLoop) {
        self.promise = promise
        self.pause = pause
        self.loop = loop
    }

    func originExchange(_ exchange: OriginExchange, didReceiveHead head: HTTPResponseHead) {
        self.head = head
    }

    func originExchange(_ exchange: OriginExchange, didReceiveBodyPart buffer: ByteBuffer) {
        var buffer = buffer
        body.writeBuffer(&buffer)
        if let pause, !paused {
            paused = true
            exchange.pauseResponse()
            bytesWhenPaused = body.readableBytes
            loop.assumeIsolated().scheduleTask(in: pause) { [self] in
                // Whatever one read burst delivered may still arrive; far less than the 8 MiB body.
                self.pausedReads = self.body.readableBytes < self.bytesWhenPaused + (1 << 20)
                exchange.resumeResponse()
            }
        }
    }

    func originExchangeDidCompleteRead(_ exchange: OriginExchange) {}

    func originExchangeDidFinish(_ exchange: OriginExchange) {
        guard let head else { return promise.fail(OriginError.connectionClosed) }
        promise.succeed(.init(head: head, bytes: body, pausedReads: pausedReads))
    }

    func originExchange(_ exchange: OriginExchange, didFail error: any Error) {
        // The contract: no callback before `startExchange` returned (and `exchange` was set).
        promise.fail(self.exchange == nil ? CalledBackTooEarly() : error)
    }

    func originExchangeBecameWritable(_ exchange: OriginExchange) {}
}

func withClient(
    _ configuration: OriginClientConfiguration = OriginClientConfiguration(),
    _ body: (ClientUnderTest, Origin, TestOriginServer) async throws -> Void
) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = try await TestOriginServer.start()
    let client = try OriginClient(group: group, configuration: configuration)
    let origin = Origin(host: "127.0.0.1", port: server.port, usesTLS: false)
    do {
        try await body(ClientUnderTest(client: client, loop: group.next()), origin, server)
    } catch {
        await client.shutdown()
        await server.stop()
        try? await group.shutdownGracefully()
        throw error
    }
    await client.shutdown()
    await server.stop()
    try await group.shutdownGracefully()
}
