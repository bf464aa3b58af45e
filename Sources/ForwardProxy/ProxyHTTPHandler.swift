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

    struct RequestRecord {
        let method: String
        /// The URL that is fetched and logged (and, later, keyed): computed once from the resolved target.
        var target: String
        let requestID: String
        let keepAlive: Bool
        let started: NIODeadline
        var status: HTTPResponseStatus?
        var bodyBytes = 0
        var requestEnded = false
    }

    /// How far the response to a forwarded request got.
    enum ResponseProgress {
        case awaitingHead
        /// The origin's head, held until its first body bytes or the end of the read burst, so a
        /// response that breaks before any byte reached the client still becomes a clean 502.
        case headPending(HTTPResponseHead)
        case streaming
    }

    enum State {
        case idle
        /// A request is being forwarded upstream.
        case forwarding(OriginExchange, RequestRecord, ResponseProgress)
        /// A local response was sent; the rest of the request body is read and dropped.
        case discardingRequestBody(RequestRecord)
        /// CONNECT head received; the switch happens on its `.end`.
        case awaitingConnectEnd(Authority, RequestRecord)
        /// The connection is being handed to the tunnel handlers.
        case switched
        /// The last response is out and the connection closes; further input is dropped.
        case closing
    }

    /// What waits behind the request in flight.
    enum Queued {
        case part(HTTPServerRequestPart)
        /// A request the decoder rejected, answered in its turn.
        case malformed(HTTPParserError)
    }

    let mode: ConnectionMode
    let proxy: ProxyContext
    let headDeadline: RequestHeadDeadline?
    var state = State.idle
    var context: ChannelHandlerContext?
    var readsPaused = false
    var readPending = false
    var queue = CircularBuffer<Queued>()
    /// Requests (heads and malformed ones) in `queue`.
    var queuedRequests = 0
    /// More requests were pipelined than the limit: the rest were dropped, and the connection
    /// closes once the queued ones are answered.
    var queueOverflowed = false
    private var isPumping = false
    /// Graceful shutdown asked for this connection to close once the request in flight is done.
    var quiescing = false
    /// Body bytes of the request in flight last arrived then (the client body timeout).
    var lastBodyRead = NIODeadline.now()
    var bodyTimer: Scheduled<Void>?

    init(mode: ConnectionMode, proxy: ProxyContext, headDeadline: RequestHeadDeadline?) {
        self.mode = mode
        self.proxy = proxy
        self.headDeadline = headDeadline
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
        if queue.isEmpty, acceptsInput(context) {
            handle(part, context: context)
        } else {
            enqueue(.part(part))
        }
    }

    /// Whether the next request part can be handled now rather than queued.
    private func acceptsInput(_ context: ChannelHandlerContext) -> Bool {
        switch state {
        case .idle: return context.channel.isWritable   // output backed up: start no new request
        case .forwarding(_, let record, _): return !record.requestEnded
        case .discardingRequestBody, .awaitingConnectEnd, .closing: return true
        case .switched: return false
        }
    }

    /// Whether more bytes should be read from the client now.
    private func wantsInput(_ context: ChannelHandlerContext) -> Bool {
        switch state {
        case .idle: return context.channel.isWritable
        case .forwarding(let exchange, let record, _): return record.requestEnded || exchange.isWritable
        case .discardingRequestBody, .awaitingConnectEnd: return true
        case .switched, .closing: return false
        }
    }

    private func enqueue(_ item: Queued) {
        readsPaused = true
        guard !queueOverflowed else { return }
        switch item {
        case .part(.head), .malformed:
            guard queuedRequests < proxy.configuration.pipelinedRequestLimit else {
                queueOverflowed = true
                proxy.logger.notice("pipelined request limit reached; closing after the queued responses", metadata: [
                    "client": "\(context?.channel.remoteAddress.map { "\($0)" } ?? "?")",
                    "limit": "\(proxy.configuration.pipelinedRequestLimit)",
                ])
                return
            }
            queuedRequests += 1
        case .part:
            break
        }
        queue.append(item)
    }

    /// Serves what was queued as far as the state allows, then reads again if input is wanted.
    func pump(context: ChannelHandlerContext) {
        guard !isPumping else { return }   // a response finishing inside `handle`
        isPumping = true
        defer { isPumping = false }
        while !queue.isEmpty, acceptsInput(context) {
            switch queue.removeFirst() {
            case .part(let part):
                if case .head = part { queuedRequests -= 1 }
                handle(part, context: context)
            case .malformed(let error):
                queuedRequests -= 1
                handleProtocolError(error, context: context)
            }
        }
        guard queue.isEmpty else { return }
        if queueOverflowed, case .idle = state {
            state = .closing
            context.close(promise: nil)
        } else if wantsInput(context) {
            resumeReads()
        } else {
            readsPaused = true
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
        guard case .idle = state else {
            if case .closing = state { return }
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
            state = .awaitingConnectEnd(authority, record)
        case .origin(let pathAndQuery):
            serveOnboarding(head: head, pathAndQuery: pathAndQuery, record: record, context: context)
        case .absolute(let scheme, let authority, let pathAndQuery):
            let path = UpstreamURL.encodeInvalidCharacters(pathAndQuery)
            record.target = "\(scheme.rawValue)://\(authority.urlAuthority(scheme: scheme))\(path)"
            if authority.host == OnboardingSite.hostName {
                serveOnboarding(head: head, pathAndQuery: pathAndQuery, record: record, context: context)
            } else {
                forward(head: head, scheme: scheme, authority: authority, path: path, record: record, context: context)
            }
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
        switch state {
        case .forwarding(let exchange, _, _):
            lastBodyRead = .now()
            exchange.writeBody(buffer)
            if !exchange.isWritable { readsPaused = true }
        case .discardingRequestBody, .awaitingConnectEnd, .idle, .switched, .closing:
            break
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch state {
        case .forwarding(let exchange, var record, let progress):
            record.requestEnded = true
            state = .forwarding(exchange, record, progress)
            cancelBodyTimer()
            exchange.end()
        case .discardingRequestBody:
            becameIdle(context: context)
        case .awaitingConnectEnd(let authority, let record):
            state = .switched
            readsPaused = true   // until the tunnel's handlers are in place
            TunnelSwitch.handleConnect(authority: authority, requestID: record.requestID,
                                       started: record.started, context: context, proxy: proxy)
        case .idle, .switched, .closing:
            break
        }
    }

    /// The exchange is over and the connection stays: wait for the next request, serve queued ones.
    func becameIdle(context: ChannelHandlerContext) {
        state = .idle
        if queuedRequests == 0 {
            headDeadline?.awaitNextHead()   // a queued head is complete already
        }
        if quiescing, queue.isEmpty {
            state = .closing
            context.close(promise: nil)
            return
        }
        pump(context: context)
    }

    // MARK: Flow control and lifecycle

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if bodyTimer != nil {
            lastBodyRead = .now()   // the pause was the origin's doing, not the client's silence
        }
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Before the tunnel's handlers replace this one: a read held back here would be lost.
    func releaseHeldRead() {
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            switch state {
            case .forwarding(let exchange, _, _): exchange.resumeResponse()
            case .idle: pump(context: context)
            default: break
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelBodyTimer()
        if case .forwarding(let exchange, let record, _) = state {
            // The client is gone: stop the upstream transfer now.
            exchange.cancel()
            log(record, note: "client_closed")
        }
        state = .closing
        queue.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestHeadDeadline.Expired {
            guard case .idle = state, queue.isEmpty else { return }
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
            switch state {
            case .idle, .discardingRequestBody, .awaitingConnectEnd, .closing:
                // Also with requests queued, or a last response that never flushed: the client
                // reads nothing.
                state = .closing
                context.close(promise: nil)
            case .forwarding(let exchange, let record, _) where !context.channel.isWritable:
                // The origin is held back for a client that stopped reading: let both go.
                exchange.cancel()
                log(record, note: "aborted client_stalled")
                state = .closing
                context.close(promise: nil)
            case .forwarding, .switched:
                break   // a slow origin has its own timeouts
            }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Idle connections close now, busy ones when their response ends (finishResponse).
            quiescing = true
            if case .idle = state, queue.isEmpty {
                state = .closing
                context.close(promise: nil)
            }
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
        if queue.isEmpty, acceptsInput(context) {
            handleProtocolError(parserError, context: context)
        } else {
            enqueue(.malformed(parserError))
        }
    }
}
