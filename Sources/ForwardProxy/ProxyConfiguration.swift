import NIOCore
import OriginConnections

/// Everything the forward proxy needs to know at start-up. Built by the CLI; validated there.
public struct ProxyConfiguration: Sendable {
    public var bindHost: String = "0.0.0.0"
    public var port: Int = 8080
    public var healthHost: String = "0.0.0.0"
    /// 0 disables the health listener.
    public var healthPort: Int = 8082

    /// Extra trust anchors for upstream TLS, on top of the system store.
    public var upstreamCAFile: String?
    public var upstreamTLSSkipVerify: Bool = false
    public var upstreamConnectTimeout: TimeAmount = .seconds(10)
    /// Longest silence while waiting for upstream bytes; nil means no limit.
    public var upstreamReadTimeout: TimeAmount? = .seconds(60)
    /// Upper bound of concurrent upstream connections per origin before requests queue.
    public var upstreamConnectionsPerHost: Int = 512

    /// An idle client connection (no request in flight, no bytes either way) is closed after this;
    /// a request body with no bytes for this long gets 408 and its upstream connection is closed.
    public var clientIdleTimeout: TimeAmount = .seconds(120)
    /// From a request's first byte, its head must be complete within this (and, in an intercepted
    /// tunnel, the TLS handshake too), or the client gets 408 and the connection closes.
    public var clientHeaderTimeout: TimeAmount = .seconds(30)
    /// Client connections served at once; more are answered 503 and closed. nil derives it from
    /// the descriptor limit (`ConnectionLimit.derived`).
    public var maxClientConnections: Int?
    /// Requests one connection may pipeline behind the one being served; past it, the queued ones
    /// are answered and the connection closes (the client retries the rest, RFC 9112 §9.3.2).
    public var pipelinedRequestLimit: Int = 32

    /// Upstream destinations the proxy never connects to, checked after DNS. Unless the list is
    /// empty, the proxy's own listen addresses are added once bound.
    public var destinationPolicy: DestinationPolicy = .defaultPolicy
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    public var shutdownGracePeriod: TimeAmount = .seconds(30)

    /// Hosts that get a blind tunnel instead of interception.
    public var noIntercept: HostPatternList = .empty
    /// The proxy URL written into `proxy-env.sh`; derived from the client's view when nil.
    public var publicProxyURL: String?
    public var noProxyExtra: [String] = []

    public init() {}

    /// The default `maxClientConnections` for a descriptor limit: each client connection may hold
    /// an upstream connection too, and some descriptors stay for listeners, files and the thread pool.
    public static func derivedMaxClientConnections(descriptorLimit: Int) -> Int {
        max(16, (descriptorLimit - 64) / 2)
    }
}
