import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The upstream connections of one event loop. Client connections on this loop only ever use
/// these, so a proxied request never hops threads. Keep-alive connections are reused newest first;
/// past `connectionsPerOrigin` open connections, requests wait in arrival order.
/// Confined to `eventLoop` (hence the unchecked `Sendable`: the client holds one pool per loop).
final class LoopPool: @unchecked Sendable {
    let eventLoop: EventLoop
    private let configuration: OriginClientConfiguration
    private let sslContext: NIOSSLContext
    private let connectionLimit: Int
    private var idle: [Origin: [OriginConnection]] = [:]
    private var openCount: [Origin: Int] = [:]
    private var waiting: [Origin: CircularBuffer<OriginExchange>] = [:]
    private var sweeper: RepeatedTask?
    private var isShutDown = false

    init(eventLoop: EventLoop, configuration: OriginClientConfiguration, sslContext: NIOSSLContext, connectionLimit: Int) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.sslContext = sslContext
        self.connectionLimit = max(1, connectionLimit)
    }

    /// Finds a connection for `exchange`: a pooled one unless `fresh`, else a new one, else a place
    /// in the queue.
    func lease(for exchange: OriginExchange, fresh: Bool = false) {
        eventLoop.assertInEventLoop()
        if isShutDown {
            exchange.connectFailed(OriginError.shutdown)   // reported after `startExchange` returns
            return
        }
        let origin = exchange.origin
        if !fresh, let connection = takeIdle(origin) {
            exchange.attach(connection, reused: true)
        } else if openCount[origin, default: 0] < connectionLimit {
            connect(for: exchange)
        } else {
            // Waiting for a connection to come free is bounded like connecting is.
            waiting[origin, default: []].append(exchange)
            exchange.waitTimer = eventLoop.assumeIsolated().scheduleTask(in: configuration.connectTimeout) {
                exchange.connectFailed(OriginError.noConnectionAvailable)
            }
        }
    }

    /// Takes a connection back after an exchange: parked for reuse, handed to a waiting exchange,
    /// or closed.
    func release(_ connection: OriginConnection, reusable: Bool) {
        guard reusable, !isShutDown, connection.detach() else {
            connection.close()
            return
        }
        if let next = nextWaiting(connection.origin) {
            next.attach(connection, reused: true)
            return
        }
        connection.parkedSince = .now()
        idle[connection.origin, default: []].append(connection)
        startSweeper()
    }

    /// Closes the pooled connections and refuses new exchanges; running ones finish.
    func shutdown() {
        isShutDown = true
        sweeper?.cancel()
        sweeper = nil
        for connection in idle.values.joined() { connection.close() }
        idle.removeAll()
        for queue in waiting.values {
            for exchange in queue { exchange.connectFailed(OriginError.shutdown) }
        }
        waiting.removeAll()
    }

    // MARK: Connections

    private func takeIdle(_ origin: Origin) -> OriginConnection? {
        while let connection = idle[origin]?.popLast() {
            if connection.isUsable {
                connection.parkedSince = nil
                return connection
            }
        }
        return nil
    }

    private func nextWaiting(_ origin: Origin) -> OriginExchange? {
        while let exchange = waiting[origin]?.popFirst() {
            if exchange.isWaitingForConnection { return exchange }
        }
        return nil
    }

    private func connect(for exchange: OriginExchange) {
        let origin = exchange.origin
        openCount[origin, default: 0] += 1
        let sslContext = sslContext
        let readTimeout = configuration.readTimeout
        let connectTimeout = configuration.connectTimeout
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // As on the proxy's listener: more reads per wake-up, so a large body moves in bigger bursts.
            .channelOption(.maxMessagesPerRead, value: 16)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if origin.usesTLS {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext,
                                                                serverHostname: origin.serverNameIndication))
                    }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(OriginConnection(origin: origin, readTimeout: readTimeout,
                                                         connectTimeout: connectTimeout))
                }
            }
        configuration.destinations.connect(bootstrap, host: origin.host, port: origin.port,
                                           timeout: connectTimeout, on: eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.connected(channel, for: exchange)
                case .failure(let error):
                    self.connectionClosed(origin)
                    exchange.connectFailed(error)   // reported after `startExchange` returns
                }
            }
    }

    private func connected(_ channel: Channel, for exchange: OriginExchange) {
        guard let connection = try? channel.pipeline.syncOperations.handler(type: OriginConnection.self) else {
            channel.close(promise: nil)
            connectionClosed(exchange.origin)
            exchange.connectFailed(OriginError.connectionClosed)
            return
        }
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.connectionClosed(connection.origin, connection)
        }
        if exchange.isWaitingForConnection {
            exchange.attach(connection, reused: false)
        } else if let next = nextWaiting(exchange.origin) {
            next.attach(connection, reused: false)   // cancelled meanwhile: someone else needs it
        } else {
            // Cancelled meanwhile and nobody waits: parking it would let clients that abort at once
            // make the proxy hold connections (and descriptors) it never used.
            connection.close()
        }
    }

    /// A connection closed (or failed to open): it no longer counts, so a waiting exchange may connect.
    private func connectionClosed(_ origin: Origin, _ connection: OriginConnection? = nil) {
        openCount[origin, default: 1] -= 1
        if let connection, let index = idle[origin]?.firstIndex(where: { $0 === connection }) {
            idle[origin]?.remove(at: index)
        }
        if openCount[origin] == 0 { openCount[origin] = nil }
        if idle[origin]?.isEmpty == true { idle[origin] = nil }
        if !isShutDown, openCount[origin, default: 0] < connectionLimit, let next = nextWaiting(origin) {
            connect(for: next)
        }
    }

    // MARK: Idle sweep

    /// One timer per loop closes connections parked longer than the idle timeout.
    private func startSweeper() {
        guard sweeper == nil else { return }
        let interval = max(TimeAmount.seconds(1), TimeAmount.nanoseconds(configuration.idleTimeout.nanoseconds / 4))
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            self.closeExpired()
        }
    }

    private func closeExpired() {
        let cutoff = NIODeadline.now() - configuration.idleTimeout
        for connection in idle.values.joined() where (connection.parkedSince ?? .distantFuture) <= cutoff {
            connection.close()
        }
    }
}
