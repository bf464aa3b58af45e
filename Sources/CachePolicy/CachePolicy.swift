import HTTPRules
import NIOHTTP1

/// How passsage treats a request's cache entry (the original's five policies; `docs/policies.md`).
public enum CachePolicy: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// A stored entry is served whatever its age, never revalidated; a miss is fetched and stored.
    case noRefresh = "NoRefresh"
    /// RFC 9111 semantics for a shared cache.
    case standard = "Standard"
    /// Standard, and a stale entry answers when revalidating it fails (5xx, 404, 410, unreachable,
    /// timeout), whether or not the origin sent `stale-if-error`.
    case staleIfError = "StaleIfError"
    /// Always asked upstream (conditionally, when the entry has validators) and stored; the cache
    /// answers only when the upstream fails.
    case alwaysUpstream = "AlwaysUpstream"
    /// Forwarded to the origin, never stored or served from the cache.
    case noCache = "NoCache"

    /// The policy a name gives, case-insensitively and ignoring surrounding blanks; nil for others.
    public init?(name: some StringProtocol) {
        let wanted = String(name).trimmingASCIIWhitespace().lowercased()
        guard let found = Self.allCases.first(where: { $0.rawValue.lowercased() == wanted }) else { return nil }
        self = found
    }

    public var description: String { rawValue }

    /// Whether revalidation and stale serving follow RFC 9111 (Standard and StaleIfError).
    var followsRFC: Bool { self == .standard || self == .staleIfError }
}

/// Per-request timeouts a rule gives the data plane (`X-Xs3lerator-*-Timeout`); nil fields take
/// the data plane's defaults, `.zero` read timeouts disable the timeout.
public struct UpstreamTimeouts: Sendable, Equatable {
    public var connect: Duration?
    public var read: Duration?

    public init(connect: Duration? = nil, read: Duration? = nil) {
        self.connect = connect
        self.read = read
    }
}

/// The policy for one request and what its rule adds.
public struct ResolvedPolicy: Sendable, Equatable {
    public var policy: CachePolicy
    public var timeouts: UpstreamTimeouts?
    /// A stale-while-revalidate window of the operator's, in seconds (the original's forced SWR).
    public var staleWhileRevalidate: Int64?
    /// Query parameters (names, case-insensitive) left out of the cache key.
    public var stripQuery: [String]
    /// Keep redirects that carry no freshness as fallbacks (`redirect_fallback`): stored, never
    /// served while the upstream answers, served when it fails (`StoredResponse.isFallbackOnly`).
    public var redirectFallback: Bool
    /// What chose it, for logs: `rule 3`, `default rule 7`, `default policy`, `header`.
    public var origin: String

    public init(_ policy: CachePolicy, timeouts: UpstreamTimeouts? = nil, staleWhileRevalidate: Int64? = nil,
                stripQuery: [String] = [], redirectFallback: Bool = false, origin: String = "default policy") {
        self.policy = policy
        self.timeouts = timeouts
        self.staleWhileRevalidate = staleWhileRevalidate
        self.stripQuery = stripQuery
        self.redirectFallback = redirectFallback
        self.origin = origin
    }

    /// The policy a stored entry is served under. Under a `redirect_fallback` rule a temporary
    /// redirect is never replayed past its lifetime, whatever the rule's policy: a fallback-only
    /// one (no lifetime) always goes upstream first and answers only when the upstream fails
    /// (AlwaysUpstream); one with a lifetime is served while fresh, then revalidated, with the
    /// cache as fallback (StaleIfError in place of NoRefresh). A presigned URL it names expires.
    public func serving(_ stored: StoredResponse) -> ResolvedPolicy {
        guard redirectFallback, Storability.fallbackRedirectStatuses.contains(stored.status) else { return self }
        var adjusted = self
        if stored.isFallbackOnly {
            adjusted.policy = .alwaysUpstream
        } else if policy == .noRefresh {
            adjusted.policy = .staleIfError
        }
        return adjusted
    }
}

