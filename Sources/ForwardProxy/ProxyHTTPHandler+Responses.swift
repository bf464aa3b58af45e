import HTTPRules
import Logging
import NIOCore
import NIOHTTP1
import Onboarding
import OriginConnections

/// Forwarding to the origin, relaying its response, and the responses passsage writes itself.
extension ProxyHTTPHandler: OriginExchangeDelegate {
    // MARK: Forwarding

    func forward(
        head: HTTPRequestHead,
        scheme: RequestScheme,
        authority: Authority,
        path: String,
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
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: path, headers: headers)
        // The exchange never calls back before startExchange returns.
        let exchange = proxy.originClient.startExchange(
            on: context.eventLoop,
            origin: Origin(host: authority.host, port: authority.port, usesTLS: scheme == .https),
            head: upstreamHead,
            hasBody: bodyLength != nil,
            delegate: self
        )
        machine.startForwarding(exchange, record: record)
        if bodyLength != nil, !record.requestEnded {
            lastBodyRead = .now()
            armBodyTimer(context: context)
        }
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
        machine.originHead(exchange, status: head.status) { record in
            HTTPResponseHead(version: .http1_1, status: head.status,
                             headers: HeaderRules.clientResponseHeaders(from: head.headers, requestID: record.requestID))
        }
    }

    func originExchange(_ exchange: OriginExchange, didReceiveBodyPart buffer: ByteBuffer) {
        guard let context, let pendingHead = machine.originBody(exchange, bytes: buffer.readableBytes) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        // A slow client holds the origin back: TCP backpressure end to end, memory bounded.
        if !context.channel.isWritable { exchange.pauseResponse() }
    }

    /// One flush per burst of upstream reads: one TLS record batch and one write syscall.
    func originExchangeDidCompleteRead(_ exchange: OriginExchange) {
        guard let context, let pendingHead = machine.originReadComplete(exchange) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        context.flush()
    }

    func originExchangeDidFinish(_ exchange: OriginExchange) {
        guard let context, let (pendingHead, record) = machine.originFinished(exchange) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        cancelBodyTimer()
        finishResponse(record: record, close: !record.keepAlive || !record.requestEnded, context: context)
    }

    func originExchangeBecameWritable(_ exchange: OriginExchange) {
        guard let context, machine.isInFlight(exchange) else { return }
        pump(context: context)
    }

    func originExchange(_ exchange: OriginExchange, didFail error: any Error) {
        guard let context, let action = machine.originFailed(exchange) else { return }
        cancelBodyTimer()
        let failure = UpstreamFailure.classify(error)
        switch action {
        case .abort(let record):
            // Bytes reached the client: the only honest signal left is to cut the connection, so a
            // truncated body can never look complete.
            log(record, note: "aborted cause=\"\(failure.detail)\"")
            context.close(promise: nil)
        case .respond(let record):
            respondLocally(status: failure.status, text: failure.message, record: record,
                           close: !record.keepAlive || !record.requestEnded, context: context,
                           note: "cause=\"\(failure.detail)\"")
        }
    }

    // MARK: Local responses

    func serveOnboarding(head: HTTPRequestHead, pathAndQuery: String, record: RequestRecord,
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

    /// An error passsage reports itself: a short cause and the request id (`LocalResponse.errorText`).
    func respondLocally(status: HTTPResponseStatus, text: String, record: RequestRecord, close: Bool,
                        context: ChannelHandlerContext, note: String? = nil) {
        respondLocally(status: status, headers: HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")]),
                       body: context.channel.allocator.buffer(string: LocalResponse.errorText(text, requestID: record.requestID)),
                       record: record, close: close, context: context, note: note)
    }

    func respondLocally(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer,
                        record: RequestRecord, close: Bool, context: ChannelHandlerContext, note: String? = nil) {
        var record = record
        record.status = status
        let head = LocalResponse.head(status: status, contentLength: body.readableBytes, requestID: record.requestID,
                                      close: close, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if record.method != "HEAD" {
            record.bodyBytes = body.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        switch machine.localResponseWritten(record, close: close) {
        case .finish:
            finishResponse(record: record, close: close, context: context, note: note)
        case .closeAfterFlush:
            // The request body is still arriving: finish the response and close, reading no more.
            log(record, note: note)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        case .discardBody:
            // The request body is still arriving: finish the response, then drop the rest.
            log(record, note: note)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func finishResponse(record: RequestRecord, close: Bool, context: ChannelHandlerContext, note: String? = nil) {
        log(record, note: note)
        let flushed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        switch machine.responseFinished(close: close) {
        case .closeAfterFlush:
            let channel = context.channel
            flushed.whenComplete { _ in channel.close(promise: nil) }
        case .idle(let action):
            perform(action, context: context)
        }
    }

    /// One access-log line per request: method, URL, status, body bytes sent, duration, request id.
    func log(_ record: RequestRecord, note: String? = nil) {
        let milliseconds = Double((NIODeadline.now() - record.started).nanoseconds) / 1_000_000
        var line = "\(record.method) \(record.target) \(record.status?.code ?? 0) bytes=\(record.bodyBytes)"
        line += " duration_ms=\((milliseconds * 10).rounded() / 10) request_id=\(record.requestID)"
        if let note { line += " " + note }
        proxy.logger.info("\(line)")
    }
}

extension OriginExchange: InFlightExchange {
    var acceptsRequestBody: Bool { isWritable }
}
