import HTTPRules
import Logging
import NIOCore
import NIOHTTP1
import Onboarding
import OriginConnections

/// Where the HTTP requests on a connection come from.
enum ConnectionMode {
    /// The proxy's own listener: absolute-form requests, CONNECT, and requests to the proxy itself.
    case forwardListener
    /// Inside a CONNECT tunnel: requests for `scheme://authority`, and only for that authority.
    case tunnel(scheme: RequestScheme, authority: Authority)
}

/// Serves the HTTP requests of one client connection (or of one intercepted tunnel), one at a
/// time: forwards them upstream, answers `mitm.it` and errors locally, and hands CONNECT to
/// `TunnelSwitch`.
///
/// Input is taken only as fast as output drains: requests pipelined behind the one in flight
/// wait in a bounded queue (reads stop while any wait), and no new request is started while the
/// client's output is backed up, whatever produces the response (origin, onboarding site, error).
/// So a client that sends and never reads holds a bounded amount of memory. (NIO's
/// `HTTPServerPipelineHandler` also queues, but stops reading during every response, which costs
/// two `epoll_ctl` calls per request; this handler keeps reading until a request is queued.)
final class ProxyHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Machine = ProxyConnectionStateMachine
    typealias RequestRecord = ProxyRequestRecord

    let mode: ConnectionMode
    let proxy: ProxyContext
    let headDeadline: RequestHeadDeadline?
    /// Every decision about the connection's sequencing; this handler does the I/O.
    var machine: Machine
    var context: ChannelHandlerContext?
    private var isPumping = false
    /// Body bytes of the request in flight last arrived then (the client body timeout).
    var lastBodyRead = NIODeadline.now()
    var bodyTimer: Scheduled<Void>?
    /// Hears the response head of the relayed request in flight (`ResponsePlan.observedRelay`).
    var relayObserver: (any RelayObserver)?

    init(mode: ConnectionMode, proxy: ProxyContext, headDeadline: RequestHeadDeadline?) {
        self.mode = mode
        self.proxy = proxy
        self.headDeadline = headDeadline
        self.machine = Machine(pipelinedRequestLimit: proxy.configuration.pipelinedRequestLimit)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelBodyTimer()
        self.context = nil
    }

    // MARK: Inbound and the queue

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .head = part { headDeadline?.headReceived() }
        arrived(.part(part), context: context)
    }

    private func arrived(_ item: Machine.Queued, context: ChannelHandlerContext) {
        switch machine.arrived(item, outputWritable: context.channel.isWritable) {
        case .handle(let item):
            handle(item, context: context)
        case .overflowed:
            proxy.logger.notice("pipelined request limit reached; closing after the queued responses", metadata: [
                "client": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")",
                "limit": "\(proxy.configuration.pipelinedRequestLimit)",
            ])
        case .queued, .dropped:
            break
        }
    }

    /// Serves what was queued as far as the state allows, then reads again if input is wanted.
    func pump(context: ChannelHandlerContext) {
        guard !isPumping else { return }   // a response finishing inside `handle`
        isPumping = true
        defer { isPumping = false }
        while true {
            switch machine.nextPumpStep(outputWritable: context.channel.isWritable) {
            case .handle(let item):
                handle(item, context: context)
            case .close:
                context.close(promise: nil)
                return
            case .resumeReads:
                resumeReads()
                return
            case .pauseReads, .wait:
                return
            }
        }
    }

    private func handle(_ item: Machine.Queued, context: ChannelHandlerContext) {
        switch item {
        case .part(let part): handle(part, context: context)
        case .malformed(let error): handleProtocolError(error, context: context)
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let buffer):
            receivedBody(buffer, context: context)
        case .end:
            receivedEnd(context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var record = RequestRecord(
            method: head.method.rawValue,
            target: head.uri,
            requestID: RequestID.resolve(from: head.headers),
            keepAlive: head.isKeepAlive,
            started: .now()
        )
        switch machine.headDisposition() {
        case .serve: break
        case .ignore: return
        case .unexpected:
            respondLocally(status: .badRequest, text: "unexpected request", record: record, close: true, context: context)
            return
        }
        let target: ProxyRequestTarget
        do {
            target = try resolveTarget(head)
        } catch {
            let status: HTTPResponseStatus = if case .misdirected = error { .misdirectedRequest } else { .badRequest }
            respondLocally(status: status, text: error.description, record: record, close: true, context: context)
            return
        }
        if let (status, text) = Self.framingProblem(head) {
            respondLocally(status: status, text: text, record: record, close: true, context: context)
            return
        }
        switch target {
        case .authority(let authority):
            record.target = authority.description
            guard case .forwardListener = mode else {
                respondLocally(status: .methodNotAllowed, text: "CONNECT inside a tunnel is not supported",
                               record: record, close: true, context: context)
                return
            }
            machine.awaitConnectEnd(authority, record: record)
        case .origin(let pathAndQuery):
            serve(SourceRequest(head: head, target: .proxyItself(pathAndQuery: pathAndQuery),
                                localAddress: context.channel.localAddress),
                  record: record, context: context)
        case .absolute(let scheme, let authority, let pathAndQuery):
            let path = UpstreamURL.encodeInvalidCharacters(pathAndQuery)
            record.target = "\(scheme.rawValue)://\(authority.urlAuthority(scheme: scheme))\(path)"
            serve(SourceRequest(head: head, target: .url(scheme: scheme, authority: authority, path: path),
                                localAddress: context.channel.localAddress),
                  record: record, context: context)
        }
    }

    /// Maps the request line to a target. Inside a tunnel, the CONNECT authority is the only one:
    /// a request naming another gets 421 (`TunnelRequestTarget`).
    private func resolveTarget(_ head: HTTPRequestHead) throws(RequestTargetError) -> ProxyRequestTarget {
        if Self.hostFieldCount(head.headers) > 1 {
            throw .malformed("more than one Host header")
        }
        guard case .tunnel(let scheme, let authority) = mode, head.method != .CONNECT else {
            return try ProxyRequestTarget.parse(method: head.method.rawValue, uri: head.uri)
        }
        let path = try TunnelRequestTarget.resolve(method: head.method.rawValue, uri: head.uri,
                                                   hostHeader: head.headers.first(name: "host"), tunnel: authority)
        return .absolute(scheme: scheme, authority: authority, pathAndQuery: path)
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let exchange = machine.bodyDestination() else { return }
        lastBodyRead = .now()
        exchange.writeBody(buffer)
        if !exchange.acceptsRequestBody { machine.pauseReads() }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch machine.requestEnded() {
        case .endRequestBody(let exchange):
            cancelBodyTimer()
            exchange.end()
        case .becomeIdle:
            becameIdle(context: context)
        case .switchToTunnel(let authority, let record):
            TunnelSwitch.handleConnect(authority: authority, requestID: record.requestID,
                                       started: record.started, context: context, proxy: proxy)
        case .none:
            break
        }
    }

    /// The exchange is over and the connection stays: wait for the next request, serve queued ones.
    func becameIdle(context: ChannelHandlerContext) {
        perform(machine.becameIdle(), context: context)
    }

    func perform(_ action: Machine.IdleAction, context: ChannelHandlerContext) {
        switch action {
        case .close:
            context.close(promise: nil)
        case .pump(let awaitNextHead):
            if awaitNextHead { headDeadline?.awaitNextHead() }   // a queued head is complete already
            pump(context: context)
        }
    }

    // MARK: Flow control and lifecycle

    func read(context: ChannelHandlerContext) {
        if machine.readRequested() { context.read() }
    }

    func resumeReads() {
        let (wasPaused, issueRead) = machine.resumeReads()
        if wasPaused, bodyTimer != nil {
            lastBodyRead = .now()   // the pause was the origin's doing, not the client's silence
        }
        if issueRead, let context { context.read() }
    }

    /// Before the tunnel's handlers replace this one: a read held back here would be lost.
    func releaseHeldRead() {
        if machine.releaseHeldRead(), let context { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            switch machine.state {
            case .forwarding(let exchange, _, _): exchange.resumeResponse()
            case .idle: pump(context: context)
            default: break
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelBodyTimer()
        switch machine.clientClosed() {
        case .cancel(let exchange, let record):
            // The client is gone: stop the upstream transfer now.
            exchange.cancel()
            log(record, note: "client_closed")
        case .abandonLookup(let record):
            log(record, note: "client_closed during_lookup")
        case .none:
            break
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestHeadDeadline.Expired {
            guard machine.headDeadlineExpired() else { return }
            respondLocally(status: .requestTimeout, text: "request headers not received in time",
                           record: unparsedRequestRecord(), close: true, context: context,
                           note: "client_header_timeout")
            // The 408 cannot always go out (a TLS handshake that never finished holds it back):
            // the connection closes shortly after whatever happened to the answer.
            let channel = context.channel
            context.eventLoop.scheduleTask(in: RequestHeadDeadline.closeGrace) { channel.close(promise: nil) }
            return
        }
        if event is IdleStateHandler.IdleStateEvent {
            // Nothing moved either way for the idle timeout.
            switch machine.idleTimeout(outputWritable: context.channel.isWritable) {
            case .close:
                context.close(promise: nil)
            case .cancelAndClose(let exchange, let record):
                exchange.cancel()
                log(record, note: "aborted client_stalled")
                context.close(promise: nil)
            case .none:
                break
            }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Idle connections close now, busy ones when their response ends (finishResponse).
            if machine.quiesce() { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            // A reset or TLS failure: close, and let channelInactive cancel the exchange in flight
            // (its upstream connection must not outlive the client).
            proxy.logger.debug("client connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        // The decoder rejected input: it belongs to the request being read, or to one queued behind
        // the request in flight, answered in turn.
        arrived(.malformed(parserError), context: context)
    }
}
