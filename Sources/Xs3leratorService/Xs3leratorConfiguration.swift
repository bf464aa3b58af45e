import DataPlane

/// Everything the `xs3lerator` HTTP shell runs with; the CLI builds it and validates it first.
public struct Xs3leratorConfiguration: Sendable {
    public var bindHost: String
    public var port: Int
    /// How long a graceful shutdown waits for in-flight responses.
    public var shutdownGracePeriod: Duration
    /// When set, every request but `/healthz` and `/metrics` must carry it in
    /// `X-Xs3lerator-Auth`; only such callers may ask for `Tls-Skip-Verify`.
    public var authToken: String?
    /// From a connection's start or its last response's end, the next request head must be
    /// complete within this (idle keep-alive connections close then too).
    public var requestHeadTimeout: Duration
    /// A connection whose client reads nothing for this long is closed, with its response.
    public var writeStallTimeout: Duration

    public init(bindHost: String = "0.0.0.0", port: Int = 8080, shutdownGracePeriod: Duration = .seconds(30),
                authToken: String? = nil, requestHeadTimeout: Duration = .seconds(60), writeStallTimeout: Duration = .seconds(60)) {
        self.requestHeadTimeout = requestHeadTimeout
        self.writeStallTimeout = writeStallTimeout
        self.bindHost = bindHost
        self.port = port
        self.shutdownGracePeriod = shutdownGracePeriod
        self.authToken = authToken
    }
}
