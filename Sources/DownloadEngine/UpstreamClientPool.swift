import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// HTTP clients for upstream requests. async-http-client sets connect and read timeouts per
/// client, so requests with other timeouts need other clients. To keep their number bounded
/// whatever callers send, timeouts are rounded **up** to the next step of `timeoutSteps`: at most
/// 2 × 21 × 22 clients can ever exist, and in practice a handful do. Each client keeps its own
/// pool of keep-alive connections (HTTP/1.1 only, so that every range has its own connection and
/// per-connection bandwidth caps multiply), never decompresses, and never follows redirects (the
/// fetcher does, when asked).
public final class UpstreamClientPool: Sendable {
    public static let timeoutSteps: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(5),
        .seconds(7), .seconds(10), .seconds(15), .seconds(20), .seconds(30), .seconds(45), .seconds(60), .seconds(90),
        .seconds(120), .seconds(180), .seconds(300), .seconds(600), .seconds(1800), .seconds(3600),
    ]

    struct Profile: Hashable {
        var tlsSkipVerify: Bool
        var connectTimeout: Duration
        /// nil: no read timeout.
        var readTimeout: Duration?
    }

    private let clients = NIOLockedValueBox([Profile: HTTPClient]())
    private let eventLoopGroup: any EventLoopGroup
    private let connectionsPerHost: Int
    /// A PEM file of trust anchors added to the system's for verified upstream TLS.
    private let extraTrustFile: String?

    public init(eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, connectionsPerHost: Int = 64,
                extraTrustFile: String? = nil) {
        self.eventLoopGroup = eventLoopGroup
        self.connectionsPerHost = connectionsPerHost
        self.extraTrustFile = extraTrustFile
    }

    /// The timeout actually used for `requested`: the next step up, or the largest step.
    public static func step(for requested: Duration) -> Duration {
        timeoutSteps.first { $0 >= requested } ?? timeoutSteps[timeoutSteps.count - 1]
    }

    func client(tlsSkipVerify: Bool, connectTimeout: Duration, readTimeout: Duration?) -> HTTPClient {
        let profile = Profile(tlsSkipVerify: tlsSkipVerify, connectTimeout: Self.step(for: connectTimeout),
                              readTimeout: readTimeout.map(Self.step(for:)))
        return clients.withLockedValue { clients in
            if let existing = clients[profile] { return existing }
            var configuration = HTTPClient.Configuration()
            configuration.httpVersion = .http1Only
            configuration.decompression = .disabled
            configuration.redirectConfiguration = .disallow
            configuration.timeout = .init(connect: TimeAmount(profile.connectTimeout), read: profile.readTimeout.map { TimeAmount($0) })
            configuration.connectionPool = .init(idleTimeout: .seconds(20), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
            // A refused connection is an answer (502 now), not something to retry until the
            // connect timeout; failed range fetches are retried by the engine.
            configuration.connectionPool.retryConnectionEstablishment = false
            if profile.tlsSkipVerify {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.certificateVerification = .none
                configuration.tlsConfiguration = tls
            } else if let extraTrustFile {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.additionalTrustRoots = [.file(extraTrustFile)]
                configuration.tlsConfiguration = tls
            }
            let client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration)
            clients[profile] = client
            return client
        }
    }

    /// How many clients exist (for tests and the stats endpoint).
    public var clientCount: Int { clients.withLockedValue { $0.count } }

    public func shutdown() async {
        let all = clients.withLockedValue { clients -> [HTTPClient] in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
    }
}
