import HTTPRules
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Onboarding
import OriginConnections

/// Turns a connection that sent `CONNECT host:port` into a tunnel.
///
/// Intercepted hosts get `200 Connection Established` at once (no upstream connection is opened
/// until a request needs one); the first bytes then decide between TLS interception, plain HTTP
/// and an opaque splice. `--no-intercept` hosts are connected first, so a failure is still a 502.
enum TunnelSwitch {
    static let established: StaticString = "HTTP/1.1 200 Connection Established\r\n\r\n"

    static func handleConnect(
        authority: Authority,
        requestID: String,
        started: NIODeadline,
        context: ChannelHandlerContext,
        proxy: ProxyContext
    ) {
        let intercept = authority.host == OnboardingSite.hostName || !proxy.configuration.noIntercept.matches(authority.host)
        let mode = intercept ? "intercept" : "blind"
        let channel = context.channel
        let eventLoop = context.eventLoop
        // The destination is vetted before the 200, so a denied one is a 403 the client can read.
        // An intercepted tunnel needs no addresses until a request inside it connects (and is
        // vetted again there), so without a policy it skips the lookup.
        let vetted: EventLoopFuture<[SocketAddress]?>
        if intercept && (!proxy.destinations.policy.isEnabled || authority.host == OnboardingSite.hostName) {
            vetted = eventLoop.makeSucceededFuture(nil)
        } else {
            vetted = proxy.destinations.resolve(host: authority.host, port: authority.port,
                                                timeout: proxy.configuration.upstreamConnectTimeout, on: eventLoop).map { $0 }
        }
        vetted.assumeIsolated().whenComplete { result in
            guard channel.isActive else { return }
            switch result {
            case .failure(let error):
                let failure = UpstreamFailure.classify(error)
                logConnect(authority: authority, status: Int(failure.status.code), mode: mode, requestID: requestID,
                           started: started, cause: failure.detail, proxy: proxy)
                respondAndClose(channel: channel, failure: failure, requestID: requestID)
            case .success(let addresses):
                if intercept {
                    do {
                        try switchToSniffer(authority: authority, channel: channel, proxy: proxy)
                        logConnect(authority: authority, status: 200, mode: mode, requestID: requestID,
                                   started: started, proxy: proxy)
                    } catch {
                        proxy.logger.error("CONNECT switch failed", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                    }
                } else {
                    connectBlind(authority: authority, addresses: addresses, requestID: requestID, started: started,
                                 channel: channel, proxy: proxy)
                }
            }
        }
    }

    private static func connectBlind(authority: Authority, addresses: [SocketAddress]?, requestID: String,
                                     started: NIODeadline, channel: Channel, proxy: ProxyContext) {
        Splice.connect(to: authority, on: channel.eventLoop, proxy: proxy, resolved: addresses)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let upstream):
                    do {
                        try switchToSplice(channel: channel, upstream: upstream, proxy: proxy)
                        logConnect(authority: authority, status: 200, mode: "blind", requestID: requestID,
                                   started: started, proxy: proxy)
                    } catch {
                        upstream.close(promise: nil)
                        channel.close(promise: nil)
                    }
                case .failure(let error):
                    let failure = UpstreamFailure.classify(error)
                    logConnect(authority: authority, status: Int(failure.status.code), mode: "blind",
                               requestID: requestID, started: started, cause: failure.detail, proxy: proxy)
                    respondAndClose(channel: channel, failure: failure, requestID: requestID)
                }
            }
    }

    /// Removes the HTTP codec and leaves a `TunnelSniffer` in its place. Bytes the decoder already
    /// holds (a ClientHello sent before our 200) are forwarded to the sniffer as the decoder goes.
    private static func switchToSniffer(authority: Authority, channel: Channel, proxy: ProxyContext) throws {
        let operations = channel.pipeline.syncOperations
        let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        let sniffer = TunnelSniffer(authority: authority, proxy: proxy)
        try operations.addHandler(sniffer, position: .after(decoder))
        try removeHTTPHandlers(operations, keepingDecoder: true)
        sniffer.sendEstablished()
        operations.removeHandler(decoder, promise: nil)
    }

    private static func switchToSplice(channel: Channel, upstream: Channel, proxy: ProxyContext) throws {
        let operations = channel.pipeline.syncOperations
        let (clientSide, upstreamSide) = Splice.makePair()
        let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try operations.addHandler(clientSide, position: .after(decoder))
        try upstream.pipeline.syncOperations.addHandler(upstreamSide)
        try removeHTTPHandlers(operations, keepingDecoder: true)
        var buffer = channel.allocator.buffer(capacity: 64)
        buffer.writeStaticString(established)
        channel.writeAndFlush(buffer, promise: nil)
        operations.removeHandler(decoder, promise: nil)
    }

    private static func removeHTTPHandlers(_ operations: ChannelPipeline.SynchronousOperations, keepingDecoder: Bool) throws {
        operations.removeHandler(try operations.handler(type: HTTPResponseEncoder.self), promise: nil)
        if let pipelining = try? operations.handler(type: HTTPServerPipelineHandler.self) {
            operations.removeHandler(pipelining, promise: nil)
        }
        if let validator = try? operations.handler(type: NIOHTTPResponseHeadersValidator.self) {
            operations.removeHandler(validator, promise: nil)
        }
        if let deadline = try? operations.handler(type: RequestHeadDeadline.self) {
            operations.removeHandler(deadline, promise: nil)   // the tunnel brings its own
        }
        let handler = try operations.handler(type: ProxyHTTPHandler.self)
        handler.releaseHeldRead()   // the tunnel's handlers take over reading
        operations.removeHandler(handler, promise: nil)
    }

    private static func respondAndClose(channel: Channel, failure: UpstreamFailure, requestID: String) {
        let parts = LocalResponse.textParts(status: failure.status, text: LocalResponse.errorText(failure.message, requestID: requestID),
                                            requestID: requestID, close: true, allocator: channel.allocator)
        for part in parts.dropLast() {
            channel.write(part, promise: nil)
        }
        channel.writeAndFlush(parts.last!).whenComplete { _ in channel.close(promise: nil) }
    }

    private static func logConnect(authority: Authority, status: Int, mode: String, requestID: String,
                                   started: NIODeadline, cause: String? = nil, proxy: ProxyContext) {
        let milliseconds = Double((NIODeadline.now() - started).nanoseconds) / 1_000_000
        var line = "CONNECT \(authority) \(status) tunnel=\(mode) duration_ms=\((milliseconds * 10).rounded() / 10) request_id=\(requestID)"
        if let cause { line += " cause=\"\(cause)\"" }
        proxy.logger.info("\(line)")
    }
}
