import NIOCore
import NIOHTTP1
import NIOSSL

/// A small HTTP/1.1 client for relaying requests to origins, built for a proxy's hot path: each
/// event loop has its own connection pool, and an exchange runs entirely on the loop of the
/// client connection that started it, with no thread hops, no request copying and TCP
/// backpressure in both directions. (async-http-client cost about half the proxy's throughput on
/// small responses; docs/performance.md.)
public final class OriginClient: Sendable {
    private let pools: [ObjectIdentifier: LoopPool]

    /// `connectionsPerOrigin` is shared out evenly across the group's event loops.
    public init(group: any EventLoopGroup, configuration: OriginClientConfiguration) throws {
        var tls = configuration.tls
        // A connection is only closed when its exchange is abandoned or it expired in the pool.
        // Waiting for the origin's close_notify (NIOSSL's default allows 5 s) would let an
        // abandoned transfer run on: send ours and close the socket at once.
        tls.shutdownTimeout = .nanoseconds(0)
        let sslContext = try NIOSSLContext(configuration: tls)
        let loops = Array(group.makeIterator())
        let perLoop = (configuration.connectionsPerOrigin + loops.count - 1) / max(1, loops.count)
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in loops {
            pools[ObjectIdentifier(loop)] = LoopPool(eventLoop: loop, configuration: configuration,
                                                     sslContext: sslContext, connectionLimit: perLoop)
        }
        self.pools = pools
    }

    /// Starts a request to `origin`. Call on `eventLoop`, a loop of the client's group; the
    /// delegate is called there. `head` must carry its own framing (`Content-Length` or
    /// `Transfer-Encoding: chunked` when `hasBody`).
    public func startExchange(
        on eventLoop: EventLoop,
        origin: Origin,
        head: HTTPRequestHead,
        hasBody: Bool,
        delegate: any OriginExchangeDelegate
    ) -> OriginExchange {
        guard let pool = pools[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("OriginClient used from an event loop outside its group")
        }
        let exchange = OriginExchange(origin: origin, head: head, hasBody: hasBody, pool: pool, delegate: delegate)
        pool.lease(for: exchange)
        exchange.started()
        return exchange
    }

    /// Closes pooled connections and refuses new exchanges. Exchanges in flight run to their end.
    public func shutdown() async {
        for pool in pools.values {
            try? await pool.eventLoop.submit { pool.shutdown() }.get()
        }
    }
}
