import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// The last handler of one upstream connection's pipeline (TLS, HTTP/1.1 codec, this). It relays
/// response parts to the exchange it currently serves, holds reads back while the client cannot
/// take more, and enforces the read timeout. Between exchanges it sits in its `LoopPool`.
/// Everything runs on the connection's event loop, which is also the client connection's loop.
final class OriginConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let origin: Origin
    private let readTimeout: TimeAmount?
    private let connectTimeout: TimeAmount
    private(set) var context: ChannelHandlerContext?
    /// The exchange being served; nil while pooled.
    private var exchange: OriginExchange?
    /// Set while parked in the pool, for the idle sweep.
    var parkedSince: NIODeadline?
    private var readsPaused = false
    private var readPending = false
    private var lastRead = NIODeadline.now()
    private var readTimer: Scheduled<Void>?
    private var handshakeTimer: Scheduled<Void>?

    init(origin: Origin, readTimeout: TimeAmount?, connectTimeout: TimeAmount) {
        self.origin = origin
        self.readTimeout = readTimeout
        self.connectTimeout = connectTimeout
    }

    var channel: Channel? { context?.channel }
    var isUsable: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if origin.usesTLS {
            // The connect timeout covers the handshake too: an origin that accepts and then says
            // nothing must not hold the request for the whole read timeout.
            handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: connectTimeout) { [self] in
                self.fail(OriginError.connectTimeout)
            }
        }
        context.fireChannelActive()
    }

    // MARK: Serving an exchange

    func attach(_ exchange: OriginExchange) {
        parkedSince = nil
        self.exchange = exchange
        readsPaused = false
        lastRead = .now()
    }

    func write(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// The request is out: from now on, silence from the origin counts against the read timeout.
    func requestSent() {
        lastRead = .now()
        armReadTimer(at: lastRead)
    }

    /// Detaches the finished exchange. Returns whether the connection can serve another request.
    func detach() -> Bool {
        exchange = nil
        readTimer?.cancel()
        readTimer = nil
        resumeReads()
        return isUsable
    }

    func close() {
        exchange = nil
        readTimer?.cancel()
        readTimer = nil
        context?.close(promise: nil)
    }

    func pauseReads() {
        readsPaused = true
    }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        lastRead = .now()   // the pause was the client's doing, not the origin's silence
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        guard let exchange else {
            // Bytes on a pooled connection belong to no request: the connection is unusable.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            exchange.connectionReceivedHead(head)
        case .body(let buffer):
            exchange.connectionReceivedBody(buffer)
        case .end:
            exchange.connectionReceivedEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.connectionReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { exchange?.connectionBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            handshakeTimer?.cancel()
            handshakeTimer = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        readTimer?.cancel()
        fail(OriginError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
    }

    /// Reports the first failure to the exchange (later ones are consequences) and closes.
    private func fail(_ error: Error) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if let exchange {
            self.exchange = nil
            exchange.connectionFailed(error)
        }
        context?.close(promise: nil)
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    // MARK: Read timeout

    /// One timer per exchange, re-armed from the last read when it fires early; cheaper than
    /// rescheduling on every read.
    private func armReadTimer(at from: NIODeadline) {
        guard let readTimeout, let context else { return }
        readTimer?.cancel()
        readTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: from + readTimeout) { [self] in
            self.readTimerFired()
        }
    }

    private func readTimerFired() {
        guard exchange != nil, let readTimeout else { return }
        let now = NIODeadline.now()
        if readsPaused {
            // The client is slow, not the origin.
            armReadTimer(at: now)
        } else if now - lastRead >= readTimeout {
            fail(OriginError.readTimeout)
        } else {
            armReadTimer(at: lastRead)
        }
    }
}
