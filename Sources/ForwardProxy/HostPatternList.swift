import HTTPRules

/// The `--no-intercept` host list: hosts that get a blind tunnel instead of TLS interception
/// (certificate-pinning clients). Patterns are `HostPattern`s without globs: `example.com`,
/// `.example.com` (domain and subdomains), `*.example.com` (subdomains only) or `*`.
public struct HostPatternList: Sendable, Equatable {
    let patterns: [HostPattern]

    public static let empty = HostPatternList(patterns: [])

    init(patterns: [HostPattern]) {
        self.patterns = patterns
    }

    /// Parses values that are each a comma- or space-separated list of patterns.
    public init(parsing values: [String]) throws(HostPatternError) {
        var patterns: [HostPattern] = []
        for value in values {
            for raw in value.split(whereSeparator: { $0 == "," || $0 == " " }) {
                patterns.append(try HostPattern(parsing: String(raw), allowsGlob: false))
            }
        }
        self.patterns = patterns
    }

    public var isEmpty: Bool { patterns.isEmpty }

    public func matches(_ host: String) -> Bool {
        let host = host.lowercased()
        return patterns.contains { $0.matches(lowercased: host) }
    }
}
