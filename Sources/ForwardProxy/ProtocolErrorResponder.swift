import NIOCore
import NIOHTTP1

/// Answers requests the HTTP decoder rejects: 431 for oversized headers, 400 for anything else
/// malformed. The decoder closes the connection right after, and other connections are unaffected.
final class ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responseInProgress = false

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if !responseInProgress {
            let (status, text) = Self.response(for: parserError)
            let parts = LocalResponse.textParts(status: status, text: text, requestID: RequestID.generate(), close: true,
                                                allocator: context.channel.allocator)
            for part in parts {
                context.write(wrapOutboundOut(part), promise: nil)
            }
            context.flush()
        }
        context.fireErrorCaught(error)
    }

    static func response(for error: HTTPParserError) -> (HTTPResponseStatus, String) {
        switch error {
        case .headerOverflow:
            return (.requestHeaderFieldsTooLarge, "request header fields too large (limit 80 KiB)\n")
        default:
            return (.badRequest, "malformed HTTP request: \(error)\n")
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            responseInProgress = true
        case .end:
            responseInProgress = false
        default:
            break
        }
        context.write(data, promise: promise)
    }
}

/// Builds the HTTP handler stacks for the listener and for tunnels.
enum HTTPPipeline {
    /// The proxy listener. The decoder must forward bytes that follow a CONNECT head (a client may
    /// send its ClientHello before reading our 200); NIO only selects that strategy when an upgrade
    /// configuration is present, so an empty one is given. It removes itself on the first request.
    static func configureListener(_ channel: Channel, proxy: ProxyContext) throws {
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(IdleStateHandler(allTimeout: proxy.configuration.clientIdleTimeout))
        try operations.configureHTTPServerPipeline(
            withPipeliningAssistance: false,   // ProxyHTTPHandler holds pipelined requests itself
            withServerUpgrade: (upgraders: [], completionHandler: { _ in }),
            withErrorHandling: false
        )
        try operations.addHandler(ProtocolErrorResponder())
        try operations.addHandler(ProxyHTTPHandler(mode: .forwardListener, proxy: proxy))
    }

    /// HTTP inside a tunnel, after `position` (the TLS handler, or the sniffer for plain HTTP).
    static func configureTunnel(
        _ channel: Channel,
        after handler: ChannelHandler,
        scheme: RequestScheme,
        authority: Authority,
        proxy: ProxyContext
    ) throws {
        let operations = channel.pipeline.syncOperations
        let responder = ProtocolErrorResponder()
        try operations.addHandler(ProxyHTTPHandler(mode: .tunnel(scheme: scheme, authority: authority), proxy: proxy),
                                  position: .after(handler))
        try operations.addHandler(responder, position: .after(handler))
        try operations.configureHTTPServerPipeline(position: .after(handler), withPipeliningAssistance: false,
                                                   withErrorHandling: false)
    }
}
