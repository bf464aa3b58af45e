import HTTPRules
import NIOCore
import NIOPosix
import OriginConnections

/// Joins two channels on the same event loop into an opaque byte pipe, with backpressure: one
/// side reads only while the other can write.
enum Splice {
    static func makePair() -> (SpliceHandler, SpliceHandler) {
        let first = SpliceHandler()
        let second = SpliceHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    /// Connects to `authority` on `eventLoop`, so the spliced channels share a thread; only to
    /// destinations the proxy's policy allows (`resolved` when the CONNECT already vetted them).
    static func connect(to authority: Authority, on eventLoop: EventLoop, proxy: ProxyContext,
                        resolved: [SocketAddress]? = nil) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(proxy.configuration.upstreamConnectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
        return proxy.destinations.connect(bootstrap, host: authority.host, port: authority.port, resolved: resolved,
                                          timeout: proxy.configuration.upstreamConnectTimeout, on: eventLoop)
    }
}

final class SpliceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    fileprivate var partner: SpliceHandler?
    private var context: ChannelHandlerContext?
    private var readPending = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        _ = context.channel.setOption(.allowRemoteHalfClosure, value: true)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // Half-close: pass the EOF on, keep the other direction open.
            partner?.context?.close(mode: .output, promise: nil)
            return
        }
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            readPending = true
        }
    }

    private func partnerBecameWritable() {
        if readPending, let context {
            readPending = false
            context.read()
        }
    }
}
