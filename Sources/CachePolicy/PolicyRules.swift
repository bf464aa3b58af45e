import HTTPRules
import NIOHTTP1
import Synchronization

/// One rule of a policy file: a match (every key given must match) and what it gives.
public struct PolicyRule: Sendable, Equatable {
    public struct Match: Sendable, Equatable {
        public var host: HostPattern?
        /// Path (without the query) tests, case-insensitive.
        public var pathPrefix: String?
        public var pathContains: String?
        public var pathSuffix: String?
        /// Searched in the path and query (`/a/b?x=1`).
        public var pathRegex: RulePattern?
        /// Searched in the whole URL.
        public var urlRegex: RulePattern?
        /// Upper-case methods; any of them.
        public var methods: [String]?
        /// Each named request header must be present with a value the pattern finds something in
        /// (repeated fields joined with `, `).
        public var headers: [(name: String, pattern: RulePattern)]
        /// Media types (`type/subtype`, `type/*`), tested once a `Content-Type` is known.
        public var contentTypes: [String]?

        public init(host: HostPattern? = nil, pathPrefix: String? = nil, pathContains: String? = nil,
                    pathSuffix: String? = nil, pathRegex: RulePattern? = nil, urlRegex: RulePattern? = nil,
                    methods: [String]? = nil, headers: [(name: String, pattern: RulePattern)] = [],
                    contentTypes: [String]? = nil) {
            self.host = host
            self.pathPrefix = pathPrefix?.lowercased()
            self.pathContains = pathContains?.lowercased()
            self.pathSuffix = pathSuffix?.lowercased()
            self.pathRegex = pathRegex
            self.urlRegex = urlRegex
            self.methods = methods?.map { $0.uppercased() }
            self.headers = headers
            self.contentTypes = contentTypes?.map { $0.lowercased() }
        }

        /// Everything but `contentTypes`.
        func matchesRequest(_ request: PolicyRequest, lowercasedPath path: String) -> Bool {
            if let host, !host.matches(lowercased: request.host) { return false }
            if let methods, !methods.contains(request.method) { return false }
            if let pathPrefix, !path.hasPrefix(pathPrefix) { return false }
            if let pathContains, !path.contains(pathContains) { return false }
            if let pathSuffix, !path.hasSuffix(pathSuffix) { return false }
            if let pathRegex, !pathRegex.matches(Self.pathAndQuery(request.url)) { return false }
            if let urlRegex, !urlRegex.matches(request.url) { return false }
            for (name, pattern) in headers {
                let values = request.headers[canonicalForm: name]
                guard !values.isEmpty, pattern.matches(values.joined(separator: ", ")) else { return false }
            }
            return true
        }

        static func pathAndQuery(_ url: String) -> String {
            AbsoluteURL(url)?.path ?? url
        }

        public static func == (left: Match, right: Match) -> Bool {
            left.host == right.host && left.pathPrefix == right.pathPrefix && left.pathContains == right.pathContains
                && left.pathSuffix == right.pathSuffix && left.pathRegex == right.pathRegex && left.urlRegex == right.urlRegex
                && left.methods == right.methods && left.contentTypes == right.contentTypes
                && left.headers.map(\.name) == right.headers.map(\.name) && left.headers.map(\.pattern) == right.headers.map(\.pattern)
        }
    }

    public var match: Match
    /// The policy and the rule's additions; `origin` names the rule.
    public var outcome: ResolvedPolicy

    public init(_ match: Match, _ outcome: ResolvedPolicy) {
        self.match = match
        self.outcome = outcome
    }
}

/// Rules in order, first match wins, then (with `includeDefaults`) the built-in table, then the
/// default policy: what a policy file describes.
public struct RuleSet: PolicyResolver, Equatable {
    public var rules: [PolicyRule]
    public var defaultPolicy: CachePolicy
    public var includeDefaults: Bool

    public init(rules: [PolicyRule] = [], defaultPolicy: CachePolicy = .standard, includeDefaults: Bool = true) {
        self.rules = rules
        self.defaultPolicy = defaultPolicy
        self.includeDefaults = includeDefaults
    }

    /// Every rule consulted, in order.
    public var effectiveRules: [PolicyRule] { includeDefaults ? rules + DefaultRules.table : rules }

    public func resolve(_ request: PolicyRequest) -> PolicyResolution {
        let path = Self.path(of: request.path)
        var pending: [ContentTypeRule] = []
        for rules in includeDefaults ? [rules, DefaultRules.table] : [rules] {
            for rule in rules where rule.match.matchesRequest(request, lowercasedPath: path) {
                guard let types = rule.match.contentTypes else { return PolicyResolution(rule.outcome, contentTypeRules: pending) }
                pending.append(ContentTypeRule(mediaTypes: types, outcome: rule.outcome))
            }
        }
        return PolicyResolution(ResolvedPolicy(defaultPolicy), contentTypeRules: pending)
    }

    static func path(of target: String) -> String {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        return path.lowercased()
    }
}

/// A resolver whose rules can be replaced while requests use it (SIGHUP): each request sees the
/// old rules or the new ones, never a mix.
public final class ReloadablePolicyResolver: PolicyResolver {
    private let current: Mutex<RuleSet>

    public init(_ rules: RuleSet) {
        current = Mutex(rules)
    }

    public var rules: RuleSet { current.withLock { $0 } }

    public func replace(with rules: RuleSet) {
        current.withLock { $0 = rules }
    }

    public func resolve(_ request: PolicyRequest) -> PolicyResolution {
        current.withLock { $0 }.resolve(request)
    }
}
