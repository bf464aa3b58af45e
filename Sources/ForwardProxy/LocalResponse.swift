import NIOCore
import NIOHTTP1

/// Responses passsage writes itself (errors, onboarding): always framed with Content-Length and
/// tagged with the request id.
enum LocalResponse {
    static func head(
        status: HTTPResponseStatus,
        contentLength: Int,
        requestID: String,
        close: Bool,
        headers extra: HTTPHeaders = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")])
    ) -> HTTPResponseHead {
        var headers = extra
        headers.replaceOrAdd(name: "Content-Length", value: String(contentLength))
        headers.replaceOrAdd(name: HeaderRules.requestIDHeader, value: requestID)
        if close { headers.replaceOrAdd(name: "Connection", value: "close") }
        return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    /// Head, body and end of a plain-text response.
    static func textParts(
        status: HTTPResponseStatus,
        text: String,
        requestID: String,
        close: Bool,
        allocator: ByteBufferAllocator
    ) -> [HTTPServerResponsePart] {
        let body = allocator.buffer(string: text)
        return [
            .head(head(status: status, contentLength: body.readableBytes, requestID: requestID, close: close)),
            .body(.byteBuffer(body)),
            .end(nil),
        ]
    }

    /// The body of an error the proxy reports itself: a short, stable cause and the request id;
    /// details stay in the log.
    static func errorText(_ cause: String, requestID: String) -> String {
        "\(cause)\nrequest id: \(requestID)\n"
    }

    /// The answer to a request the HTTP decoder rejected: 431 for oversized headers, 400 otherwise.
    static func protocolError(_ error: HTTPParserError) -> (HTTPResponseStatus, String) {
        switch error {
        case .headerOverflow:
            return (.requestHeaderFieldsTooLarge, "request header fields too large (limit 80 KiB)")
        case .invalidChunkSize:
            return (.badRequest, "malformed chunked request body")
        default:
            return (.badRequest, "malformed HTTP request")
        }
    }
}
