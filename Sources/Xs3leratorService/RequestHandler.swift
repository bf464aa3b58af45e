import CachePolicy
import ChunkManifest
import DataPlane
import DownloadPlanning
import HTTPRules
import Logging
import NIOCore
import NIOHTTP1
import StorageCore

/// Answers one request: `/healthz` and `/metrics` (always open), then, authenticated when a
/// token is configured, `GET`/`HEAD /<absolute upstream URL>` through the data plane and `POST`
/// manifest aliases. It only translates: contract headers into a `DataPlaneRequest`, the
/// `DataPlaneResponse` onto the connection. The request target is taken raw: `//` is never
/// collapsed, nothing is decoded.
struct RequestHandler: Sendable {
    let configuration: Xs3leratorConfiguration
    let dataPlane: DataPlane
    let logger: Logger

    enum Outcome {
        /// The response was written in full.
        case complete
        /// The connection must be closed (aborted or unusable).
        case closeConnection
    }

    func respond(to head: HTTPRequestHead, writer: ResponseWriter) async -> Outcome {
        let started = ContinuousClock.now
        let requestID = RequestID.resolve(from: head.headers)
        var log = AccessLog(method: head.method, target: head.uri, requestID: requestID)
        let outcome: Outcome
        do {
            let response = route(head, log: &log)
            outcome = try await write(await response(), to: writer, log: &log)
        } catch {
            // Writing to the client failed: it went away.
            writer.abort()
            log.aborted = true
            outcome = .closeConnection
        }
        log.finish(started: started, logger: logger)
        return outcome
    }

