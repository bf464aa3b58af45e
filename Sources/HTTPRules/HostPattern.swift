/// A host name pattern, matched case-insensitively against a host without port:
/// - `example.com`: that host only;
/// - `.example.com`: the domain and all its subdomains;
/// - `*.example.com`: subdomains only;
/// - `*`: every host;
/// - with `allowsGlob`, any other pattern with `*` (any run of characters, dots included) or `?`
///   (one character), e.g. `mirror-*.example.com`.
///
/// `--no-intercept` and the policy file's `host` both use it.
public enum HostPattern: Sendable, Equatable, CustomStringConvertible {
    case exact(String)
    case domainAndSubdomains(String)
    case subdomains(String)
    case any
    case glob(String)

    public init(parsing raw: String, allowsGlob: Bool) throws(HostPatternError) {
        let text = raw.lowercased()
        if text == "*" {
            self = .any
            return
        }
        var body = Substring(text)
        var kind = 0
        if body.hasPrefix("*."), !body.dropFirst(2).contains(where: { $0 == "*" || $0 == "?" }) {
            body = body.dropFirst(2)
            kind = 1
        } else if body.hasPrefix(".") {
            body = body.dropFirst()
            kind = 2
        }
        if body.hasPrefix("["), body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        let wildcards = allowsGlob && kind != 1
        let valid = !body.isEmpty && !body.hasPrefix(".") && body.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"):
                return true
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                return wildcards
            default:
                return false
            }
        }
        guard valid else { throw HostPatternError(pattern: raw, allowsGlob: allowsGlob) }
        switch kind {
        case 1: self = .subdomains(String(body))
        case 2: self = .domainAndSubdomains(String(body))
        default: self = body.contains(where: { $0 == "*" || $0 == "?" }) ? .glob(String(body)) : .exact(String(body))
        }
    }

    /// `host` must be lower-case already (the callers lower-case it once per request).
    public func matches(lowercased host: String) -> Bool {
        switch self {
        case .any: return true
        case .exact(let name): return host == name
        case .subdomains(let domain): return host.hasSuffix("." + domain)
        case .domainAndSubdomains(let domain): return host == domain || host.hasSuffix("." + domain)
        case .glob(let pattern): return Self.globMatches(Array(pattern.utf8), Array(host.utf8))
        }
    }

    public var description: String {
        switch self {
        case .any: return "*"
        case .exact(let name): return name
        case .subdomains(let domain): return "*." + domain
        case .domainAndSubdomains(let domain): return "." + domain
        case .glob(let pattern): return pattern
        }
    }

    /// `*` and `?` wildcard matching, linear with one backtrack point (the last `*`).
    static func globMatches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var (p, t) = (0, 0)
        var star: Int? = nil
        var resume = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = t
                p += 1
            } else if let star {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

public struct HostPatternError: Error, Equatable, CustomStringConvertible {
    public let pattern: String
    public let allowsGlob: Bool

    public init(pattern: String, allowsGlob: Bool) {
        self.pattern = pattern
        self.allowsGlob = allowsGlob
    }

    public var description: String {
        "invalid host pattern \"\(pattern)\" (expected host, .domain, *.domain\(allowsGlob ? ", a glob" : "") or *)"
    }
}
