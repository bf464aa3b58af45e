/// A host and port as they appear in a CONNECT request or an absolute URL.
public struct Authority: Hashable, Sendable, CustomStringConvertible {
    /// Lower-cased host name or IP literal, without IPv6 brackets.
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var isIPv6Literal: Bool { host.contains(":") }

    /// The host as written in a URL or Host header (IPv6 literals in brackets).
    public var hostForURL: String { isIPv6Literal ? "[\(host)]" : host }

    /// `host:port`, always with the port.
    public var description: String { "\(hostForURL):\(port)" }

    /// The authority for a URL or Host header: the port is omitted when it is the scheme's default.
    public func urlAuthority(scheme: RequestScheme) -> String {
        port == scheme.defaultPort ? hostForURL : "\(hostForURL):\(port)"
    }

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`. Without a port, `defaultPort` is used; when
    /// that is nil a port is required (the CONNECT authority-form).
    public static func parse(_ text: some StringProtocol, defaultPort: Int?) throws(RequestTargetError) -> Authority {
        let text = Substring(text)
        var hostPart: Substring
        var portPart: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .invalidAuthority(String(text)) }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw .invalidAuthority(String(text)) }
                portPart = rest.dropFirst()
            }
            guard !hostPart.isEmpty, hostPart.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }),
                  hostPart.contains(":")
            else { throw .invalidAuthority(String(text)) }
        } else {
            if let colon = text.lastIndex(of: ":") {
                hostPart = text[..<colon]
                portPart = text[text.index(after: colon)...]
            } else {
                hostPart = text
            }
            // `example.com.` and `example.com` are one host: one leaf, one URL, one cache key.
            if hostPart.hasSuffix(".") { hostPart = hostPart.dropLast() }
            guard !hostPart.isEmpty, !hostPart.hasSuffix("."), hostPart.utf8.count <= 253,
                  hostPart.utf8.allSatisfy(Authority.isRegisteredNameByte)
            else { throw .invalidAuthority(String(text)) }
        }
        let port: Int
        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(portPart), (1...65535).contains(value)
            else { throw .invalidAuthority(String(text)) }
            port = value
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw .invalidAuthority(String(text))
        }
        return Authority(host: hostPart.lowercased(), port: port)
    }

    private static func isRegisteredNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }
}

public enum RequestScheme: String, Sendable {
    case http
    case https

    public var defaultPort: Int { self == .http ? 80 : 443 }
}

public enum RequestTargetError: Error, Equatable, CustomStringConvertible {
    case invalidAuthority(String)
    case unsupportedScheme(String)
    case userInfoNotAllowed
    case malformed(String)
    /// Inside a tunnel, the request names another authority than the CONNECT one (421).
    case misdirected(String)

    public var description: String {
        switch self {
        case .invalidAuthority(let text): return "invalid authority \"\(text.prefix(200))\""
        case .unsupportedScheme(let scheme): return "unsupported URL scheme \"\(scheme.prefix(20))\""
        case .userInfoNotAllowed: return "user information in the request URL is not allowed"
        case .malformed(let text): return "malformed request target \"\(text.prefix(200))\""
        case .misdirected(let text): return "this tunnel serves only its CONNECT authority, not \"\(text.prefix(200))\""
        }
    }
}

/// The request-target of a request received by the proxy (RFC 9112 §3.2).
public enum ProxyRequestTarget: Equatable, Sendable {
    /// `http://host:port/path?query` — forwarded upstream.
    case absolute(scheme: RequestScheme, authority: Authority, pathAndQuery: String)
    /// `/path?query` — inside a tunnel, or a request addressed to the proxy itself.
    case origin(pathAndQuery: String)
    /// `host:port` — CONNECT.
    case authority(Authority)

    public static func parse(method: String, uri: String) throws(RequestTargetError) -> ProxyRequestTarget {
        if method == "CONNECT" {
            return .authority(try Authority.parse(uri, defaultPort: nil))
        }
        if uri.hasPrefix("/") {
            return .origin(pathAndQuery: uri)
        }
        guard let colon = uri.firstIndex(of: ":"), uri[colon...].hasPrefix("://") else {
            throw .malformed(uri)
        }
        let schemeText = uri[..<colon].lowercased()
        guard let scheme = RequestScheme(rawValue: schemeText) else {
            throw .unsupportedScheme(schemeText)
        }
        let afterScheme = uri[uri.index(colon, offsetBy: 3)...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        let authorityText = afterScheme[..<authorityEnd]
        if authorityText.contains("@") {
            throw .userInfoNotAllowed
        }
        let authority = try Authority.parse(authorityText, defaultPort: scheme.defaultPort)
        var rest: Substring = afterScheme[authorityEnd...]
        if let fragment = rest.firstIndex(of: "#") {
            rest = rest[..<fragment]
        }
        let pathAndQuery: String
        if rest.isEmpty {
            pathAndQuery = "/"
        } else if rest.hasPrefix("?") {
            pathAndQuery = "/" + String(rest)
        } else {
            pathAndQuery = String(rest)
        }
        return .absolute(scheme: scheme, authority: authority, pathAndQuery: pathAndQuery)
    }
}

/// Requests inside a CONNECT tunnel: the CONNECT authority is the only one the tunnel serves, so
/// what is fetched, logged and (later) keyed is always that authority. A request that names another
/// one, in absolute form or in `Host`, is misdirected (RFC 9110 §15.5.20: 421), never re-routed.
public enum TunnelRequestTarget {
    /// The path and query to fetch from `tunnel`, or `.misdirected`. A `Host` without a port
    /// matches on the host alone: the tunnel's port is implied, as clients commonly omit it.
    public static func resolve(
        method: String,
        uri: String,
        hostHeader: String?,
        tunnel: Authority
    ) throws(RequestTargetError) -> String {
        let pathAndQuery: String
        switch try ProxyRequestTarget.parse(method: method, uri: uri) {
        case .origin(let path):
            pathAndQuery = path
        case .absolute(_, let authority, let path):
            guard authority == tunnel else { throw .misdirected(authority.description) }
            pathAndQuery = path
        case .authority(let authority):
            throw .misdirected(authority.description)
        }
        if let hostHeader, !namesExactly(hostHeader, tunnel) {
            let named = try Authority.parse(hostHeader, defaultPort: tunnel.port)
            guard named.host == tunnel.host, named.port == tunnel.port else {
                throw .misdirected(hostHeader)
            }
        }
        return pathAndQuery
    }

    /// The usual case, `Host` written exactly as the tunnel's lower-case host with or without its
    /// port, checked without allocating: this runs for every request in a tunnel.
    private static func namesExactly(_ hostHeader: String, _ tunnel: Authority) -> Bool {
        guard !tunnel.isIPv6Literal, hostHeader.hasPrefix(tunnel.host) else { return false }
        let rest = hostHeader.utf8.dropFirst(tunnel.host.utf8.count)
        guard let colon = rest.first else { return true }
        guard colon == UInt8(ascii: ":"), rest.count > 1, rest.count <= 6 else { return false }
        var port = 0
        for byte in rest.dropFirst() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return port == tunnel.port
    }
}
