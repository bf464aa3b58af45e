import HTTPRules
import NIOCore
import NIOSSL

/// Sits in a fresh tunnel and decides, from the client's first bytes, what the tunnel carries:
/// a TLS ClientHello is intercepted, an HTTP request line is proxied as HTTP, and anything else is
/// spliced to the CONNECT target as opaque bytes. Reads are held while the decision is pending
/// (minting a leaf, connecting upstream), and buffered bytes are replayed once the new handlers
/// are in place.
final class TunnelSniffer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case waitingForBytes
        case preparing
        case done
    }

    private let authority: Authority
    private let proxy: ProxyContext
    private var phase = Phase.waitingForBytes
    private var buffered: ByteBuffer?
    private var readPending = false
    private var context: ChannelHandlerContext?

    init(authority: Authority, proxy: ProxyContext) {
        self.authority = authority
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func sendEstablished() {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeStaticString(TunnelSwitch.established)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        guard case .waitingForBytes = phase, let first = buffered?.readableBytesView.first else { return }
        phase = .preparing
        if first == 0x16 {
            startInterception(context: context)
        } else if (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) {
            install(context: context) { channel in
                try HTTPPipeline.configureTunnel(channel, after: self, tls: nil, scheme: .http,
                                                 authority: self.authority, proxy: self.proxy)
            }
        } else {
            startSplice(context: context)
        }
    }

    private func startInterception(context: ChannelHandlerContext) {
        proxy.interception.context(forConnectHost: authority.host, on: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                guard let context = self.context else { return }
                switch result {
                case .success(let tlsContext):
                    self.install(context: context) { channel in
                        try HTTPPipeline.configureTunnel(channel, after: self, tls: NIOSSLServerHandler(context: tlsContext),
                                                         scheme: .https, authority: self.authority, proxy: self.proxy)
                    }
                case .failure(let error):
                    self.proxy.logger.error("cannot prepare TLS interception",
                                            metadata: ["host": "\(self.authority.host)", "error": "\(error)"])
                    context.close(promise: nil)
                }
            }
    }

    private func startSplice(context: ChannelHandlerContext) {
        let channel = context.channel
        Splice.connect(to: authority, on: context.eventLoop, proxy: proxy)
            .assumeIsolated()
            .whenComplete { result in
                guard let context = self.context else { return }
                switch result {
                case .success(let upstream):
                    self.install(context: context) { _ in
                        let (clientSide, upstreamSide) = Splice.makePair()
                        try channel.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
                        try upstream.pipeline.syncOperations.addHandler(upstreamSide)
                    }
                case .failure(let error):
                    self.proxy.logger.info("opaque tunnel could not connect",
                                           metadata: ["target": "\(self.authority)", "error": "\(error)"])
                    context.close(promise: nil)
                }
            }
    }

    /// Adds the handlers that take over, replays what we buffered, and leaves the pipeline.
    private func install(context: ChannelHandlerContext, _ configure: (Channel) throws -> Void) {
        do {
            try configure(context.channel)
        } catch {
            proxy.logger.error("tunnel set-up failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        phase = .done
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        // Re-issue a read we held back while still in the pipeline: a removed context cannot.
        if readPending {
            readPending = false
            context.read()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if case .preparing = phase {
            readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent, case .waitingForBytes = phase {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
