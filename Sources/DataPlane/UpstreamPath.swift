import ChunkManifest
import DownloadEngine
import DownloadPlanning
import MetadataStore
import NIOCore
import NIOHTTP1
import StorageCore

/// Going upstream: the accelerator (no key) and the keyed miss (downloaded, stored, shared).
extension DataPlane {
    // MARK: Accelerator

    /// One plain GET upstream; a 200 with a length goes through the engine and is answered with
    /// the client's range; everything else is relayed.
    func accelerate(_ request: DataPlaneRequest) async -> DataPlaneResponse {
        let upstream = upstreamRequest(request, keyed: false)
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(upstream)
        } catch {
            return failure(classify(error, upstream), keyed: false)
        }
        guard let size = Self.downloadableSize(response) else { return relay(response, keyed: false) }
        guard hasTemporarySpace() else { return relay(response, keyed: false) }
        var headers = DataPlaneHeaders.clientResponseHeaders(from: response.headers)
        Self.addFinalURL(response, to: &headers)
        let answer = Self.answer(range: request.range, size: size, headers: headers)
        guard case .body(let status, let span, let headers) = answer else { return answer.response }
        // Chunk files must be possible before a 200 is promised.
        do {
            try TemporaryChunkFile(directory: configuration.download.temporaryDirectory).close()
        } catch {
            return .text(.internalServerError, "internal error: temporary directory unavailable: \(error)\n")
        }
        let download = makeDownload(response, size: size, span: span, upstream: upstream, caching: false)
        download.start(initial: response.body, parallel: response.headers.first(name: "Accept-Ranges")?.lowercased() != "none")
        metrics.bytesServed(from: .upstream, span.count64)
        return DataPlaneResponse(status: status, headers: headers, body: download.body())
    }

    // MARK: Keyed miss

    /// A keyed request the cache cannot answer: joins the download in flight for the key, or
    /// starts one that is stored as it streams.
    func miss(_ request: DataPlaneRequest, key: String) async -> DataPlaneResponse {
        switch await fills.claim(key) {
        case .join(let fill):
            // A fill whose sink gave up may already have dropped chunks a new reader would need; a
            // response that varies on what this request sends otherwise is not this request's.
            if fill.download.failure == nil, fill.download.sinkIsActive, fill.varySelector.matches(request.headers) {
                metrics.collapsedJoin()
                return respond(from: fill, range: request.range, joined: true)
            }
            return await fetchAndStore(request, key: key, registered: false)
        case .alone:
            // The first request got nothing to share; it may have cached an empty body, though.
            if !request.cacheSkip, case .served(let response) = await hit(request, key: key) { return response }
            return await fetchAndStore(request, key: key, registered: false)
        case .create:
            return await fetchAndStore(request, key: key, registered: true)
        }
    }

    /// Sends the keyed GET upstream and answers with it; a 200 with a length is cached.
    /// `registered`: this request holds the key's claim and must publish or abandon it.
    func fetchAndStore(_ request: DataPlaneRequest, key: String, registered: Bool) async -> DataPlaneResponse {
        let upstream = upstreamRequest(request, keyed: true)
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(upstream)
        } catch {
            if registered { fills.abandon(key) }
            return failure(classify(error, upstream), keyed: true)
        }
        return await store(response, request: request, key: key, upstream: upstream, registered: registered)
    }

    /// Answers with an upstream response to a keyed GET, caching it when it is a 200 with a
    /// known length (the only status stored as a full object; see docs/xs3lerator.md).
    func store(_ response: UpstreamResponse, request: DataPlaneRequest, key: String, upstream: UpstreamRequest,
               registered: Bool) async -> DataPlaneResponse {
        metrics.miss()
        guard let size = Self.downloadableSize(response), let chunks, let storage else {
            if registered { fills.abandon(key) }
            return relay(response, keyed: true)
        }
        var fields: MetadataFields = [:]
        var clearing: [String] = []
        var storeKey = key
        if let unvaried = request.unvariedKey, !response.headers.contains(name: "vary") { storeKey = unvaried }
        if let storeFields = request.storeFields {
            guard let directive = storeFields(response.status, response.headers) else {
                // The caller's rules forbid storing this response (no-store, private, ...).
                if registered { fills.abandon(key) }
                return relay(response, keyed: true)
            }
            fields = directive.fields
            clearing = directive.clearing
            storeKey = directive.key ?? storeKey
        }
        guard hasTemporarySpace() else {
            // No room for chunk files: relay as it comes, cache nothing (reference §5.9).
            storage.diskCache?.enterDegradedMode()
            logger.warning("no temporary space for chunk files; relaying uncached", metadata: ["key": "\(key)"])
            if registered { fills.abandon(key) }
            return relay(response, keyed: true)
        }
        var headers = DataPlaneHeaders.clientResponseHeaders(from: response.headers)
        Self.addFinalURL(response, to: &headers)
        let tag = request.tagsFills ? CacheFill.newTag() : nil
        if size == 0 {
            if let tag {
                fields["manifest_tag"] = .string(tag)
                headers.replaceOrAdd(name: CacheFill.tagHeader, value: tag)
            }
            await cacheEmptyBody(key: storeKey, fields: fields, clearing: clearing, metadata: storage.metadata)
            if registered { fills.abandon(key) }
            return Self.answer(range: request.range, size: 0, headers: headers, keyed: true).response
        }
        let creatorSpan: ClosedRange<Int64>
        switch RangeRequest(headerValue: request.range).resolve(size: size) {
        case .partial(let span): creatorSpan = span
        default: creatorSpan = 0...(size - 1)
        }
        let download = makeDownload(response, size: size, span: creatorSpan, upstream: upstream, caching: true)
        let fill = CacheFill(key: storeKey, download: download, headers: headers, fields: fields, clearing: clearing,
                             varySelector: VarySelector(response: response.headers, request: request.headers), tag: tag,
                             chunks: chunks)
        if registered { fills.publish(key, fill) }
        download.start(initial: response.body, parallel: response.headers.first(name: "Accept-Ranges")?.lowercased() != "none")
        metrics.downloadStarted()
        background.run { [self] in
            await fill.runSink(metadata: storage.metadata, logger: logger)
            if registered { fills.finish(key, fill) }
            // Readers may still be reading; the download itself stops once they are done.
            metrics.downloadFinished()
        }
        return respond(from: fill, range: request.range)
    }

    /// One reader's response from a fill: the same status and headers for every reader, its own
    /// range.
    /// `joined`: the request joined another's download, so the cookies that response set are not
    /// its to receive.
    func respond(from fill: CacheFill, range: String?, joined: Bool = false) -> DataPlaneResponse {
        var headers = fill.headers
        if joined {
            headers.remove(name: "set-cookie")
            headers.remove(name: "set-cookie2")
        }
        let answer = Self.answer(range: range, size: fill.size, headers: headers, keyed: true)
        guard case .body(let status, let span, let headers) = answer else { return answer.response }
        metrics.bytesServed(from: .upstream, span.count64)
        return DataPlaneResponse(status: status, headers: headers, body: fill.download.body(span: span, stored: fill))
    }

    private func cacheEmptyBody(key: String, fields: MetadataFields, clearing: [String], metadata: any MetadataStore) async {
        do {
            let manifest = try Manifest(chunkSize: configuration.download.chunkSize, totalSize: 0, chunks: [])
            var document = fields
            document["manifest_b64"] = .string(ManifestCodec.encodeBase64(manifest))
            try await CacheFill.write(document, clearing: clearing, to: key, in: metadata)
        } catch {
            logger.warning("not cached: writing the manifest of an empty body failed", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }

    // MARK: Shared pieces

    /// The object size when `response` can go through the engine: a 200 with a length, not
    /// chunked.
    static func downloadableSize(_ response: UpstreamResponse) -> Int64? {
        guard response.status == .ok,
              let size = response.headers.first(name: "Content-Length").flatMap({ Int64($0) }), size >= 0,
              !response.headers[canonicalForm: "transfer-encoding"].contains(where: { $0.lowercased() == "chunked" })
        else { return nil }
        return size
    }

    func makeDownload(_ response: UpstreamResponse, size: Int64, span: ClosedRange<Int64>, upstream: UpstreamRequest,
                      caching: Bool) -> ChunkedDownload {
        ChunkedDownload(size: size, span: span, initialHeaders: response.headers,
                        request: UpstreamRequest(url: response.url, method: .GET, headers: upstream.headers,
                                                 tlsSkipVerify: upstream.tlsSkipVerify, connectTimeout: upstream.connectTimeout,
                                                 readTimeout: upstream.readTimeout),
                        fetcher: fetcher, settings: configuration.download, budget: budget, now: ChunkedDownload.now(),
                        caching: caching)
    }

    /// Relays a response the engine does not take: redirects and 304s with no body, errors,
    /// other 2xx and bodies of unknown length as they come. Nothing is cached.
    func relay(_ response: UpstreamResponse, keyed: Bool) -> DataPlaneResponse {
        let status = response.status.code
        let size = response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        let chunked = response.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
        var headers: HTTPHeaders
        var body = response.body
        if (300..<400).contains(status) {
            headers = DataPlaneHeaders.clientResponseHeaders(from: response.headers)
            headers.replaceOrAdd(name: "Content-Length", value: "0")
            body = .empty
        } else {
            headers = DataPlaneHeaders.clientResponseHeaders(from: response.headers, keepFraming: !chunked && size != nil)
            headers.remove(name: "Content-Range")
            headers.remove(name: "Accept-Ranges")
            if let size, !chunked {
                let url = response.url
                body = body.verifyingLength(size) { received in
                    UpstreamError(.truncated, url: url, message: "body ended after \(received) of \(size) bytes")
                }
            }
        }
        Self.addFinalURL(response, to: &headers)
        // A 304 relayed bare carries no data-plane headers (reference §6.4).
        if keyed && status != 304 { headers.replaceOrAdd(name: "X-Xs3lerator-Cache-Hit", value: "false") }
        return DataPlaneResponse(status: response.status, headers: headers, body: body)
    }

    func classify(_ error: any Error, _ upstream: UpstreamRequest) -> UpstreamError {
        UpstreamError.classify(error, url: upstream.url, connectTimeout: upstream.connectTimeout, readTimeout: upstream.readTimeout)
    }

    /// How to answer a client `Range` for an object of `size` bytes.
    enum RangeAnswer {
        /// 200 or 206 with the bytes `span`; `headers` are final.
        case body(HTTPResponseStatus, span: ClosedRange<Int64>, headers: HTTPHeaders)
        /// Answered without a body (empty object, unsatisfiable range).
        case complete(DataPlaneResponse)

        var response: DataPlaneResponse {
            switch self {
            case .complete(let response): response
            case .body(let status, _, let headers): DataPlaneResponse(status: status, headers: headers)
            }
        }
    }

    /// The status and framing headers for `range` of an object of `size` bytes: `Content-Length`,
    /// `Content-Range`, `Accept-Ranges`, `X-Xs3lerator-Full-Size`, and (keyed) the hit flag.
    static func answer(range: String?, size: Int64, headers base: HTTPHeaders, keyed: Bool = false,
                       hit: Bool = false) -> RangeAnswer {
        var headers = base
        headers.replaceOrAdd(name: "Accept-Ranges", value: "bytes")
        if keyed { headers.replaceOrAdd(name: "X-Xs3lerator-Cache-Hit", value: hit ? "true" : "false") }
        headers.replaceOrAdd(name: "X-Xs3lerator-Full-Size", value: String(size))
        switch RangeRequest(headerValue: range).resolve(size: size) {
        case .empty:
            headers.replaceOrAdd(name: "Content-Length", value: "0")
            return .complete(DataPlaneResponse(status: .ok, headers: headers))
        case .unsatisfiable:
            headers.replaceOrAdd(name: "Content-Range", value: "bytes */\(size)")
            return .complete(.text(.rangeNotSatisfiable, "range not satisfiable\n", headers: headers))
        case .full(let whole):
            headers.replaceOrAdd(name: "Content-Length", value: String(size))
            return .body(.ok, span: whole, headers: headers)
        case .partial(let part):
            headers.replaceOrAdd(name: "Content-Range", value: "bytes \(part.lowerBound)-\(part.upperBound)/\(size)")
            headers.replaceOrAdd(name: "Content-Length", value: String(part.count64))
            return .body(.partialContent, span: part, headers: headers)
        }
    }
}

extension ClosedRange where Bound == Int64 {
    var count64: Int64 { upperBound - lowerBound + 1 }
}
