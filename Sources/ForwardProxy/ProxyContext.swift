import AsyncHTTPClient
import CertificateAuthority
import Logging
import NIOCore
import NIOSSL
import Onboarding

/// Shared, immutable state used by every connection of one proxy instance.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let httpClient: HTTPClient
    let interception: InterceptionTLS
    let onboarding: OnboardingSite
    let logger: Logger

    init(configuration: ProxyConfiguration, leaves: LeafCertificateCache, eventLoopGroup: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.interception = InterceptionTLS(leaves: leaves)
        self.onboarding = OnboardingSite(
            caCertificatePEM: leaves.authority.certificatePEM,
            caCertificateDER: leaves.authority.certificateDER,
            noProxyExtra: configuration.noProxyExtra
        )
        self.httpClient = HTTPClient(
            eventLoopGroupProvider: .shared(eventLoopGroup),
            configuration: try Self.upstreamClientConfiguration(configuration)
        )
    }

    static func upstreamClientConfiguration(_ configuration: ProxyConfiguration) throws -> HTTPClient.Configuration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if configuration.upstreamTLSSkipVerify {
            tls.certificateVerification = .none
        }
        if let file = configuration.upstreamCAFile {
            tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(file))]
        }
        var client = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: configuration.upstreamConnectTimeout, read: configuration.upstreamReadTimeout),
            connectionPool: .init(
                idleTimeout: .seconds(60),
                concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.upstreamConnectionsPerHost
            ),
            proxy: nil,
            ignoreUncleanSSLShutdown: false,
            decompression: .disabled
        )
        // HTTP/1.1 upstream keeps TCP backpressure end to end (see docs/architecture.md).
        client.httpVersion = .http1Only
        // A refused or unreachable origin is a 502 now, not after the whole connect timeout spent
        // retrying: the client decides whether to retry.
        client.connectionPool.retryConnectionEstablishment = false
        return client
    }

    /// The proxy URL to put into `proxy-env.sh` for a client that reached us through `local`.
    func publicProxyURL(hostHeader: String?, localAddress: SocketAddress?) -> String {
        if let configured = configuration.publicProxyURL {
            return configured
        }
        if let hostHeader, (try? Authority.parse(hostHeader, defaultPort: 80)) != nil {
            return "http://" + hostHeader
        }
        if let localAddress, let ip = localAddress.ipAddress, let port = localAddress.port {
            let host = ip.contains(":") ? "[\(ip)]" : ip
            return "http://\(host):\(port)"
        }
        return "http://localhost:\(configuration.port)"
    }
}
