/// How passsage treats a request's cache entry. Part 1 has RFC 9111 (`standard`) and `noCache`;
/// the rule file and the other policies (NoRefresh, StaleIfError, AlwaysUpstream) plug in as more
/// cases and resolvers, without changing the shape of `ResolvedPolicy` or `PolicyResolver`.
public enum CachePolicy: String, Sendable, Equatable, CaseIterable {
    /// RFC 9111 semantics for a shared cache.
    case standard = "Standard"
    /// Forwarded to the origin, never stored or served from the cache.
    case noCache = "NoCache"
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

/// The policy for one request and what comes with it.
public struct ResolvedPolicy: Sendable, Equatable {
    public var policy: CachePolicy
    public var timeouts: UpstreamTimeouts?

    public init(_ policy: CachePolicy, timeouts: UpstreamTimeouts? = nil) {
        self.policy = policy
        self.timeouts = timeouts
    }
}

/// Chooses the policy for a request from its method and URL.
public protocol PolicyResolver: Sendable {
    func resolve(method: String, url: String, host: String) -> ResolvedPolicy
}

/// The default without a rule file: unsafe methods are never cached, everything else is Standard.
public struct DefaultPolicyResolver: PolicyResolver {
    public init() {}

    public func resolve(method: String, url: String, host: String) -> ResolvedPolicy {
        CacheDecisions.cachedMethods.contains(method) ? ResolvedPolicy(.standard) : ResolvedPolicy(.noCache)
    }
}