/// What rules see of a request.
public struct PolicyRequest: Sendable {
    public var method: String
    /// The absolute URL the proxy fetches.
    public var url: String
    /// Lower-case, without port.
    public var host: String
    /// The path without the query.
    public var path: String
    public var headers: HTTPHeaders

    public init(method: String, url: String, host: String, path: String, headers: HTTPHeaders = [:]) {
        self.method = method
        self.url = url
        self.host = host.lowercased()
        self.path = path
        self.headers = headers
    }
}

/// A request's policy, and the `content_type` rules that may still change it once a
/// `Content-Type` is known (the stored entry's, or the response's).
public struct PolicyResolution: Sendable {
    /// The first rule that matched without needing a content type, or the default.
    public var resolved: ResolvedPolicy
    /// Rules before that one which matched all but their `content_type`, in order.
    public var contentTypeRules: [ContentTypeRule]

    public init(_ resolved: ResolvedPolicy, contentTypeRules: [ContentTypeRule] = []) {
        self.resolved = resolved
        self.contentTypeRules = contentTypeRules
    }

    /// The policy a stored entry is decided under: its `Content-Type` settles the `content_type`
    /// rules, and a fallback-only redirect is always asked upstream first.
    public func resolved(for stored: StoredResponse) -> ResolvedPolicy {
        resolved(contentType: stored.headers.first(name: "content-type")).serving(stored)
    }

    /// The policy once the representation's `Content-Type` is known (nil: not known).
    public func resolved(contentType: String?) -> ResolvedPolicy {
        guard let contentType, !contentTypeRules.isEmpty else { return resolved }
        let mediaType = ContentTypeRule.mediaType(contentType)
        return contentTypeRules.first { $0.matches(mediaType: mediaType) }?.outcome ?? resolved
    }

    /// The policy a miss is decided and stored under: the request-time one, unless that is
    /// NoCache and a `content_type` rule may still let the response be stored.
    public var resolvedForMiss: ResolvedPolicy {
        guard resolved.policy == .noCache else { return resolved }
        return contentTypeRules.first { $0.outcome.policy != .noCache }?.outcome ?? resolved
    }

    /// Whether the cache must look the request up: it may be cached under some outcome.
    public var mayUseCache: Bool {
        resolved.policy != .noCache || contentTypeRules.contains { $0.outcome.policy != .noCache }
    }
}

/// A rule's `content_type` part and what the rule gives when it matches.
public struct ContentTypeRule: Sendable, Equatable {
    /// Lower-case media types; `type/*` matches the whole type.
    public var mediaTypes: [String]
    public var outcome: ResolvedPolicy

    public init(mediaTypes: [String], outcome: ResolvedPolicy) {
        self.mediaTypes = mediaTypes.map { $0.lowercased() }
        self.outcome = outcome
    }

    /// The media type of a `Content-Type` value, lower-case, without parameters.
    public static func mediaType(_ value: String) -> String {
        let type = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return String(type).trimmingASCIIWhitespace().lowercased()
    }

    public func matches(mediaType: String) -> Bool {
        mediaTypes.contains { pattern in
            if pattern.hasSuffix("/*") { return mediaType.hasPrefix(pattern.dropLast()) }
            return pattern == mediaType
        }
    }
}

/// Chooses the policy for a request.
public protocol PolicyResolver: Sendable {
    func resolve(_ request: PolicyRequest) -> PolicyResolution
}

/// Standard for every request: what the cache does without rules (`RuleSet` with no rules and no
/// defaults resolves the same).
public struct DefaultPolicyResolver: PolicyResolver {
    public init() {}

    public func resolve(_ request: PolicyRequest) -> PolicyResolution {
        PolicyResolution(ResolvedPolicy(.standard))
    }
}

extension PolicyRequest {
    /// A request for a URL alone (an invalidation's targets); nil when it is no absolute http(s) URL.
    public init?(method: String, url: String) {
        guard let parsed = AbsoluteURL(url) else { return nil }
        self.init(method: method, url: url, host: CacheKey.hostName(parsed.authority), path: parsed.path)
    }
}
