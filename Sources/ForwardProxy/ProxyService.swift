import CertificateAuthority
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import OriginConnections
import ServiceLifecycle

/// The forward proxy as a service: binds the proxy and health listeners, runs until a graceful
/// shutdown is requested, then stops accepting, lets in-flight requests finish within the grace
/// period, and returns.
public final class ProxyService: Service, Sendable {
    public let readiness = Readiness()
    private let configuration: ProxyConfiguration
    private let proxy: ProxyContext
    private let group: any EventLoopGroup
    private let logger: Logger
    private let boundAddress = NIOLockedValueBox<SocketAddress?>(nil)

    /// `cache` builds the cache's response source, given the guard every upstream destination must
    /// pass (the cache's own fetches included); nil: a plain forward proxy.
    public init(
        configuration: ProxyConfiguration,
        leaves: LeafCertificateCache,
        logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        cache: (@Sendable (DestinationGuard) -> any ResponseSource)? = nil
    ) throws {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.proxy = try ProxyContext(configuration: configuration, leaves: leaves, eventLoopGroup: group,
                                      cache: cache, logger: logger)
    }

    /// The proxy listener's address once bound.
    public var localAddress: SocketAddress? { boundAddress.withLockedValue { $0 } }

    public func run() async throws {
        let quiescing = ServerQuiescingHelper(group: group)
        let server: Channel
        do {
            // Accepting starts once the destination policy knows the listeners' own addresses.
            server = try await bindProxy(quiescing: quiescing)
        } catch {
            await proxy.shutdownClients()
            throw ListenError(what: "proxy", host: configuration.bindHost, port: configuration.port, underlying: error)
        }
        boundAddress.withLockedValue { $0 = server.localAddress }

        var health: Channel?
        if configuration.healthPort > 0 {
            do {
                health = try await HealthServer.bind(host: configuration.healthHost, port: configuration.healthPort,
                                                     readiness: readiness, group: group)
            } catch {
                server.close(promise: nil)
                await proxy.shutdownClients()
                throw ListenError(what: "health", host: configuration.healthHost, port: configuration.healthPort,
                                  underlying: error)
            }
            logger.notice("health listening on \(Self.describe(health?.localAddress))")
        }
        if configuration.destinationPolicy.isEnabled {
            var policy = proxy.destinations.policy
            policy.ownEndpoints = Self.ownEndpoints([server.localAddress, health?.localAddress].compactMap { $0 })
            proxy.destinations.policy = policy
        }
        try await server.setOption(.autoRead, value: true)
        readiness.state = .ready
        logger.notice("passsage proxy listening on \(Self.describe(server.localAddress))")

        // Returns on SIGTERM/SIGINT (graceful) or throws on cancellation.
        let cancelled = (try? await gracefulShutdown()) == nil
        readiness.state = .draining
        if !cancelled {
            logger.notice("shutting down: no new connections; waiting up to \(configuration.shutdownGracePeriod) for in-flight requests")
            let drained = await Self.quiesce(quiescing, within: configuration.shutdownGracePeriod, on: group.next())
            if !drained {
                logger.warning("grace period over; closing the remaining connections")
            }
        } else {
            server.close(promise: nil)
        }
        try? await health?.close()
        await proxy.shutdownClients()
        logger.notice("stopped")
    }

    private func bindProxy(quiescing: ServerQuiescingHelper) async throws -> Channel {
        let proxy = self.proxy
        let limit = ClientConnectionLimit(limit: configuration.maxClientConnections ?? Int.max)
        let refusals = RateLimitedWarning(logger: logger, message: "client connection refused")
        let acceptFailures = RateLimitedWarning(logger: logger, message: "accepting connections failed; backing off")
        logger.notice("serving at most \(limit.limit) client connections at once")
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: false)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(AcceptThrottle(warning: acceptFailures))
                    try sync.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard limit.tryAcquire() else {
                        refusals.record("\(limit.limit) connections are open (--max-client-connections)")
                        try channel.pipeline.syncOperations.addHandler(ConnectionRefuser())
                        return
                    }
                    channel.closeFuture.whenComplete { _ in limit.release() }
                    try HTTPPipeline.configureListener(channel, proxy: proxy)
                }
            }
            .bind(host: configuration.bindHost, port: configuration.port)
            .get()
    }

    /// Starts quiescing and waits until every connection closed or `grace` passed.
    private static func quiesce(_ helper: ServerQuiescingHelper, within grace: TimeAmount, on eventLoop: EventLoop) async -> Bool {
        let finished = eventLoop.makePromise(of: Bool.self)
        let settled = NIOLockedValueBox(false)
        let settle: @Sendable (Bool) -> Void = { value in
            let first = settled.withLockedValue { done in
                defer { done = true }
                return !done
            }
            if first { finished.succeed(value) }
        }
        let allClosed = eventLoop.makePromise(of: Void.self)
        allClosed.futureResult.whenComplete { _ in settle(true) }
        let timer = eventLoop.scheduleTask(in: grace) { settle(false) }
        helper.initiateShutdown(promise: allClosed)
        let drained = (try? await finished.futureResult.get()) ?? false
        timer.cancel()
        return drained
    }

    /// The listeners' endpoints as the destination policy sees them; a wildcard listener is
    /// reachable on every local address.
    static func ownEndpoints(_ addresses: [SocketAddress]) -> [DestinationPolicy.Endpoint] {
        var endpoints: [DestinationPolicy.Endpoint] = []
        let local = ((try? System.enumerateDevices()) ?? []).compactMap { $0.address.flatMap(IPAddressBytes.of) }
        let loopback = ["127.0.0.0/8", "::1/128"].map { try! IPNetwork(parsing: $0) }
        for address in addresses {
            guard let port = address.port, let bytes = IPAddressBytes.of(address) else { continue }
            endpoints.append(DestinationPolicy.Endpoint(address: bytes, port: port))
            if bytes.allSatisfy({ $0 == 0 }) {
                // A wildcard listener answers on every local address, all of loopback included.
                endpoints += local.map { DestinationPolicy.Endpoint(address: $0, port: port) }
                endpoints += loopback.map { DestinationPolicy.Endpoint(network: $0, port: port) }
            }
        }
        return endpoints
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// A listener could not be opened (address in use, bad address, permissions).
public struct ListenError: Error, CustomStringConvertible {
    public let what: String
    public let host: String
    public let port: Int
    public let underlying: any Error

    public var description: String {
        "cannot listen for \(what) connections on \(host):\(port): \(underlying)"
    }
}
