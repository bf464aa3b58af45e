import HTTPRules
import NIOHTTP1

/// Cache ids, in the original's document shapes (`passsage-behaviour.md` §4.2):
/// `<scheme>/<host>/<sha224(url)>`, a variant `…+<sha224(vary request string)>`, and the vary
/// index `<scheme>/<host>/_vary/<sha224(url)>`.
///
/// Keys come from the URL the proxy fetches (built once from the tunnel's authority and the
/// request target), never from a header the client sent. Query parameters are sorted, so `?b=1&a=2`
/// and `?a=2&b=1` share an entry (the original sorted only when it had stripped a signature), and
/// the parameters of a recognised URL-signing scheme are left out (`SigningSchemes`), as are a
/// rule's `strip_query` names, so differently signed URLs of one object share an entry.
public struct CacheKey: Sendable, Equatable {
    /// The fetched URL with its query parameters sorted: what the id hashes.
    public let normalizedURL: String
    /// `<scheme>/<host>`, lower-case, host without port.
    public let prefix: String
    /// The SHA-224 hex of `normalizedURL`.
    public let urlHash: String
    /// The id of the entry when the response does not vary.
    public let id: String
    /// The id of the vary index document, which records the `Vary` an origin sent for this URL.
    public let varyIndexID: String

    /// `stripping`: more parameter names (case-insensitive) to leave out, a rule's `strip_query`.
    public init?(url: String, stripping extra: [String] = []) {
        guard let url = AbsoluteURL(url) else { return nil }
        normalizedURL = Self.normalizingQuery(url.description, stripping: extra)
        prefix = url.scheme + "/" + Self.hostName(url.authority)
        urlHash = SHA224.hex(normalizedURL)
        id = prefix + "/" + urlHash
        varyIndexID = prefix + "/_vary/" + urlHash
    }

    /// The id of one variant: `varyKey` is `CacheKey.varyKey(...)`.
    public func variantID(varyKey: String) -> String { id + "+" + varyKey }

    /// The vary request string (`name=value|…`, names lower-cased in the order `Vary` lists them,
    /// repeated request fields joined with `, `), or nil when `Vary` has `*` or names nothing.
    public static func varyRequestString(vary: [String], requestHeaders: HTTPHeaders) -> String? {
        var names: [String] = []
        for value in vary {
            for name in value.split(separator: ",") {
                let trimmed = String(name).trimmingASCIIWhitespace().lowercased()
                if trimmed == "*" { return nil }
                if !trimmed.isEmpty, !names.contains(trimmed) { names.append(trimmed) }
            }
        }
        guard !names.isEmpty else { return nil }
        return names.map { name in name + "=" + requestHeaders[canonicalForm: name].joined(separator: ", ") }
            .joined(separator: "|")
    }

    /// The 56-hex vary key of a vary request string.
    public static func varyKey(_ varyRequestString: String) -> String { SHA224.hex(varyRequestString) }

    /// `url` with the query's `&`-separated parameters sorted by (lower-cased name, name), as sent
    /// (no decoding or re-encoding); parameters of the same name keep their order (`?x=2&x=1` is
    /// not `?x=1&x=2` to every server); empty parameters dropped; signing parameters and `extra`
    /// names dropped.
    static func normalizingQuery(_ url: String, stripping extra: [String] = []) -> String {
        guard let mark = url.firstIndex(of: "?") else { return url }
        let base = url[..<mark]
        var parameters = url[url.index(after: mark)...].split(separator: "&").enumerated().map {
            (position, piece) -> (String, String, Int, Substring) in
            let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            return (SigningSchemes.comparableName(name), name, position, piece)
        }
        let stripped = SigningSchemes.strippedNames(Set(parameters.map(\.0)))
            .union(extra.map(SigningSchemes.comparableName))
        if !stripped.isEmpty { parameters.removeAll { stripped.contains($0.0) } }
        guard !parameters.isEmpty else { return String(base) }
        let sorted = parameters.sorted { left, right in
            if left.0 != right.0 { return left.0 < right.0 }
            if left.1 != right.1 { return left.1 < right.1 }
            return left.2 < right.2
        }
        return base + "?" + sorted.map { String($0.3) }.joined(separator: "&")
    }

    /// The host of an authority: lower-cased, without port or IPv6 brackets.
    static func hostName(_ authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("["), let close = lowered.firstIndex(of: "]") {
            return String(lowered[lowered.index(after: lowered.startIndex)..<close])
        }
        if let colon = lowered.lastIndex(of: ":") { return String(lowered[..<colon]) }
        return lowered
    }
}
