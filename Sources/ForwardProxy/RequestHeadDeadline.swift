import NIOCore

/// The header-completion deadline: once the first byte of a request arrives, its head must be
/// complete within `timeout`, however the bytes trickle (the idle timer restarts on every byte, so
/// it cannot catch a client sending one byte a second). Sits in front of the HTTP decoder (and, in
/// a TLS tunnel, in front of the TLS handler, so the handshake counts too); `ProxyHTTPHandler` tells
/// it when a head arrived and when the connection waits for the next one. On expiry it sends
/// `Expired` inbound, and `ProxyHTTPHandler`, if it waits for a head, answers 408 and closes.
final class RequestHeadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    struct Expired {}

    private let timeout: TimeAmount
    private let armAtStart: Bool
    private var awaitingHead = true
    /// When the awaited head's first byte arrived; nil until then.
    private var headStarted: NIODeadline?
    /// One timer, re-armed lazily when it fires early: scheduling and cancelling a timer for every
    /// request of a keep-alive connection would cost more than the requests' own parsing.
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// `armAtStart` starts the clock when the handler is added: in a tunnel the first bytes are
    /// already there.
    init(timeout: TimeAmount, armAtStart: Bool = false) {
        self.timeout = timeout
        self.armAtStart = armAtStart
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if armAtStart { startClock() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if awaitingHead, headStarted == nil { startClock() }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancel()
        context.fireChannelInactive()
    }

    /// A complete head arrived: no deadline until the connection waits for the next request.
    func headReceived() {
        awaitingHead = false
        headStarted = nil
    }

    /// The connection waits for its next request; the clock starts with its first byte.
    func awaitNextHead() {
        awaitingHead = true
        headStarted = nil
    }

    private func startClock() {
        guard let now = context?.eventLoop.now else { return }
        headStarted = now
        if timer == nil { arm(at: now + timeout) }
    }

    private func arm(at deadline: NIODeadline) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timer = nil
            self.timerFired()
        }
    }

    private func timerFired() {
        guard awaitingHead, let started = headStarted, let context else { return }
        let expiry = started + timeout
        guard context.eventLoop.now >= expiry else {
            arm(at: expiry)   // an earlier request's clock; this one started later
            return
        }
        context.fireUserInboundEventTriggered(Expired())
    }

    private func cancel() {
        timer?.cancel()
        timer = nil
    }

    /// How long `ProxyHTTPHandler` lets its 408 go out before it closes regardless.
    static let closeGrace = TimeAmount.seconds(1)
}
