import Logging
import NIOCore
import NIOHTTP1
import Onboarding
import OriginConnections

/// Where the HTTP requests on a connection come from.
enum ConnectionMode {
    /// The proxy's own listener: absolute-form requests, CONNECT, and requests to the proxy itself.
    case forwardListener
    /// Inside a CONNECT tunnel: origin-form requests for `scheme://authority`.
    case tunnel(scheme: RequestScheme, authority: Authority)
}

/// Serves the HTTP requests of one client connection (or of one intercepted tunnel), one at a
/// time: forwards them upstream, answers `mitm.it` locally, and hands CONNECT to `TunnelSwitch`.
/// Pipelined requests wait here until the response before them ends. (NIO's
/// `HTTPServerPipelineHandler` would do that too, but it stops reading during every response, which
/// costs two `epoll_ctl` calls per request; this handler keeps reading until a request is
/// actually pipelined.)
final class ProxyHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler, OriginExchangeDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct RequestRecord {
        let method: HTTPMethod
        let target: String
        let requestID: String
        let keepAlive: Bool
        let started: NIODeadline
        var status: HTTPResponseStatus?
        var bodyBytes = 0
        var requestEnded = false
    }

    private enum State {
        case idle
        /// A request is being forwarded upstream.
        case forwarding(OriginExchange, RequestRecord, responseStarted: Bool)
        /// A local response was sent; the rest of the request body is read and dropped.
        case discardingRequestBody(RequestRecord, closeAfter: Bool)
        /// CONNECT head received; the switch happens on its `.end`.
        case awaitingConnectEnd(Authority, RequestRecord)
        /// The connection is being handed to the tunnel handlers.
        case switched
    }

    private let mode: ConnectionMode
    private let proxy: ProxyContext
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false
    /// Parts of requests pipelined behind the one in flight; reads stop while any wait.
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    private var isReplaying = false
    /// Graceful shutdown asked for this connection to close once the request in flight is done.
    private var quiescing = false

    init(mode: ConnectionMode, proxy: ProxyContext) {
        self.mode = mode
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !pipelined.isEmpty || currentRequestEnded {
            pipelined.append(part)
            readsPaused = true
            return
        }
        handle(part, context: context)
    }

    /// Whether the request in flight has been read whole, so further parts belong to the next one.
    private var currentRequestEnded: Bool {
        if case .forwarding(_, let record, _) = state { return record.requestEnded }
        return false
    }

    /// Serves pipelined requests once the one before them is done, then reads again.
    private func replayPipelined(context: ChannelHandlerContext) {
        guard !isReplaying else { return }   // a local response finishing inside `handle`
        isReplaying = true
        defer { isReplaying = false }
        while case .idle = state, !pipelined.isEmpty {
            while !pipelined.isEmpty, !currentRequestEnded, !isSwitched {
                handle(pipelined.removeFirst(), context: context)
            }
        }
        if pipelined.isEmpty { resumeReads() }
    }

    private var isSwitched: Bool {
        if case .switched = state { return true }
        return false
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
        let record = RequestRecord(
            method: head.method,
            target: describeTarget(head.uri),
            requestID: RequestID.resolve(from: head.headers),
            keepAlive: head.isKeepAlive,
            started: .now()
        )
        guard case .idle = state else {
            // The pipelining handler never delivers a second head early; be defensive anyway.
            respondLocally(status: .badRequest, text: "unexpected request\n", record: record, close: true, context: context)
            return
        }
        let target: ProxyRequestTarget
        do {
            target = try resolveTarget(head)
        } catch {
            respondLocally(status: .badRequest, text: "\(error)\n", record: record, close: true, context: context)
            return
        }
        switch target {
        case .authority(let authority):
            guard case .forwardListener = mode else {
                respondLocally(status: .methodNotAllowed, text: "CONNECT inside a tunnel is not supported\n",
                               record: record, close: true, context: context)
                return
            }
            state = .awaitingConnectEnd(authority, record)
        case .origin(let pathAndQuery):
            serveOnboarding(head: head, pathAndQuery: pathAndQuery, record: record, context: context)
        case .absolute(let scheme, let authority, let pathAndQuery):
            if authority.host == OnboardingSite.hostName {
                serveOnboarding(head: head, pathAndQuery: pathAndQuery, record: record, context: context)
            } else {
                forward(head: head, scheme: scheme, authority: authority, pathAndQuery: pathAndQuery,
                        record: record, context: context)
            }
        }
    }

    /// Maps the request line to a target, taking the tunnel's authority into account.
    private func resolveTarget(_ head: HTTPRequestHead) throws -> ProxyRequestTarget {
        let parsed = try ProxyRequestTarget.parse(method: head.method.rawValue, uri: head.uri)
        guard case .tunnel(let scheme, let authority) = mode else { return parsed }
        switch parsed {
        case .origin(let pathAndQuery), .absolute(_, _, let pathAndQuery):
            // Inside a tunnel the CONNECT authority decides where requests go.
            return .absolute(scheme: scheme, authority: authority, pathAndQuery: pathAndQuery)
        case .authority:
            return parsed
        }
    }

    private func describeTarget(_ uri: String) -> String {
        switch mode {
        case .forwardListener: return uri
        case .tunnel(let scheme, let authority):
            return uri.hasPrefix("/") ? "\(scheme.rawValue)://\(authority.urlAuthority(scheme: scheme))\(uri)" : uri
        }
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        switch state {
        case .forwarding(let exchange, _, _):
            exchange.writeBody(buffer)
            if !exchange.isWritable { readsPaused = true }
        case .discardingRequestBody, .awaitingConnectEnd, .idle, .switched:
            break
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch state {
        case .forwarding(let exchange, var record, let started):
            record.requestEnded = true
            state = .forwarding(exchange, record, responseStarted: started)
            exchange.end()
        case .discardingRequestBody(_, let closeAfter):
            state = .idle
            if closeAfter || quiescing { context.close(promise: nil) }
        case .awaitingConnectEnd(let authority, let record):
            state = .switched
            TunnelSwitch.handleConnect(authority: authority, requestID: record.requestID,
                                       started: record.started, context: context, proxy: proxy)
        case .idle, .switched:
            break
        }
    }

    // MARK: Forwarding

    private func forward(
        head: HTTPRequestHead,
        scheme: RequestScheme,
        authority: Authority,
        pathAndQuery: String,
        record: RequestRecord,
        context: ChannelHandlerContext
    ) {
        let hostHeader = authority.urlAuthority(scheme: scheme)
        var headers = HeaderRules.upstreamRequestHeaders(from: head.headers, hostHeader: hostHeader,
                                                         requestID: record.requestID)
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            // We stream the body as it comes, so answer the client's expectation ourselves.
            headers.remove(name: "expect")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                                  promise: nil)
        }
        let bodyLength = Self.requestBodyLength(head.headers)
        switch bodyLength {
        case .some(.some(let length)):
            headers.replaceOrAdd(name: "Content-Length", value: String(length))
        case .some(.none):
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        case .none:
            headers.remove(name: "content-length")
            // Methods that normally carry a body say explicitly that this one has none.
            if head.method == .POST || head.method == .PUT || head.method == .PATCH {
                headers.add(name: "Content-Length", value: "0")
            }
        }
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method,
                                           uri: UpstreamURL.encodeInvalidCharacters(pathAndQuery), headers: headers)
        // The exchange never calls back before startExchange returns.
        let exchange = proxy.originClient.startExchange(
            on: context.eventLoop,
            origin: Origin(host: authority.host, port: authority.port, usesTLS: scheme == .https),
            head: upstreamHead,
            hasBody: bodyLength != nil,
            delegate: self
        )
        state = .forwarding(exchange, record, responseStarted: false)
    }

    /// The request body length: nil when there is no body, `.some(nil)` when it is chunked.
    private static func requestBodyLength(_ headers: HTTPHeaders) -> Int64?? {
        if headers[canonicalForm: "transfer-encoding"].contains(where: { $0.lowercased() == "chunked" }) {
            return .some(nil)
        }
        if let text = headers.first(name: "content-length"), let length = Int64(text), length > 0 {
            return .some(length)
        }
        return nil
    }

    // MARK: OriginExchangeDelegate

    func originExchange(_ exchange: OriginExchange, didReceiveHead head: HTTPResponseHead) {
        guard let context, case .forwarding(let current, var record, _) = state, current === exchange else { return }
        record.status = head.status
        state = .forwarding(exchange, record, responseStarted: true)
        let headers = HeaderRules.clientResponseHeaders(from: head.headers, requestID: record.requestID)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: head.status, headers: headers))),
                      promise: nil)
    }

    func originExchange(_ exchange: OriginExchange, didReceiveBodyPart buffer: ByteBuffer) {
        guard let context, case .forwarding(let current, var record, let started) = state, current === exchange else {
            return
        }
        record.bodyBytes += buffer.readableBytes
        state = .forwarding(exchange, record, responseStarted: started)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        // A slow client holds the origin back: TCP backpressure end to end, memory bounded.
        if !context.channel.isWritable { exchange.pauseResponse() }
    }

    /// One flush per burst of upstream reads: one TLS record batch and one write syscall.
    func originExchangeDidCompleteRead(_ exchange: OriginExchange) {
        guard let context, case .forwarding(let current, _, _) = state, current === exchange else { return }
        context.flush()
    }

    func originExchangeDidFinish(_ exchange: OriginExchange) {
        guard let context, case .forwarding(let current, let record, _) = state, current === exchange else { return }
        finishResponse(record: record, close: !record.keepAlive || !record.requestEnded, context: context)
    }

    func originExchangeBecameWritable(_ exchange: OriginExchange) {
        guard case .forwarding(let current, _, _) = state, current === exchange else { return }
        resumeReads()
    }

    func originExchange(_ exchange: OriginExchange, didFail error: any Error) {
        guard let context, case .forwarding(let current, let record, let started) = state, current === exchange else {
            return
        }
        if started {
            // Headers are out: the only honest signal left is to cut the connection, so a
            // truncated body can never look complete.
            proxy.logger.warning("upstream failed mid-response", metadata: [
                "request_id": "\(record.requestID)", "url": "\(record.target)", "error": "\(error)",
            ])
            log(record, note: "aborted")
            state = .idle
            context.close(promise: nil)
            return
        }
        let failure = UpstreamFailure.classify(error)
        respondLocally(status: failure.status, text: failure.message + "\n", record: record,
                       close: !record.keepAlive || !record.requestEnded, context: context)
    }

    // MARK: Local responses

    private func serveOnboarding(head: HTTPRequestHead, pathAndQuery: String, record: RequestRecord,
                                 context: ChannelHandlerContext) {
        let proxyURL = proxy.publicProxyURL(
            hostHeader: isAddressedToProxy(head) ? head.headers.first(name: "host") : nil,
            localAddress: context.channel.localAddress
        )
        let response = proxy.onboarding.respond(method: head.method.rawValue, pathAndQuery: pathAndQuery,
                                                proxyURL: proxyURL)
        var headers = HTTPHeaders([("Content-Type", response.contentType), ("Cache-Control", "no-store")])
        headers.add(contentsOf: response.extraHeaders)
        var body = context.channel.allocator.buffer(capacity: response.body.count)
        body.writeBytes(response.body)
        respondLocally(status: HTTPResponseStatus(statusCode: response.status), headers: headers, body: body,
                       record: record, close: !record.keepAlive, context: context)
    }

    /// An origin-form request on the proxy's own listener is addressed to the proxy itself, so its
    /// Host header is the proxy's address as the client knows it.
    private func isAddressedToProxy(_ head: HTTPRequestHead) -> Bool {
        if case .forwardListener = mode { return head.uri.hasPrefix("/") }
        return false
    }

    private func respondLocally(status: HTTPResponseStatus, text: String, record: RequestRecord, close: Bool,
                                context: ChannelHandlerContext) {
        respondLocally(status: status, headers: HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")]),
                       body: context.channel.allocator.buffer(string: text), record: record, close: close,
                       context: context)
    }

    private func respondLocally(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer,
                                record: RequestRecord, close: Bool, context: ChannelHandlerContext) {
        var record = record
        record.status = status
        let head = LocalResponse.head(status: status, contentLength: body.readableBytes, requestID: record.requestID,
                                      close: close, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if record.method != .HEAD {
            record.bodyBytes = body.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if record.requestEnded {
            finishResponse(record: record, close: close, context: context)
        } else {
            // The request body is still arriving; finish the response, then drop the rest.
            let channel = context.channel
            let flushed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            log(record)
            if close {
                state = .idle
                flushed.whenComplete { _ in channel.close(promise: nil) }
            } else {
                state = .discardingRequestBody(record, closeAfter: false)
            }
        }
    }

    private func finishResponse(record: RequestRecord, close: Bool, context: ChannelHandlerContext) {
        state = .idle
        log(record)
        let flushed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close || quiescing {
            pipelined.removeAll()
            let channel = context.channel
            flushed.whenComplete { _ in channel.close(promise: nil) }
            return
        }
        if pipelined.isEmpty {
            resumeReads()
        } else {
            replayPipelined(context: context)
        }
    }

    private func log(_ record: RequestRecord, note: String? = nil) {
        let milliseconds = Double((NIODeadline.now() - record.started).nanoseconds) / 1_000_000
        var line = "\(record.method.rawValue) \(record.target) \(record.status?.code ?? 0) bytes=\(record.bodyBytes)"
        line += " duration_ms=\((milliseconds * 10).rounded() / 10) request_id=\(record.requestID)"
        if let note { line += " " + note }
        proxy.logger.info("\(line)")
    }

    // MARK: Flow control and lifecycle

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .forwarding(let exchange, _, _) = state {
            exchange.resumeResponse()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let exchange, let record, _) = state {
            // The client is gone: stop the upstream transfer now.
            exchange.cancel()
            log(record, note: "client_closed")
        }
        state = .idle
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if case .idle = state { context.close(promise: nil) }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Idle connections close now, busy ones when their response ends (finishResponse).
            quiescing = true
            if case .idle = state { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        proxy.logger.debug("client connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
