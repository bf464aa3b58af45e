import HTTPRules
import NIOHTTP1

/// Header rewriting for a message that crosses the proxy (RFC 9110 §7.6), composed from the shared
/// field rules (`HTTPRules`).
public enum HeaderRules {
    /// The `Via` entry this proxy appends (RFC 9110 §7.6.3: protocol version and pseudonym).
    public static let viaEntry = "1.1 passsage"
    public static let requestIDHeader = RequestID.header

    /// Headers for the upstream request: hop-by-hop and internal headers removed, `Host` set to the
    /// target authority, `Via` and the request id added.
    public static func upstreamRequestHeaders(
        from clientHeaders: HTTPHeaders,
        hostHeader: String,
        requestID: String
    ) -> HTTPHeaders {
        var headers = clientHeaders
        HopByHop.remove(from: &headers)
        InternalHeaders.remove(from: &headers)
        headers.replaceOrAdd(name: "Host", value: hostHeader)
        Via.append(viaEntry, to: &headers)
        headers.replaceOrAdd(name: requestIDHeader, value: requestID)
        return headers
    }

    /// Headers for the response to the client: hop-by-hop removed, `Via` and the request id added.
    public static func clientResponseHeaders(from upstreamHeaders: HTTPHeaders, requestID: String) -> HTTPHeaders {
        var headers = upstreamHeaders
        HopByHop.remove(from: &headers)
        Via.append(viaEntry, to: &headers)
        headers.replaceOrAdd(name: requestIDHeader, value: requestID)
        return headers
    }
}
