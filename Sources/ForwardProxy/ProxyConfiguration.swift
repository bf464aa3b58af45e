import NIOCore

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

    /// An idle client connection (no request in flight, no bytes either way) is closed after this.
    public var clientIdleTimeout: TimeAmount = .seconds(120)
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    public var shutdownGracePeriod: TimeAmount = .seconds(30)

    /// Hosts that get a blind tunnel instead of interception.
    public var noIntercept: HostPatternList = .empty
    /// The proxy URL written into `proxy-env.sh`; derived from the client's view when nil.
    public var publicProxyURL: String?
    public var noProxyExtra: [String] = []

    public init() {}
}
