import HTTPRules
import NIOHTTP1

/// Which headers cross the data plane, in each direction (reference §3.4–3.5).
public enum DataPlaneHeaders {
    /// Every contract header starts with this (lower case).
    public static let contractPrefix = "x-xs3lerator-"

    /// Request conditionals. On keyed GETs the client's never go upstream: the data plane asks
    /// conditionally only with the validators it was given for its cached entry, or an origin
    /// could answer 304 for something that is not cached.
    static let conditionals: Set<String> = ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"]

    /// The client's headers as they go upstream: no contract headers, no hop-by-hop headers
    /// (including those named in `Connection`), no `Host` (set from the URL), no `Range` (the
    /// data plane asks for its own ranges), no `Content-Length` (GET and HEAD carry no body).
    /// Values that are not visible ASCII are dropped.
    /// Our `Via` entry on every upstream request.
    public static let via = "1.1 xs3lerator"

    /// Whether a request has been through an xs3lerator already: its own request, come back.
    public static func hasLooped(_ headers: HTTPHeaders) -> Bool {
        Via.names("xs3lerator", in: headers)
    }

    public static func upstreamRequestHeaders(from client: HTTPHeaders, keyed: Bool = false) -> HTTPHeaders {
        let named = HopByHop.namedByConnection(client)
        var result = HTTPHeaders()
        for (name, value) in client {
            let lower = name.lowercased()
            if InternalHeaders.isInternal(lower) || HopByHop.isHopByHop(lower, named: named)
                || lower == "host" || lower == "range" || lower == "content-length" || lower == "expect"
                || (keyed && conditionals.contains(lower)) {
                continue
            }
            guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { continue }
            result.add(name: name, value: value)
        }
        return result
    }

    /// Upstream response headers as they go to the client: no contract headers, no hop-by-hop
    /// headers, and (unless `keepFraming`, for HEAD and relayed bodies) none of the framing
    /// headers the data plane sets itself.
    public static func clientResponseHeaders(from upstream: HTTPHeaders, keepFraming: Bool = false) -> HTTPHeaders {
        let named = HopByHop.namedByConnection(upstream)
        var result = HTTPHeaders()
        for (name, value) in upstream {
            let lower = name.lowercased()
            if InternalHeaders.isInternal(lower) || HopByHop.isHopByHop(lower, named: named)
                || (!keepFraming && (lower == "content-range" || lower == "accept-ranges" || lower == "content-length")) {
                continue
            }
            result.add(name: name, value: value)
        }
        return result
    }
}
