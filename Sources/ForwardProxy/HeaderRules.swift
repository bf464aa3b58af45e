import NIOHTTP1
import Synchronization

/// Header rewriting for a message that crosses the proxy (RFC 9110 §7.6).
public enum HeaderRules {
    /// The `Via` entry this proxy appends (RFC 9110 §7.6.3: protocol version and pseudonym).
    public static let viaEntry = "1.1 passsage"
    public static let requestIDHeader = "X-Request-Id"

    /// Hop-by-hop fields that never cross the proxy, in addition to those named in `Connection`.
    /// `Proxy-Authorization` and `Proxy-Authenticate` are addressed to the proxy, not the origin.
    static let hopByHopNames: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// Removes hop-by-hop fields, including every field named by a `Connection` header.
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var named: Set<String> = []
        for value in headers[canonicalForm: "connection"] {
            named.insert(value.lowercased().trimmingASCIIWhitespace())
        }
        for value in headers[canonicalForm: "proxy-connection"] {
            named.insert(value.lowercased().trimmingASCIIWhitespace())
        }
        let doomed = headers.compactMap { field -> String? in
            let lower = field.name.lowercased()
            return (hopByHopNames.contains(lower) || named.contains(lower)) ? field.name : nil
        }
        for name in Set(doomed) {
            headers.remove(name: name)
        }
    }

    /// Appends our entry to `Via`, keeping earlier entries in order.
    public static func appendVia(_ headers: inout HTTPHeaders) {
        let existing = headers["via"].joined(separator: ", ")
        headers.replaceOrAdd(name: "Via", value: existing.isEmpty ? viaEntry : existing + ", " + viaEntry)
    }

    /// Headers for the upstream request: hop-by-hop removed, `Host` set to the target authority,
    /// `Via` and the request id added.
    public static func upstreamRequestHeaders(
        from clientHeaders: HTTPHeaders,
        hostHeader: String,
        requestID: String
    ) -> HTTPHeaders {
        var headers = clientHeaders
        removeHopByHop(&headers)
        headers.replaceOrAdd(name: "Host", value: hostHeader)
        appendVia(&headers)
        headers.replaceOrAdd(name: requestIDHeader, value: requestID)
        return headers
    }

    /// Headers for the response to the client: hop-by-hop removed, `Via` and the request id added.
    public static func clientResponseHeaders(from upstreamHeaders: HTTPHeaders, requestID: String) -> HTTPHeaders {
        var headers = upstreamHeaders
        removeHopByHop(&headers)
        appendVia(&headers)
        headers.replaceOrAdd(name: requestIDHeader, value: requestID)
        return headers
    }
}

/// Request ids tie a client response to log lines and upstream requests.
public enum RequestID {
    /// The client's `X-Request-Id` if it is sane (1–128 visible ASCII characters), else a new one.
    public static func resolve(from headers: HTTPHeaders) -> String {
        if let given = headers.first(name: HeaderRules.requestIDHeader), isAcceptable(given) {
            return given
        }
        return generate()
    }

    /// 32 hex digits, unique within the process and unlike those of other processes: a random
    /// per-process half and a scrambled counter. (Two `getrandom` calls per request cost more than
    /// the rest of the id handling together.)
    public static func generate() -> String {
        let sequence = counter.add(1, ordering: .relaxed).newValue
        return hex16(processPart) + hex16(scramble(sequence))
    }

    private static let processPart: UInt64 = .random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(0)

    /// splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
    static func scramble(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func isAcceptable(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 128 && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    private static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
