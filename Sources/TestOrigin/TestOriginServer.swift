import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small origin server for tests and benchmarks, plain or TLS, on 127.0.0.1.
///
/// Routes:
/// - `GET /small[?dropnext=1]`: `ok\n`; with `dropnext`, the connection's next request gets a
///   silent close, as from an origin that timed out a keep-alive connection just then.
/// - `GET /bytes/N[?rate=B&delay=MS]`: N deterministic bytes (`OriginContent`), optionally capped at
///   B bytes/s per connection, after an optional delay before the response head.
/// - `GET|HEAD /object/N?...`: N bytes with range support and faults to order (`ObjectResponse`).
/// - `GET /redirect/K/<rest>`: K chained 302s, then `/<rest>`.
/// - `POST|PUT /upload[?dropnext=1]`: reads the body and answers `sha256=<hex> bytes=<n>`.
/// - `GET /headers`: the request headers, one `name: value` per line.
/// - `GET /stall`: accepts the request and never answers.
/// - `GET /badchunk`: a chunked response whose first chunk size is not hex, head and all in one write.
/// - `GET /status/N[?body=T]`: status N with body T (default empty).
public final class TestOriginServer: Sendable {
    public let channel: Channel
    private let openConnections: NIOLockedValueBox<Int>
    private let accepted: NIOLockedValueBox<Int>
    /// Open connections, closed by `stop` with the listener: a stopped origin is down.
    private let children: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    /// Transfers, bytes and ranges served, across connections.
    public let stats: OriginStats

    /// Kept from the start: a stopped server still names where it was (tests that stop the origin
    /// keep asking for its URLs).
    public let port: Int

    /// Connections open right now (to check that a cancelled download closed its upstream).
    public var connectionCount: Int { openConnections.withLockedValue { $0 } }

    /// Connections accepted since start (to check keep-alive reuse).
    public var acceptedConnections: Int { accepted.withLockedValue { $0 } }

    private init(channel: Channel, openConnections: NIOLockedValueBox<Int>, accepted: NIOLockedValueBox<Int>,
                 children: NIOLockedValueBox<[ObjectIdentifier: any Channel]>, stats: OriginStats) {
        self.children = children
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.openConnections = openConnections
        self.accepted = accepted
        self.stats = stats
    }

    public static func start(
        host: String = "127.0.0.1",
        port: Int = 0,
        tls: TLSConfiguration? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TestOriginServer {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let counter = NIOLockedValueBox(0)
        let accepted = NIOLockedValueBox(0)
        let children = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let stats = OriginStats()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 512)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    counter.withLockedValue { $0 += 1 }
                    accepted.withLockedValue { $0 += 1 }
                    let id = ObjectIdentifier(channel)
                    children.withLockedValue { $0[id] = channel }
                    channel.closeFuture.whenComplete { _ in
                        counter.withLockedValue { $0 -= 1 }
                        children.withLockedValue { _ = $0.removeValue(forKey: id) }
                    }
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OriginHandler(stats: stats))
                }
            }
            .bind(host: host, port: port)
            .get()
        return TestOriginServer(channel: channel, openConnections: counter, accepted: accepted, children: children, stats: stats)
    }

    public func stop() async {
        try? await channel.close()
        for child in children.withLockedValue({ Array($0.values) }) {
            try? await child.close()
        }
    }
}
