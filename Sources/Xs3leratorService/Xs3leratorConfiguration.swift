import DownloadEngine

/// Everything `xs3lerator` runs with; the CLI builds it and validates it first.
public struct Xs3leratorConfiguration: Sendable {
    public var bindHost: String
    public var port: Int
    public var download: DownloadSettings
    /// Accept any upstream certificate (also per request with `X-Xs3lerator-Tls-Skip-Verify`).
    public var upstreamTLSSkipVerify: Bool
    public var upstreamConnectTimeout: Duration
    /// Longest silence from upstream while a response is expected; nil for none.
    public var upstreamReadTimeout: Duration?
    /// Accelerator only: cache keys are ignored and nothing is stored.
    public var passthrough: Bool
    /// How long a graceful shutdown waits for in-flight responses.
    public var shutdownGracePeriod: Duration
    /// Range workers fetching at once across all downloads (each download's first stream and
    /// probe come on top). Bounds memory whatever the number of clients.
    public var maximumRangeWorkers: Int

    public init(bindHost: String = "0.0.0.0", port: Int = 8080, download: DownloadSettings,
                upstreamTLSSkipVerify: Bool = false, upstreamConnectTimeout: Duration = .seconds(30),
                upstreamReadTimeout: Duration? = .seconds(300), passthrough: Bool = true,
                shutdownGracePeriod: Duration = .seconds(30), maximumRangeWorkers: Int = 16) {
        self.bindHost = bindHost
        self.port = port
        self.download = download
        self.upstreamTLSSkipVerify = upstreamTLSSkipVerify
        self.upstreamConnectTimeout = upstreamConnectTimeout
        self.upstreamReadTimeout = upstreamReadTimeout
        self.passthrough = passthrough
        self.shutdownGracePeriod = shutdownGracePeriod
        self.maximumRangeWorkers = maximumRangeWorkers
    }
}
