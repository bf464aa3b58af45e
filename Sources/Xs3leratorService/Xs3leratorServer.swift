import DataPlane
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The xs3lerator HTTP service: HTTP/1.1 with keep-alive on `bindHost:port`. On a graceful
/// shutdown it stops accepting, closes idle connections, lets in-flight responses finish within
/// the grace period, then closes what is left.
public final class Xs3leratorServer: Service, Sendable {
    private let configuration: Xs3leratorConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let handler: RequestHandler
    private let logger: Logger
    private let connections: ConnectionRegistry
    private let boundAddress = NIOLockedValueBox<SocketAddress?>(nil)

    /// Serves `dataPlane` (which the caller owns and shuts down) on `eventLoopGroup`.
    public init(configuration: Xs3leratorConfiguration, dataPlane: DataPlane, eventLoopGroup: any EventLoopGroup,
                logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.handler = RequestHandler(configuration: configuration, dataPlane: dataPlane, logger: logger)
        self.logger = logger
        self.connections = ConnectionRegistry(eventLoopGroup: eventLoopGroup)
    }

    /// The listener's address once bound.
    public var localAddress: SocketAddress? { boundAddress.withLockedValue { $0 } }

    public func run() async throws {
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        do {
            server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.bindHost, port: configuration.port) { [configuration] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionDeadlines(headTimeout: TimeAmount(configuration.requestHeadTimeout),
                                                writeStallTimeout: TimeAmount(configuration.writeStallTimeout)))
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Xs3ListenError(host: configuration.bindHost, port: configuration.port, underlying: error)
        }
        boundAddress.withLockedValue { $0 = server.channel.localAddress }
        logger.notice("xs3lerator listening on \(Self.describe(server.channel.localAddress))")

        let grace = configuration.shutdownGracePeriod
        let connections = self.connections
        let logger = self.logger
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                try? await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            } onGracefulShutdown: {
                logger.notice("shutting down: no new connections; waiting up to \(grace) for in-flight responses")
                server.channel.close(promise: nil)
                connections.beginShutdown(grace: grace, logger: logger)
            }
        }
        logger.notice("stopped")
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let channel = connection.channel
        let id = connections.add(channel)
        defer { connections.remove(id) }
        try? await connection.executeThenClose { inbound, outbound in
            var requests = inbound.makeAsyncIterator()
            while let part = try await requests.next() {
                guard case .head(let head) = part else { continue }
                // GET and HEAD have no body; read past anything sent anyway.
                while let next = try await requests.next() {
                    if case .end = next { break }
                }
                guard connections.startRequest(id) else { return }
                let keepAlive = head.isKeepAlive
                let writer = ResponseWriter(outbound: outbound, channel: channel, version: head.version, keepAlive: keepAlive,
                                            isHead: head.method == .HEAD)
                // A client that goes away cancels its response (and with it the download). Its
                // end of input counts as going away (half-closure is not allowed): otherwise a
                // client gone while the upstream is silent would be noticed only at the next write,
                // holding its socket and an upstream connection meanwhile (nginx does the same).
                let handler = self.handler
                let work = Task { await handler.respond(to: head, writer: writer) }
                channel.closeFuture.whenComplete { _ in work.cancel() }
                let outcome = await work.value
                let mayContinue = connections.finishRequest(id)
                if outcome == .closeConnection || !keepAlive || !mayContinue { return }
            }
        }
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Open connections, and whether each is inside a request, for a graceful shutdown.
final class ConnectionRegistry: Sendable {
    private struct State {
        var nextID = 0
        var channels: [Int: (channel: any Channel, busy: Bool)] = [:]
        var shuttingDown = false
    }

    private let state = NIOLockedValueBox(State())
    private let eventLoopGroup: any EventLoopGroup

    init(eventLoopGroup: any EventLoopGroup) {
        self.eventLoopGroup = eventLoopGroup
    }

    func add(_ channel: any Channel) -> Int {
        let (id, closeNow) = state.withLockedValue { state -> (Int, Bool) in
            state.nextID += 1
            state.channels[state.nextID] = (channel, false)
            return (state.nextID, state.shuttingDown)
        }
        if closeNow { channel.close(promise: nil) }
        return id
    }

    func remove(_ id: Int) {
        _ = state.withLockedValue { $0.channels.removeValue(forKey: id) }
    }

    /// False once shutting down: the connection closes instead of starting a new request.
    func startRequest(_ id: Int) -> Bool {
        state.withLockedValue { state in
            guard !state.shuttingDown else { return false }
            state.channels[id]?.busy = true
            return true
        }
    }

    /// Returns whether the connection may take another request.
    func finishRequest(_ id: Int) -> Bool {
        state.withLockedValue { state in
            state.channels[id]?.busy = false
            return !state.shuttingDown
        }
    }

    /// Closes idle connections now and every connection once `grace` has passed.
    func beginShutdown(grace: Duration, logger: Logger) {
        let idle = state.withLockedValue { state -> [any Channel] in
            state.shuttingDown = true
            return state.channels.values.filter { !$0.busy }.map(\.channel)
        }
        for channel in idle { channel.close(promise: nil) }
        let state = self.state
        eventLoopGroup.next().scheduleTask(in: TimeAmount(grace)) {
            let remaining = state.withLockedValue { $0.channels.values.map(\.channel) }
            if !remaining.isEmpty { logger.warning("grace period over; closing \(remaining.count) connections") }
            for channel in remaining { channel.close(promise: nil) }
        }
    }
}

/// The listener could not be opened.
public struct Xs3ListenError: Error, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let underlying: any Error

    public var description: String { "cannot listen on \(host):\(port): \(underlying)" }
}
