import AsyncHTTPClient
import DownloadEngine
import DownloadPlanning
import Logging
import NIOCore
import NIOHTTP1

/// Answers one request: `/healthz`, `GET` and `HEAD` of `/<absolute upstream URL>`, 405 for
/// the rest. The request target is taken raw: `//` is never collapsed, nothing is decoded.
struct RequestHandler: Sendable {
    let configuration: Xs3leratorConfiguration
    let fetcher: UpstreamFetcher
    let budget: WorkerBudget
    let logger: Logger

    enum Outcome {
        /// The response was written in full.
        case complete
        /// The connection must be closed (aborted or unusable).
        case closeConnection
    }

    func respond(to head: HTTPRequestHead, writer: ResponseWriter) async -> Outcome {
        do {
            switch head.method {
            case .GET where head.uri == "/healthz", .HEAD where head.uri == "/healthz":
                try await writer.text(.ok, "ok")
                return .complete
            case .GET, .HEAD:
                guard let url = Self.upstreamURL(head.uri) else {
                    try await writer.text(.badRequest, "bad request: expected /<absolute http or https URL>, got \(head.uri.prefix(200))\n")
                    return .complete
                }
                let request = upstreamRequest(url: url, head: head)
                return head.method == .HEAD ? try await relayHead(request, writer: writer) : try await get(request, head: head, writer: writer)
            default:
                try await writer.text(.methodNotAllowed, "only GET and HEAD are supported\n", headers: ["Allow": "GET, HEAD"])
                return .complete
            }
        } catch {
            // Writing to the client failed: it went away.
            writer.abort()
            return .closeConnection
        }
    }

    /// The upstream URL in a request target `/<url>`, or nil if it is not an absolute http(s) URL.
    static func upstreamURL(_ target: String) -> String? {
        guard target.hasPrefix("/") else { return nil }
        let url = String(target.dropFirst())
        return RedirectLocation.split(url) == nil ? nil : url
    }

    private func upstreamRequest(url: String, head: HTTPRequestHead) -> UpstreamRequest {
        let contract = ContractHeaders(head.headers)
        let readTimeout: Duration? = contract.readTimeout ?? configuration.upstreamReadTimeout
        return UpstreamRequest(url: url, method: head.method, headers: Xs3HeaderRules.upstreamRequestHeaders(from: head.headers),
                               tlsSkipVerify: configuration.upstreamTLSSkipVerify || contract.tlsSkipVerify,
                               connectTimeout: contract.connectTimeout ?? configuration.upstreamConnectTimeout,
                               readTimeout: readTimeout, followRedirects: contract.followRedirects)
    }

    // MARK: HEAD

