import HTTPRules
import NIOCore
import NIOHTTP1

/// What the proxy answers to requests it will not take as they are (malformed, badly framed), and
/// the deadline for a request body that stops arriving.
extension ProxyHTTPHandler {
    /// How many `Host` fields a request has; counted without allocating, as it runs per request.
    static func hostFieldCount(_ headers: HTTPHeaders) -> Int {
        var count = 0
        for (name, _) in headers where name.utf8.count == 4 {
            if name.utf8.elementsEqual("host".utf8, by: { $0 | 0x20 == $1 }) { count += 1 }
        }
        return count
    }

    /// Request framing the proxy will not pass on (RFC 9112 §6.1): a transfer coding other than
    /// chunked alone would reach the origin stripped of its coding (501), and `Transfer-Encoding`
    /// in an HTTP/1.0 request means the framing cannot be trusted (400, and close).
    static func framingProblem(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String)? {
        let codings = head.headers[canonicalForm: "transfer-encoding"]
        guard !codings.isEmpty else { return nil }
        if head.version.major == 1 && head.version.minor == 0 {
            return (.badRequest, "Transfer-Encoding in an HTTP/1.0 request")
        }
        if codings.count != 1 || codings[0].lowercased() != "chunked" {
            return (.notImplemented, "transfer codings other than chunked are not supported")
        }
        return nil
    }

    /// Answers what the decoder rejected (400, or 431 for oversized headers) and closes: the
    /// decoder reads nothing more on this connection.
    func handleProtocolError(_ error: HTTPParserError, context: ChannelHandlerContext) {
        let (status, text) = LocalResponse.protocolError(error)
        let note = "malformed_request error=\(error)"
        switch machine.protocolError() {
        case .cancelAndAbort(let exchange, let record):
            exchange.cancel()
            cancelBodyTimer()
            log(record, note: "aborted " + note)
            context.close(promise: nil)
        case .cancelAndRespond(let exchange, let record):
            exchange.cancel()
            cancelBodyTimer()
            respondLocally(status: status, text: text, record: record, close: true, context: context, note: note)
        case .respond(let record):
            respondLocally(status: status, text: text, record: record, close: true, context: context, note: note)
        case .respondUnparsed:
            respondLocally(status: status, text: text, record: unparsedRequestRecord(), close: true, context: context,
                           note: note)
        case .close:
            context.close(promise: nil)
        }
    }

    /// The record of a request whose head never arrived whole.
    func unparsedRequestRecord() -> RequestRecord {
        RequestRecord(method: "-", target: "-", requestID: RequestID.generate(), keepAlive: false, started: .now(),
                      requestEnded: true)
    }

    // MARK: Client body timeout

    /// A request body that stops arriving for `clientIdleTimeout` ends the exchange (408), so a
    /// stalled client cannot hold an upstream connection until the origin gives up.
    func armBodyTimer(context: ChannelHandlerContext) {
        guard bodyTimer == nil else { return }
        let deadline = lastBodyRead + proxy.configuration.clientIdleTimeout
        bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.bodyTimerFired()
        }
    }

    func cancelBodyTimer() {
        bodyTimer?.cancel()
        bodyTimer = nil
    }

    private func bodyTimerFired() {
        bodyTimer = nil
        guard let context, let (exchange, record, progress) = machine.bodyStillArriving() else { return }
        let now = NIODeadline.now()
        if machine.readsPaused {
            lastBodyRead = now   // the origin is slow to take the body, not the client to send it
        }
        guard now - lastBodyRead >= proxy.configuration.clientIdleTimeout else {
            armBodyTimer(context: context)
            return
        }
        exchange.cancel()
        if case .streaming = progress {
            log(record, note: "aborted client_body_timeout")
            machine.close()
            context.close(promise: nil)
        } else {
            respondLocally(status: .requestTimeout, text: "request body not received in time", record: record,
                           close: true, context: context, note: "client_body_timeout")
        }
    }
}
