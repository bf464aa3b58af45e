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

    /// `[userinfo@]host[:port]` with a non-empty host, no spaces or controls, and a port (if any)
    /// of 1–65535: a bad port must be refused here, not trap deep in address resolution.
    static func isValidAuthority(_ authority: String) -> Bool {
        guard authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return false }
        let hostAndPort = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority[...]
        let host: Substring
        let port: Substring?
        if hostAndPort.hasPrefix("[") {
            guard let close = hostAndPort.firstIndex(of: "]") else { return false }
            host = hostAndPort[hostAndPort.index(after: hostAndPort.startIndex)..<close]
            let after = hostAndPort[hostAndPort.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return false }
            port = after.isEmpty ? nil : after.dropFirst()
        } else if let colon = hostAndPort.firstIndex(of: ":") {
            host = hostAndPort[..<colon]
            port = hostAndPort[hostAndPort.index(after: colon)...]
        } else {
            host = hostAndPort
            port = nil
        }
        guard !host.isEmpty, !host.contains("["), !host.contains("]") else { return false }
        guard let port, !port.isEmpty else { return true }
        guard port.count <= 5, port.allSatisfy(\.isASCII), let number = Int(port), (1...65_535).contains(number) else { return false }
        return true
    }
}
