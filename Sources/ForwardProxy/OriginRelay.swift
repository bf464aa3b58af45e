import HTTPRules
import NIOCore
import NIOHTTP1
import OriginConnections

/// The origin relay: forwards a request to its origin over the pooled `OriginClient`, with the
/// headers `HeaderRules` allows, streaming the request body as it arrives.
struct OriginRelay {
    let client: OriginClient

    struct Started {
        let exchange: OriginExchange
        /// The request has a body, so the body timer runs.
        let hasBody: Bool
        /// The client asked `Expect: 100-continue`: we answer it ourselves, since the body is
        /// streamed as it comes.
        let answerContinue: Bool
    }

    /// Starts the exchange; it never calls `delegate` before this returns.
    func start(head: HTTPRequestHead, scheme: RequestScheme, authority: Authority, path: String, requestID: String,
               eventLoop: any EventLoop, delegate: any OriginExchangeDelegate) -> Started {
        var headers = HeaderRules.upstreamRequestHeaders(from: head.headers, hostHeader: authority.urlAuthority(scheme: scheme),
                                                         requestID: requestID)
        let answerContinue = head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" })
        if answerContinue { headers.remove(name: "expect") }
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
        let exchange = client.startExchange(
            on: eventLoop,
            origin: Origin(host: authority.host, port: authority.port, usesTLS: scheme == .https),
            head: upstreamHead,
            hasBody: bodyLength != nil,
            delegate: delegate
        )
        return Started(exchange: exchange, hasBody: bodyLength != nil, answerContinue: answerContinue)
    }

    /// The request body length: nil when there is no body, `.some(nil)` when it is chunked.
    static func requestBodyLength(_ headers: HTTPHeaders) -> Int64?? {
        if headers[canonicalForm: "transfer-encoding"].contains(where: { $0.lowercased() == "chunked" }) {
            return .some(nil)
        }
        if let text = headers.first(name: "content-length"), let length = Int64(text), length > 0 {
            return .some(length)
        }
        return nil
    }
}

extension OriginExchange: ResponseExchange {
    public var acceptsRequestBody: Bool { isWritable }
}
