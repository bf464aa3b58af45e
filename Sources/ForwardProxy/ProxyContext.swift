import CertificateAuthority
import HTTPRules
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Onboarding
import OriginConnections

/// Shared, immutable state used by every connection of one proxy instance.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let originClient: OriginClient
    let interception: InterceptionTLS
    /// Who answers each request: the local site, the cache (when configured), the origin relay.
    let sources: ResponseSources
    /// Vets every upstream destination; the listeners' addresses are added once bound.
    let destinations: DestinationGuard
    /// Where `destinations` runs getaddrinfo; shut down with the service.
    let resolverThreads: NIOThreadPool
    let logger: Logger

    init(configuration: ProxyConfiguration, leaves: LeafCertificateCache, eventLoopGroup: any EventLoopGroup,
         cache: (@Sendable (DestinationGuard) -> any ResponseSource)? = nil, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.interception = InterceptionTLS(leaves: leaves)
        let onboarding = OnboardingSite(
            caCertificatePEM: leaves.authority.certificatePEM,
            caCertificateDER: leaves.authority.certificateDER,
            noProxyExtra: configuration.noProxyExtra
        )
        // Name lookups block a thread for as long as DNS takes: they get their own threads, so a slow
        // resolver cannot hold up leaf minting on the shared pool.
        let resolverThreads = NIOThreadPool(numberOfThreads: 8)
        resolverThreads.start()
        self.resolverThreads = resolverThreads
        let destinations = DestinationGuard(policy: configuration.destinationPolicy, threadPool: resolverThreads)
        self.destinations = destinations
        self.sources = ResponseSources(
            localSite: LocalSite(onboarding: onboarding, configuredProxyURL: configuration.publicProxyURL,
                                 listenerPort: configuration.port),
            cache: cache?(destinations)
        )
        self.originClient = try OriginClient(group: eventLoopGroup,
                                             configuration: try Self.upstreamClientConfiguration(configuration,
                                                                                                 destinations: destinations))
    }

    /// Upstream is HTTP/1.1 only (backpressure and memory stay predictable), follows no redirects,
    /// decompresses nothing, and does not retry refused connections: a refused origin is a 502 now,
    /// not after the connect timeout, and the client decides whether to retry.
    static func upstreamClientConfiguration(_ configuration: ProxyConfiguration,
                                            destinations: DestinationGuard) throws -> OriginClientConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if configuration.upstreamTLSSkipVerify {
            tls.certificateVerification = .none
        }
        if let file = configuration.upstreamCAFile {
            tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(file))]
        }
        var client = OriginClientConfiguration()
        client.tls = tls
        client.connectTimeout = configuration.upstreamConnectTimeout
        client.readTimeout = configuration.upstreamReadTimeout
        client.connectionsPerOrigin = configuration.upstreamConnectionsPerHost
        client.idleTimeout = .seconds(60)
        client.destinations = destinations
        return client
    }

    /// Closes pooled upstream connections and stops the resolver threads.
    func shutdownClients() async {
        await originClient.shutdown()
        try? await resolverThreads.shutdownGracefully()
    }
}
