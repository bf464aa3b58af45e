import HTTPRules
import NIOCore
import NIOHTTP1
import NIOSSL

/// Builds the HTTP handler stacks for the listener and for tunnels.
enum HTTPPipeline {
    /// The proxy listener. The decoder must forward bytes that follow a CONNECT head (a client may
    /// send its ClientHello before reading our 200); NIO only selects that strategy when an upgrade
    /// configuration is present, so an empty one is given. It removes itself on the first request.
    static func configureListener(_ channel: Channel, proxy: ProxyContext) throws {
        let operations = channel.pipeline.syncOperations
        let deadline = RequestHeadDeadline(timeout: proxy.configuration.clientHeaderTimeout)
        try operations.addHandler(deadline)
        try operations.addHandler(IdleStateHandler(allTimeout: proxy.configuration.clientIdleTimeout))
        try operations.configureHTTPServerPipeline(
            withPipeliningAssistance: false,   // ProxyHTTPHandler holds pipelined requests itself
            withServerUpgrade: (upgraders: [], completionHandler: { _ in }),
            withErrorHandling: false           // ProxyHTTPHandler answers parse errors (400/431)
        )
        try operations.addHandler(ProxyHTTPHandler(mode: .forwardListener, proxy: proxy, headDeadline: deadline))
    }

    /// HTTP inside a tunnel, after the sniffer: the header deadline first (so a TLS handshake
    /// counts against it too), then `tls` if the tunnel is intercepted TLS, then the HTTP handlers.
    static func configureTunnel(
        _ channel: Channel,
        after sniffer: ChannelHandler,
        tls: NIOSSLServerHandler?,
        scheme: RequestScheme,
        authority: Authority,
        proxy: ProxyContext
    ) throws {
        let operations = channel.pipeline.syncOperations
        let deadline = RequestHeadDeadline(timeout: proxy.configuration.clientHeaderTimeout, armAtStart: true)
        try operations.addHandler(deadline, position: .after(sniffer))
        var last: ChannelHandler = deadline
        if let tls {
            try operations.addHandler(tls, position: .after(deadline))
            last = tls
        }
        try operations.addHandler(ProxyHTTPHandler(mode: .tunnel(scheme: scheme, authority: authority), proxy: proxy,
                                                   headDeadline: deadline),
                                  position: .after(last))
        try operations.configureHTTPServerPipeline(position: .after(last), withPipeliningAssistance: false,
                                                   withErrorHandling: false)
    }
}