    /// What to answer, as a deferred call so routing stays synchronous.
    private func route(_ head: HTTPRequestHead, log: inout AccessLog) -> @Sendable () async -> DataPlaneResponse {
        let path = head.uri
        if path == "/healthz", head.method == .GET || head.method == .HEAD {
            return { Self.text(.ok, "ok") }
        }
        if path == "/metrics", head.method == .GET {
            let metrics = dataPlane.metrics
            return {
                DataPlaneResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                                  body: ByteStream(buffers: [ByteBuffer(bytes: metrics.render())]))
            }
        }
        if DataPlaneHeaders.hasLooped(head.headers) {
            return { Self.text(.loopDetected, "loop detected: this request came from xs3lerator itself\n") }
        }
        let authenticated: Bool
        if let token = configuration.authToken {
            guard let given = head.headers.first(name: "X-Xs3lerator-Auth"), Self.constantTimeEqual(given, token) else {
                return { Self.text(.unauthorized, "unauthorized: missing or wrong X-Xs3lerator-Auth\n", headers: ["WWW-Authenticate": "X-Xs3lerator-Auth"]) }
            }
            authenticated = true
        } else {
            authenticated = false
        }
        let contract = ContractHeaders(head.headers)
        let dataPlane = self.dataPlane
        switch head.method {
        case .GET, .HEAD:
            guard let url = Self.upstreamURL(path) else {
                return { Self.text(.badRequest, "bad request: expected /<absolute http or https URL>, got \(path.prefix(200))\n") }
            }
            log.target = Self.withoutQuery(url)
            log.key = contract.cacheKey
            var request = DataPlaneRequest(
                url: url, method: head.method, headers: head.headers, range: head.headers.first(name: "Range"),
                cacheKey: contract.cacheKey, cacheSkip: contract.cacheSkip,
                manifest: contract.manifest.flatMap { try? ManifestCodec.decodeBase64($0) },
                ifNoneMatch: contract.ifNoneMatch, ifModifiedSince: contract.ifModifiedSince,
                staleIfError: contract.staleIfError, backgroundRevalidate: contract.backgroundRevalidate,
                // Turning verification off is only for callers who proved who they are.
                tlsSkipVerify: authenticated && contract.tlsSkipVerify, followRedirects: contract.followRedirects,
                connectTimeout: contract.connectTimeout, readTimeout: contract.readTimeout)
            request.cacheOnly = contract.cacheOnly
            request.unvariedKey = contract.unvariedKey
            // Callers that write their own fields beside the manifest match them by this tag.
            request.tagsFills = true
            if contract.sharedCache {
                let requestHeaders = head.headers
                request.storeFields = { status, headers in
                    Storability.refusal(method: "GET", requestHeaders: requestHeaders, status: Int(status.code),
                                        responseHeaders: headers) == nil ? StoreDirective(fields: [:]) : nil
                }
            }
            let prepared = request
            return { await dataPlane.serve(prepared) }
        case .POST:
            guard let source = contract.linkManifestSource, let target = contract.linkManifestTarget else {
                return { Self.text(.badRequest, "bad request: POST needs X-Xs3lerator-Link-Manifest-Source and -Target\n") }
            }
            log.key = target
            return { await dataPlane.linkManifest(source: source, target: target) }
        default:
            return { Self.text(.methodNotAllowed, "only GET, HEAD and POST are supported\n", headers: ["Allow": "GET, HEAD, POST"]) }
        }
    }

    private func write(_ response: DataPlaneResponse, to writer: ResponseWriter, log: inout AccessLog) async throws -> Outcome {
        log.status = response.status.code
        log.cacheHit = response.headers.first(name: "X-Xs3lerator-Cache-Hit")
        try await writer.head(response.status, response.headers)
        guard !writer.isHead else {
            try await writer.end()
            return .complete
        }
        do {
            for try await piece in response.body {
                log.bytes += Int64(piece.readableBytes)
                try await writer.body(piece)
            }
        } catch let error as ResponseWriter.ClientGone {
            throw error
        } catch {
            // The body failed after the head went out: close without finishing, so the client
            // can never take a truncated body for a complete one.
            logger.warning("response body failed; aborting the connection",
                           metadata: ["request-id": "\(log.requestID)", "url": "\(log.target)", "error": "\(error)"])
            writer.abort()
            log.aborted = true
            return .closeConnection
        }
        try await writer.end()
        // Without a length, an HTTP/1.0 client learns the end of the body from the close.
        let delimitedByClose = writer.version.minor == 0 && response.headers.first(name: "Content-Length") == nil
        return delimitedByClose ? .closeConnection : .complete
    }

    /// The upstream URL in a request target `/<url>`, or nil if it is not an absolute http(s) URL.
    static func upstreamURL(_ target: String) -> String? {
        guard target.hasPrefix("/") else { return nil }
        let url = String(target.dropFirst())
        return RedirectLocation.split(url) == nil ? nil : url
    }

    static func withoutQuery(_ url: String) -> String {
        String(url.prefix { $0 != "?" })
    }

    static func text(_ status: HTTPResponseStatus, _ text: String, headers extra: HTTPHeaders = [:]) -> DataPlaneResponse {
        var headers = extra
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: String(text.utf8.count))
        return DataPlaneResponse(status: status, headers: headers, body: ByteStream(buffers: [ByteBuffer(string: text)]))
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

/// One line per request, written when it ends. The URL's query is left out: presigned URLs
/// carry credentials there.
struct AccessLog {
    let method: HTTPMethod
    var target: String
    let requestID: String
    var key: String?
    var status: UInt = 0
    var bytes: Int64 = 0
    var cacheHit: String?
    var aborted = false

    init(method: HTTPMethod, target: String, requestID: String) {
        self.method = method
        self.target = RequestHandler.withoutQuery(target)
        self.requestID = requestID
    }

    func finish(started: ContinuousClock.Instant, logger: Logger) {
        let elapsed = ContinuousClock.now - started
        let milliseconds = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        var metadata: Logger.Metadata = [
            "request-id": "\(requestID)", "method": "\(method.rawValue)", "url": "\(target)", "status": "\(status)",
            "bytes": "\(bytes)", "ms": "\(milliseconds)",
        ]
        if let key { metadata["key"] = "\(key)" }
        if let cacheHit { metadata["cache-hit"] = "\(cacheHit)" }
        if aborted { metadata["aborted"] = "true" }
        logger.info("request", metadata: metadata)
    }
}
