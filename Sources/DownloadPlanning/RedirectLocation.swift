import HTTPRules
import StorageCore

/// Resolving a redirect's `Location` against the URL that sent it (RFC 9110 §10.2.2, RFC 3986
/// §5.2 for the forms origins send: absolute, scheme-relative, absolute-path, relative-path).
public enum RedirectLocation {
    /// The absolute target, or nil when it is not a well-formed http(s) URL.
    public static func resolve(_ location: String, against base: String) -> String? {
        resolveUnchecked(location, against: base).flatMap { split($0) == nil ? nil : $0 }
    }

    private static func resolveUnchecked(_ location: String, against base: String) -> String? {
        let location = location.trimmingSpaces()
        guard !location.isEmpty, let (scheme, authority, path) = split(base) else { return nil }
        if let colon = location.firstIndex(of: ":"), isScheme(location[..<colon]) {
            let target = location.lowercased()
            return target.hasPrefix("http://") || target.hasPrefix("https://") ? location : nil
        }
        if location.hasPrefix("//") { return scheme + ":" + location }
        if location.hasPrefix("/") { return scheme + "://" + authority + location }
        if location.hasPrefix("?") {
            let pathOnly = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return scheme + "://" + authority + pathOnly + location
        }
        let pathOnly = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let directory = pathOnly.lastIndex(of: "/").map { pathOnly[...$0] } ?? "/"
        return scheme + "://" + authority + directory + location
    }

    private static func isScheme(_ text: Substring) -> Bool {
        guard let first = text.first, first.isLetter else { return false }
        return text.allSatisfy { character in character.isLetter || character.isNumber || character == "+" || character == "-" || character == "." }
    }

    /// `scheme://authority`, lower-cased, for same-origin checks.
    public static func origin(of url: String) -> String? {
        split(url).map { "\($0.scheme)://\($0.authority.lowercased())" }
    }

    /// Scheme, authority and the rest (path and query, "/" at least) of an absolute http(s) URL.
    public static func split(_ url: String) -> (scheme: String, authority: String, path: String)? {
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
        let scheme = url[..<colon].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[url.index(colon, offsetBy: 3)...]
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<end])
        guard isValidAuthority(authority) else { return nil }
        var path = String(rest[end...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        return (scheme, authority, path)
    }

    /// `[userinfo@]host[:port]`: the host and port as the proxy accepts them (`Authority`), so a
    /// bad port is refused here, not trapped on deep in address resolution.
    static func isValidAuthority(_ authority: String) -> Bool {
        let hostAndPort = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority[...]
        return (try? Authority.parse(hostAndPort, defaultPort: 1)) != nil
    }
}
