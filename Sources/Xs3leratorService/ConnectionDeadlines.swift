import NIOCore
import NIOHTTP1

/// The two deadlines that stop a client from holding a connection (and whatever its response
/// holds: chunk files, object-store reads, a download's readers) for ever:
/// - **Waiting for a request:** from the moment a connection opens or a response ends, the next
///   request head must be complete within `headTimeout`. That closes idle keep-alive connections
///   and clients that trickle a head a byte at a time alike.
/// - **Write stall:** a connection that stays unwritable (the client does not read) for
///   `writeStallTimeout` is closed. Any progress that drains it below the low watermark restarts
///   the clock, so slow but steady readers are served.
/// Sits after the HTTP server codec, so it sees request heads inbound and response ends outbound.
final class ConnectionDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Pure state: which deadline, if any, runs now.
    struct State: Equatable {
        enum Deadline: Equatable { case none, head, writeStall }
        private(set) var awaitingHead = true
        private(set) var writable = true

        /// The deadline that should run in this state (a stalled write wins: the client owes us reading).
        var deadline: Deadline { !writable ? .writeStall : awaitingHead ? .head : .none }

        mutating func headReceived() { awaitingHead = false }
        mutating func responseEnded() { awaitingHead = true }
        mutating func writabilityChanged(_ isWritable: Bool) { writable = isWritable }
    }

    private let headTimeout: TimeAmount
    private let writeStallTimeout: TimeAmount
    private var state = State()
    private var running: (deadline: State.Deadline, timer: Scheduled<Void>)?
    private var context: ChannelHandlerContext?

    init(headTimeout: TimeAmount, writeStallTimeout: TimeAmount) {
        self.headTimeout = headTimeout
        self.writeStallTimeout = writeStallTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        update()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        running?.timer.cancel()
        running = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            state.headReceived()
            update()
        }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        state.writabilityChanged(context.channel.isWritable)
        update()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        running?.timer.cancel()
        running = nil
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            state.responseEnded()
            update()
        }
        context.write(data, promise: promise)
    }

    /// Starts, keeps or cancels the timer so that it matches the state's deadline. A deadline that
    /// stays the same keeps running (a second head wait does not extend the first).
    private func update() {
        let wanted = state.deadline
        if let running, running.deadline == wanted { return }
        running?.timer.cancel()
        running = nil
        guard let context else { return }
        let timeout: TimeAmount
        switch wanted {
        case .none: return
        case .head: timeout = headTimeout
        case .writeStall: timeout = writeStallTimeout
        }
        let timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.running = nil
            self.context?.close(promise: nil)
        }
        running = (wanted, timer)
    }
}