    private func relayHead(_ request: UpstreamRequest, writer: ResponseWriter) async throws -> Outcome {
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(request)
        } catch let error as UpstreamError {
            return try await fail(error, writer: writer)
        }
        var headers = Xs3HeaderRules.clientResponseHeaders(from: response.headers, keepFraming: true)
        addFinalURL(response, to: &headers)
        try await writer.head(response.status, headers)
        try await writer.end()
        return .complete
    }

    // MARK: GET

    private func get(_ request: UpstreamRequest, head: HTTPRequestHead, writer: ResponseWriter) async throws -> Outcome {
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(request)
        } catch let error as UpstreamError {
            return try await fail(error, writer: writer)
        }
        let status = response.status.code
        let size = response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        let chunked = response.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
        if status == 200, let size, size >= 0, !chunked {
            return try await download(response, size: size, request: request, head: head, writer: writer)
        }
        if (300..<400).contains(status) {
            // Redirects (not followed) and 304s: headers only.
            var headers = Xs3HeaderRules.clientResponseHeaders(from: response.headers)
            headers.replaceOrAdd(name: "Content-Length", value: "0")
            addFinalURL(response, to: &headers)
            try await writer.head(response.status, headers)
            try await writer.end()
            return .complete
        }
        // Errors, other 2xx, and bodies of unknown length are relayed as they come.
        var headers = Xs3HeaderRules.clientResponseHeaders(from: response.headers, keepFraming: !chunked && size != nil)
        headers.remove(name: "Content-Range")
        headers.remove(name: "Accept-Ranges")
        addFinalURL(response, to: &headers)
        try await writer.head(response.status, headers)
        let outcome = try await relay(response.body, writer: writer, url: response.url)
        // Without a length, an HTTP/1.0 client learns the end of the body from the close.
        let delimitedByClose = head.version.minor == 0 && headers.first(name: "Content-Length") == nil
        return delimitedByClose ? .closeConnection : outcome
    }

    private func download(_ response: UpstreamResponse, size: Int64, request: UpstreamRequest, head: HTTPRequestHead,
                          writer: ResponseWriter) async throws -> Outcome {
        var headers = Xs3HeaderRules.clientResponseHeaders(from: response.headers)
        headers.replaceOrAdd(name: "Accept-Ranges", value: "bytes")
        addFinalURL(response, to: &headers)
        let span: ClosedRange<Int64>
        let status: HTTPResponseStatus
        switch RangeRequest(headerValue: head.headers.first(name: "Range")).resolve(size: size) {
        case .empty:
            headers.replaceOrAdd(name: "Content-Length", value: "0")
            try await writer.head(.ok, headers)
            try await writer.end()
            return .complete
        case .unsatisfiable:
            headers.replaceOrAdd(name: "Content-Range", value: "bytes */\(size)")
            try await writer.text(.rangeNotSatisfiable, "range not satisfiable\n", headers: headers)
            return .complete
        case .full(let whole):
            (span, status) = (whole, .ok)
        case .partial(let part):
            (span, status) = (part, .partialContent)
            headers.replaceOrAdd(name: "Content-Range", value: "bytes \(part.lowerBound)-\(part.upperBound)/\(size)")
        }
        // Chunk files must be possible before a 200 is promised.
        do {
            try TemporaryChunkFile(directory: configuration.download.temporaryDirectory).close()
        } catch {
            try await writer.text(.internalServerError, "internal error: temporary directory unavailable: \(error)\n")
            return .complete
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(span.upperBound - span.lowerBound + 1))
        headers.replaceOrAdd(name: "X-Xs3lerator-Full-Size", value: String(size))
        let advertised = response.headers.first(name: "Accept-Ranges")?.lowercased()
        let download = ChunkedDownload(size: size, span: span, initialHeaders: response.headers,
                                       request: UpstreamRequest(url: response.url, method: .GET, headers: request.headers,
                                                                tlsSkipVerify: request.tlsSkipVerify,
                                                                connectTimeout: request.connectTimeout, readTimeout: request.readTimeout),
                                       fetcher: fetcher, settings: configuration.download, budget: budget,
                                       now: ChunkedDownload.now())
        download.start(initial: response.body, parallel: advertised != "none")
        defer { download.finish() }
        try await writer.head(status, headers)
        do {
            for try await piece in download.body() {
                try await writer.body(piece)
            }
        } catch {
            logger.warning("download failed after the response started; aborting the connection",
                           metadata: ["url": "\(response.url)", "error": "\(error)"])
            writer.abort()
            return .closeConnection
        }
        try await writer.end()
        return .complete
    }

    /// Streams an upstream body as it comes (error bodies, unknown lengths).
    private func relay(_ body: HTTPClientResponse.Body, writer: ResponseWriter, url: String) async throws -> Outcome {
        do {
            for try await buffer in body {
                try await writer.body(buffer)
            }
        } catch {
            logger.warning("upstream body failed; aborting the connection", metadata: ["url": "\(url)", "error": "\(error)"])
            writer.abort()
            return .closeConnection
        }
        try await writer.end()
        return .complete
    }

    private func fail(_ error: UpstreamError, writer: ResponseWriter) async throws -> Outcome {
        let prefix = error.status == .gatewayTimeout ? "upstream timeout" : "upstream error"
        try await writer.text(error.status, "\(prefix): \(error.kind.rawValue): \(error.url): \(error.message)\n")
        return .complete
    }

    private func addFinalURL(_ response: UpstreamResponse, to headers: inout HTTPHeaders) {
        if response.redirects > 0 { headers.replaceOrAdd(name: "X-Xs3lerator-Final-Url", value: response.url) }
    }
}
