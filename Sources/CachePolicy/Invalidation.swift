import HTTPRules

/// RFC 9111 §4.4: a successful unsafe request invalidates what the cache holds for its target, and
/// for the `Location` and `Content-Location` URIs of its response when they are on the same origin.
public enum Invalidation {
    /// Methods that never invalidate (RFC 9110 §9.2.1 safe methods).
    public static let safeMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE"]

    /// The absolute URLs whose entries are invalidated. `requestURL` is the URL the proxy fetched;
    /// `location` and `contentLocation` are the response's fields as sent (absolute or relative).
    public static func targets(method: String, status: Int, requestURL: String, location: String?,
                               contentLocation: String?) -> [String] {
        guard !safeMethods.contains(method), (200..<400).contains(status),
              let request = AbsoluteURL(requestURL) else { return [] }
        var urls = [requestURL]
        for reference in [location, contentLocation].compactMap({ $0 }) {
            // Other origins are left alone: an origin must not be able to evict another's entries.
            guard let resolved = request.resolve(reference), resolved.sameOrigin(as: request) else { continue }
            let text = resolved.description
            if !urls.contains(text) { urls.append(text) }
        }
        return urls
    }
}

/// Just enough of an absolute http(s) URL for invalidation: scheme, lower-cased authority with its
/// port made explicit, and the rest, plus resolution of a reference against it (RFC 3986 §5.2,
/// without dot-segment removal, which the proxy never applies to targets either).
struct AbsoluteURL: CustomStringConvertible, Equatable {
    let scheme: String
    /// `host:port`, lower-cased, port always present.
    let origin: String
    /// How the authority was written (what keys and logs show).
    let authority: String
    /// Path and query, starting with `/`.
    let path: String

    init?(_ text: String) {
        guard let schemeEnd = text.firstRange(of: "://") else { return nil }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { (character: Character) in "/?#".contains(character) }) ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        let lowered = authority.lowercased()
        // A port is what follows the last colon outside IPv6 brackets, if it is all digits.
        let hostEnd = lowered.lastIndex(of: "]") ?? lowered.startIndex
        let hasPort = lowered[hostEnd...].lastIndex(of: ":").map { colon in
            let digits = lowered[lowered.index(after: colon)...]
            return !digits.isEmpty && digits.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        } ?? false
        self.scheme = scheme
        self.authority = authority
        self.origin = hasPort ? lowered : lowered + (scheme == "https" ? ":443" : ":80")
        self.path = path
    }

    private init(scheme: String, origin: String, authority: String, path: String) {
        (self.scheme, self.origin, self.authority, self.path) = (scheme, origin, authority, path)
    }

    var description: String { "\(scheme)://\(authority)\(path)" }

    func sameOrigin(as other: AbsoluteURL) -> Bool { scheme == other.scheme && origin == other.origin }

    func resolve(_ reference: String) -> AbsoluteURL? {
        let reference = reference.trimmingASCIIWhitespace()
        if reference.contains("://") { return AbsoluteURL(reference) }
        if reference.hasPrefix("//") { return AbsoluteURL(scheme + ":" + reference) }
        var withoutFragment = reference
        if let fragment = withoutFragment.firstIndex(of: "#") { withoutFragment = String(withoutFragment[..<fragment]) }
        if withoutFragment.hasPrefix("/") {
            return AbsoluteURL(scheme: scheme, origin: origin, authority: authority, path: withoutFragment)
        }
        let basePath = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        if withoutFragment.isEmpty {
            return self
        }
        if withoutFragment.hasPrefix("?") {
            return AbsoluteURL(scheme: scheme, origin: origin, authority: authority, path: basePath + withoutFragment)
        }
        let directory = basePath[...(basePath.lastIndex(of: "/") ?? basePath.startIndex)]
        return AbsoluteURL(scheme: scheme, origin: origin, authority: authority, path: directory + withoutFragment)
    }
}
