import NIOHTTP1

/// How `/object/N` answers one request, from its query:
/// - `ranges=bytes` (default: advertised and honoured), `none` (`Accept-Ranges: none`, Range
///   ignored), `ignore` (advertised, but every range answered with 200 and the whole object),
///   `unadvertised` (no `Accept-Ranges`, ranges honoured);
/// - `fault=ok200|short|wrong` with `faults=K` (default 1) and `faultFrom=F` (default 0): range
///   requests F ..< F+K for this URL get 200 and the whole object, a 206 cut off half-way, or a
///   206 one byte off;
/// - `chunked=1`: whole-object answers without Content-Length;
/// - `stall=B` / `drop=B`: whole-object answers stop after B bytes, keeping or closing the connection;
/// - `rate=B`: at most B bytes/s on this connection; `delay=MS` before the head;
/// - `etag=V`: the ETag (default `"obj-N"`); `If-Range` with another value gets the whole object;
/// - `seed=K`: the object's bytes are `OriginContent` from offset K on (other seeds, other bytes);
/// - `vary=ae`: `Vary: Accept-Encoding`; a request accepting gzip gets `Content-Encoding: gzip`
///   and the bytes of seed + 1,000,000 (not really gzip: other bytes are what a test can tell apart);
/// - `cc=V`: the Cache-Control value (percent-decoded);
/// - `failFrom=N`: from the N-th request for this path on, 503 or `failStatus` (an origin that broke);
/// - `validators=both|etag|lm|none` (default both): which of ETag and Last-Modified are sent.
///   `If-None-Match` matching the ETag, or else `If-Modified-Since` equal to the Last-Modified,
///   gets a 304 (for whichever validators are sent).
enum ObjectResponse {
    enum Plan {
        case respond(HTTPResponseStatus, HTTPHeaders, BodyPump.Body)
    }

    static func plan(size: Int64, request: HTTPRequestHead, query: [String: String], faultKey: String, stats: OriginStats) -> Plan {
        let etag = query["etag"] ?? "\"obj-\(size)\""
        let lastModified = "Sat, 21 Nov 2026 00:00:00 GMT"
        let mode = query["ranges"] ?? "bytes"
        let rate = query["rate"].flatMap(Int.init)
        let validators = query["validators"] ?? "both"
        if let failFrom = query["failFrom"].flatMap(Int.init),
           stats.requests(String(faultKey.split(separator: "?", maxSplits: 1)[0])) >= failFrom {
            let status = query["failStatus"].flatMap(Int.init).map { HTTPResponseStatus(statusCode: $0) } ?? .serviceUnavailable
            return .respond(status, HTTPHeaders([("Content-Length", "16")]), BodyPump.Body(offset: 0, count: 16))
        }
        var seed = query["seed"].flatMap(Int64.init) ?? 0
        var headers = HTTPHeaders([("Content-Type", "application/octet-stream")])
        if query["vary"] == "ae" {
            headers.add(name: "Vary", value: "Accept-Encoding")
            if request.headers[canonicalForm: "accept-encoding"].contains(where: { $0.lowercased().hasPrefix("gzip") }) {
                headers.add(name: "Content-Encoding", value: "gzip")
                seed += 1_000_000
            }
        }
        if let cacheControl = query["cc"] { headers.add(name: "Cache-Control", value: OriginHandler.percentDecoded(cacheControl)) }
        let sendsETag = validators == "both" || validators == "etag"
        let sendsDate = validators == "both" || validators == "lm"
        if sendsETag { headers.add(name: "ETag", value: etag) }
        if sendsDate { headers.add(name: "Last-Modified", value: lastModified) }
        if let tags = request.headers.first(name: "If-None-Match") {
            if sendsETag, tags == "*" || tags.split(separator: ",").contains(where: { $0.filter { $0 != " " } == etag }) {
                return .respond(.notModified, headers, BodyPump.Body(offset: 0, count: 0))
            }
        } else if let since = request.headers.first(name: "If-Modified-Since"), sendsDate, since == lastModified {
            return .respond(.notModified, headers, BodyPump.Body(offset: 0, count: 0))
        }
        switch mode {
        case "none": headers.add(name: "Accept-Ranges", value: "none")
        case "unadvertised": break
        default: headers.add(name: "Accept-Ranges", value: "bytes")
        }
        let whole = { () -> Plan in
            var full = headers
            if query["chunked"] != "1" { full.add(name: "Content-Length", value: String(size)) }
            return .respond(.ok, full, BodyPump.Body(offset: 0, count: size, rate: rate,
                                                     stallAfter: query["stall"].flatMap(Int64.init),
                                                     dropAfter: query["drop"].flatMap(Int64.init), contentBase: seed))
        }
        let honours = mode == "bytes" || mode == "unadvertised"
        guard let value = request.headers.first(name: "Range"), honours, let (first, last) = parse(value, size: size) else {
            return whole()
        }
        stats.rangeRequested()
        if let ifRange = request.headers.first(name: "If-Range"), ifRange != etag, ifRange != "Sat, 21 Nov 2026 00:00:00 GMT" {
            return whole()
        }
        guard first < size, first <= last else {
            headers.add(name: "Content-Range", value: "bytes */\(size)")
            headers.add(name: "Content-Length", value: "0")
            return .respond(.rangeNotSatisfiable, headers, BodyPump.Body(offset: 0, count: 0))
        }
        var (from, through) = (first, last)
        var dropAfter: Int64?
        if let fault = query["fault"], stats.takeFault(key: faultKey, from: query["faultFrom"].flatMap(Int.init) ?? 0,
                                                       limit: query["faults"].flatMap(Int.init) ?? 1) {
            switch fault {
            case "ok200": return whole()
            case "short": dropAfter = (through - from + 1) / 2
            case "wrong": (from, through) = through + 1 < size ? (from + 1, through + 1) : (from - 1, through - 1)
            default: break
            }
        }
        headers.add(name: "Content-Range", value: "bytes \(from)-\(through)/\(size)")
        headers.add(name: "Content-Length", value: String(through - from + 1))
        return .respond(.partialContent, headers, BodyPump.Body(offset: from, count: through - from + 1, rate: rate, dropAfter: dropAfter,
                                                                contentBase: seed))
    }

    /// One `bytes=` range resolved against `size` (first may be ≥ size: unsatisfiable).
    static func parse(_ value: String, size: Int64) -> (Int64, Int64)? {
        guard value.hasPrefix("bytes="), !value.contains(",") else { return nil }
        let spec = value.dropFirst("bytes=".count).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return nil }
        switch (Int64(spec[0]), Int64(spec[1])) {
        case (let a?, let b?): return (a, min(b, size - 1))
        case (let a?, nil) where spec[1].isEmpty: return (a, size - 1)
        case (nil, let n?) where spec[0].isEmpty: return n > 0 ? (max(0, size - n), size - 1) : (size, size)
        default: return nil
        }
    }
}
