/// The `--no-intercept` host list: hosts that get a blind tunnel instead of TLS interception
/// (certificate-pinning clients).
///
/// Pattern forms, matched case-insensitively against the CONNECT host:
/// - `example.com`: that host only;
/// - `.example.com`: the domain and all its subdomains;
/// - `*.example.com`: subdomains only;
/// - `*`: every host.
public struct HostPatternList: Sendable, Equatable {
    enum Pattern: Sendable, Equatable {
        case exact(String)
        case domainAndSubdomains(String)
        case subdomains(String)
        case any
    }

    let patterns: [Pattern]

    public static let empty = HostPatternList(patterns: [])

    init(patterns: [Pattern]) {
        self.patterns = patterns
    }

    /// Parses values that are each a comma- or space-separated list of patterns.
    public init(parsing values: [String]) throws(HostPatternError) {
        var patterns: [Pattern] = []
        for value in values {
            for raw in value.split(whereSeparator: { $0 == "," || $0 == " " }) {
                patterns.append(try HostPatternList.parsePattern(raw.lowercased()))
            }
        }
        self.patterns = patterns
    }

    public var isEmpty: Bool { patterns.isEmpty }

    public func matches(_ host: String) -> Bool {
        let host = host.lowercased()
        return patterns.contains { pattern in
            switch pattern {
            case .any: return true
            case .exact(let name): return host == name
            case .subdomains(let domain): return host.hasSuffix("." + domain)
            case .domainAndSubdomains(let domain): return host == domain || host.hasSuffix("." + domain)
            }
        }
    }

    private static func parsePattern(_ text: String) throws(HostPatternError) -> Pattern {
        if text == "*" { return .any }
        var body = Substring(text)
        var make: (String) -> Pattern = Pattern.exact
        if body.hasPrefix("*.") {
            body = body.dropFirst(2)
            make = Pattern.subdomains
        } else if body.hasPrefix(".") {
            body = body.dropFirst()
            make = Pattern.domainAndSubdomains
        }
        if body.hasPrefix("["), body.hasSuffix("]") {
            body = body.dropFirst().dropLast()
        }
        let valid = !body.isEmpty && body.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"):
                return true
            default:
                return false
            }
        }
        guard valid else { throw HostPatternError(pattern: text) }
        return make(String(body))
    }
}

public struct HostPatternError: Error, Equatable, CustomStringConvertible {
    public let pattern: String
    public var description: String {
        "invalid host pattern \"\(pattern)\" (expected host, .domain, *.domain or *)"
    }
}
