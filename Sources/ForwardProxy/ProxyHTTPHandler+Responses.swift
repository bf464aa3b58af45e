import HTTPRules
import Logging
import NIOCore
import NIOHTTP1
import Onboarding
import OriginConnections

/// Performing a request's response plan: local answers, the origin relay, lookups and the
/// exchanges sources prepare, relaying their responses, and the responses passsage writes itself.
extension ProxyHTTPHandler: ResponseExchangeDelegate, OriginExchangeDelegate {
    // MARK: Plans

    /// Asks the response sources for `request` and performs their plan.
    func serve(_ request: SourceRequest, record: RequestRecord, context: ChannelHandlerContext) {
        perform(proxy.sources.plan(for: request, eventLoop: context.eventLoop), for: request, record: record,
                context: context)
    }

    func perform(_ plan: ResponsePlan, for request: SourceRequest, record: RequestRecord, context: ChannelHandlerContext) {
        switch plan {
        case .local(let reply):
            let headers = reply.replaysStoredResponse
                ? HeaderRules.clientResponseHeaders(from: reply.headers, requestID: record.requestID) : reply.headers
            respondLocally(status: reply.status, headers: headers, body: reply.body, record: record,
                           close: !record.keepAlive, context: context, headLength: reply.headLength)
        case .relay, .observedRelay:
            guard case .url(let scheme, let authority, let path) = request.target else {
                // The local site takes every request addressed to the proxy itself.
                respondLocally(status: .notFound, text: "not found", record: record, close: !record.keepAlive,
                               context: context)
                return
            }
            let started = OriginRelay(client: proxy.originClient).start(
                head: request.head, scheme: scheme, authority: authority, path: path, requestID: record.requestID,
                eventLoop: context.eventLoop, delegate: self)
            if started.answerContinue {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: .continue))),
                                      promise: nil)
            }
            startedExchange(started.exchange, hasBody: started.hasBody, record: record, context: context)
            if case .observedRelay(let observer) = plan { relayObserver = observer }
        case .pending(let decision):
            // Reads stay held (the machine queues whatever arrives) until the plan is known.
            let lookup = machine.startLookup(record)
            decision.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
                lookupCompleted(lookup, result: result, request: request)
            }
        case .exchange(let prepared):
            let exchange = prepared.start(delegate: self)
            startedExchange(exchange, hasBody: OriginRelay.requestBodyLength(request.head.headers) != nil, record: record,
                            context: context)
        }
    }

    private func startedExchange(_ exchange: any ResponseExchange, hasBody: Bool, record: RequestRecord,
                                 context: ChannelHandlerContext) {
        relayObserver = nil
        machine.startForwarding(exchange, record: record)
        if hasBody, !record.requestEnded {
            lastBodyRead = .now()
            armBodyTimer(context: context)
        }
    }

    private func lookupCompleted(_ lookup: Machine.LookupID, result: Result<ResponsePlan, any Error>,
                                 request: SourceRequest) {
        guard let context, let record = machine.lookupResolved(lookup) else {
            // The client left (or the connection closed) while the lookup ran.
            if case .success(.exchange(let prepared)) = result { prepared.discard() }
            return
        }
        let plan: ResponsePlan
        switch result {
        case .success(let decided):
            plan = decided
        case .failure(let error):
            // A source that cannot decide must not take the request down with it: relay it.
            proxy.logger.warning("response source failed; relaying the request", metadata: [
                "request_id": "\(record.requestID)", "error": "\(error)",
            ])
            plan = .relay
        }
        perform(plan, for: request, record: record, context: context)
        pump(context: context)
    }

    // MARK: ResponseExchangeDelegate

    func exchange(_ exchange: any ResponseExchange, didReceiveHead head: HTTPResponseHead) {
        if let observer = relayObserver, machine.isInFlight(exchange) {
            relayObserver = nil
            observer.responded(status: head.status, headers: head.headers)
        }
        machine.originHead(exchange, status: head.status) { record in
            HTTPResponseHead(version: .http1_1, status: head.status,
                             headers: HeaderRules.clientResponseHeaders(from: head.headers, requestID: record.requestID))
        }
    }

    func exchange(_ exchange: any ResponseExchange, didReceiveBodyPart buffer: ByteBuffer) {
        guard let context, let pendingHead = machine.originBody(exchange, bytes: buffer.readableBytes) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        // A slow client holds the origin back: TCP backpressure end to end, memory bounded.
        if !context.channel.isWritable { exchange.pauseResponse() }
    }

    /// One flush per burst of upstream reads: one TLS record batch and one write syscall.
    func exchangeDidCompleteRead(_ exchange: any ResponseExchange) {
        guard let context, let pendingHead = machine.originReadComplete(exchange) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        context.flush()
    }

    func exchangeDidFinish(_ exchange: any ResponseExchange) {
        guard let context, let (pendingHead, record) = machine.originFinished(exchange) else { return }
        if let head = pendingHead { context.write(wrapOutboundOut(.head(head)), promise: nil) }
        cancelBodyTimer()
        finishResponse(record: record, close: !record.keepAlive || !record.requestEnded, context: context)
    }

    func exchangeBecameWritable(_ exchange: any ResponseExchange) {
        guard let context, machine.isInFlight(exchange) else { return }
        pump(context: context)
    }

    func exchange(_ exchange: any ResponseExchange, didFail error: any Error) {
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

    // MARK: OriginExchangeDelegate (the relay's exchanges report here)

    func originExchange(_ exchange: OriginExchange, didReceiveHead head: HTTPResponseHead) {
        self.exchange(exchange, didReceiveHead: head)
    }

    func originExchange(_ exchange: OriginExchange, didReceiveBodyPart buffer: ByteBuffer) {
        self.exchange(exchange, didReceiveBodyPart: buffer)
    }

    func originExchangeDidCompleteRead(_ exchange: OriginExchange) { exchangeDidCompleteRead(exchange) }

    func originExchangeDidFinish(_ exchange: OriginExchange) { exchangeDidFinish(exchange) }

    func originExchangeBecameWritable(_ exchange: OriginExchange) { exchangeBecameWritable(exchange) }

    func originExchange(_ exchange: OriginExchange, didFail error: any Error) {
        self.exchange(exchange, didFail: error)
    }

    // MARK: Local responses

    /// An error passsage reports itself: a short cause and the request id (`LocalResponse.errorText`).
    func respondLocally(status: HTTPResponseStatus, text: String, record: RequestRecord, close: Bool,
                        context: ChannelHandlerContext, note: String? = nil) {
        respondLocally(status: status, headers: HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")]),
                       body: context.channel.allocator.buffer(string: LocalResponse.errorText(text, requestID: record.requestID)),
                       record: record, close: close, context: context, note: note)
    }

    /// `headLength`: for a HEAD, the Content-Length a GET would get (bug 13: not the empty body's 0).
    func respondLocally(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer,
                        record: RequestRecord, close: Bool, context: ChannelHandlerContext, note: String? = nil,
                        headLength: Int? = nil) {
        var record = record
        record.status = status
        let bodiless = record.method == "HEAD" || status == .notModified
        let length = bodiless ? headLength ?? body.readableBytes : body.readableBytes
        let head = LocalResponse.head(status: status, contentLength: length, requestID: record.requestID,
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
