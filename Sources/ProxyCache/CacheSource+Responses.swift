import CachePolicy
import DataPlane
import ForwardProxy
import HTTPRules
import NIOCore
import NIOHTTP1

/// The responses the cache gives: stored entries (from metadata, memory or the data plane) and
/// upstream answers through the data plane.
extension CacheSource {
    // MARK: Responses

    func localAnswer(_ entry: CacheDocument.Entry, freshness: Freshness, status: CacheStatus,
                             request: Lookup) -> LocalReply {
        var headers = entry.stored.headers
        var code = HTTPResponseStatus(statusCode: entry.stored.status)
        if ClientConditionals.notModified(request.headers, stored: entry.stored.headers) {
            code = .notModified
            for name in ["content-length", "content-encoding", "content-range"] { headers.remove(name: name) }
        }
        headers.remove(name: "content-length")
        headers.replaceOrAdd(name: "Age", value: String(freshness.age))
        headers.add(name: "Cache-Status", value: status.fieldValue)
        // HEAD and 304 carry the length a 200 would have (RFC 9110 §8.6), never a made-up 0.
        let length = entry.manifest == nil ? 0 : entry.contentSize.map { Int($0) }
        return LocalReply(status: code, headers: headers, body: ByteBuffer(), headLength: length, replaysStoredResponse: true)
    }

    /// A fresh hit whose whole body is in memory: the stored headers, its length, `Age` and
    /// `Cache-Status`.
    func storedReply(_ entry: CacheDocument.Entry, body: ByteBuffer, freshness: Freshness,
                             status: CacheStatus) -> LocalReply {
        var headers = entry.stored.headers
        for name in ["content-length", "content-range", "transfer-encoding", "accept-ranges"] { headers.remove(name: name) }
        headers.add(name: "Accept-Ranges", value: "bytes")
        headers.replaceOrAdd(name: "Age", value: String(freshness.age))
        headers.add(name: "Cache-Status", value: status.fieldValue)
        return LocalReply(status: HTTPResponseStatus(statusCode: entry.stored.status), headers: headers, body: body,
                          replaysStoredResponse: true)
    }

    /// A stored entry's body from the data plane: the stored headers, the data plane's framing,
    /// `Age` and `Cache-Status`.
    func stream(_ response: DataPlaneResponse, entry: CacheDocument.Entry, freshness: Freshness,
                        status: CacheStatus, lookup: Lookup) -> ResponsePlan {
        let fromCache = response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true"
        guard response.status == .ok || response.status == .partialContent, fromCache else {
            // A 416 for a range the stored object cannot satisfy is still the cache's answer;
            // anything else came from upstream after all: as it came.
            return relayFromDataPlane(response, status: fromCache ? status : CacheStatus(forward: .stale), lookup: lookup)
        }
        var headers = entry.stored.headers
        for name in ["content-length", "content-range", "transfer-encoding", "accept-ranges"] { headers.remove(name: name) }
        for name in ["content-length", "content-range", "accept-ranges"] {
            if let value = response.headers.first(name: name) { headers.add(name: name, value: value) }
        }
        headers.replaceOrAdd(name: "Age", value: String(freshness.age))
        headers.add(name: "Cache-Status", value: status.fieldValue)
        let code = response.status == .partialContent ? .partialContent : HTTPResponseStatus(statusCode: entry.stored.status)
        return .exchange(StreamedResponse(head: HTTPResponseHead(version: .http1_1, status: code, headers: headers),
                                          body: response.body, eventLoop: lookup.eventLoop))
    }

    /// An upstream answer through the data plane, minus its contract headers, plus `Cache-Status`.
    func relayFromDataPlane(_ response: DataPlaneResponse, status: CacheStatus, lookup: Lookup) -> ResponsePlan {
        var headers = response.headers
        InternalHeaders.remove(from: &headers)
        headers.add(name: "Cache-Status", value: status.fieldValue)
        return .exchange(StreamedResponse(head: HTTPResponseHead(version: .http1_1, status: response.status, headers: headers),
                                          body: response.body, eventLoop: lookup.eventLoop))
    }
}
