@testable import CachePolicy
import HTTPRules
import NIOHTTP1
import Testing

/// The five policies' decision tables, the operator's stale-while-revalidate window, rule matching
/// and the built-in table, as plain values.
@Suite("Policies and rules")
struct PolicyTests {
    static let received = DecisionTests.received
    static let etag = DecisionTests.etag

    static func decide(_ policy: CachePolicy, request: [(String, String)] = [], swr: Int64? = nil,
                       _ entry: StoredResponse?, at offset: Int64 = 0) -> CacheDecision {
        DecisionTests.decide(request: request, policy: policy, staleWhileRevalidate: swr, entry, at: received + offset)
    }

    static func stored(_ fields: [(String, String)]) -> StoredResponse { DecisionTests.stored(fields) }

    static let validated = Validators(entityTag: "\"v1\"", lastModified: nil)

    @Test("policy names are case-insensitive; unknown names are none")
    func names() {
        #expect(CachePolicy(name: " norefresh ") == .noRefresh)
        #expect(CachePolicy(name: "STALEIFERROR") == .staleIfError)
        #expect(CachePolicy(name: "AlwaysUpstream") == .alwaysUpstream)
        #expect(CachePolicy(name: "no-cache") == nil)
        #expect(CachePolicy.allCases.count == 5)
    }

    @Test("NoRefresh: a stored entry is served at any age, whatever the client asks; a miss is fetched")
    func noRefresh() {
        let entry = Self.stored([("Cache-Control", "max-age=10"), Self.etag])
        #expect(Self.decide(.noRefresh, entry) == .hit(.fresh))
        #expect(Self.decide(.noRefresh, entry, at: 100_000) == .hit(.stalePolicy))
        #expect(Self.decide(.noRefresh, request: [("Cache-Control", "no-cache")], entry, at: 100) == .hit(.stalePolicy))
        #expect(Self.decide(.noRefresh, Self.stored([("Cache-Control", "no-cache")]), at: 100) == .hit(.stalePolicy))
        #expect(Self.decide(.noRefresh, nil) == .miss)
        #expect(Self.decide(.noRefresh, request: [("Cache-Control", "no-store")], entry) == .bypass(.request))
        #expect(Self.decide(.noRefresh, request: [("Cache-Control", "only-if-cached")], nil) == .gatewayTimeout)
    }

    @Test("StaleIfError: Standard's decisions, and every revalidation or refetch falls back unless the origin forbade stale use")
    func staleIfError() {
        let entry = Self.stored([("Cache-Control", "max-age=10"), Self.etag])
        #expect(Self.decide(.staleIfError, entry) == .hit(.fresh))
        #expect(Self.decide(.staleIfError, entry, at: 20) == .revalidate(Self.validated, staleIfError: true, reason: .stale))
        #expect(Self.decide(.standard, entry, at: 20) == .revalidate(Self.validated, staleIfError: false, reason: .stale),
                "bug 1: Standard does not serve stale on errors without a stale-if-error directive")
        #expect(Self.decide(.staleIfError, Self.stored([("Cache-Control", "max-age=10")]), at: 20)
            == .refetch(.stale, staleIfError: true))
        #expect(Self.decide(.staleIfError, request: [("Cache-Control", "no-cache")], entry)
            == .revalidate(Self.validated, staleIfError: true, reason: .request))
        for forbidding in ["max-age=10, must-revalidate", "max-age=10, proxy-revalidate", "s-maxage=10", "no-cache"] {
            let strict = Self.stored([("Cache-Control", forbidding), Self.etag])
            guard case .revalidate(_, let fallback, _) = Self.decide(.staleIfError, strict, at: 20) else {
                Issue.record("\(forbidding): revalidate")
                continue
            }
            #expect(!fallback, "\(forbidding) forbids stale use")
        }
    }

    @Test("AlwaysUpstream: upstream first, conditionally with validators, the cache as fallback (bug 2)")
    func alwaysUpstream() {
        let entry = Self.stored([("Cache-Control", "max-age=600"), Self.etag])
        #expect(Self.decide(.alwaysUpstream, entry) == .revalidate(Self.validated, staleIfError: true, reason: .policy),
                "a fresh entry is asked upstream too")
        #expect(Self.decide(.alwaysUpstream, entry, at: 1000) == .revalidate(Self.validated, staleIfError: true, reason: .stale))
        let noValidators = Self.stored([("Cache-Control", "max-age=600")])
        #expect(Self.decide(.alwaysUpstream, noValidators) == .refetch(.policy, staleIfError: true))
        let strict = Self.stored([("Cache-Control", "max-age=10, must-revalidate")])
        #expect(Self.decide(.alwaysUpstream, strict, at: 20) == .refetch(.stale, staleIfError: false),
                "a stale must-revalidate entry is no fallback")
        #expect(Self.decide(.alwaysUpstream, strict) == .refetch(.policy, staleIfError: true), "a fresh one is")
        #expect(Self.decide(.alwaysUpstream, nil) == .miss)
        #expect(Self.decide(.alwaysUpstream, request: [("Cache-Control", "only-if-cached")], entry) == .hit(.fresh),
                "only-if-cached keeps the request off the network")
    }

    @Test("NoCache: nothing is looked up or stored")
    func noCache() {
        #expect(Self.decide(.noCache, Self.stored([("Cache-Control", "max-age=600")])) == .bypass(.policy))
        #expect(Self.decide(.noCache, nil) == .bypass(.policy))
    }

    @Test("the operator's stale-while-revalidate window: stale (or asked to validate) within it, served and refreshed in the background")
    func forcedStaleWhileRevalidate() {
        let entry = Self.stored([("Cache-Control", "max-age=10"), Self.etag])
        #expect(Self.decide(.standard, swr: 60, entry, at: 70) == .staleWhileRevalidate)
        #expect(Self.decide(.staleIfError, swr: 60, entry, at: 70) == .staleWhileRevalidate)
        #expect(Self.decide(.standard, swr: 60, entry, at: 71) == .revalidate(Self.validated, staleIfError: false, reason: .stale))
        #expect(Self.decide(.standard, request: [("Cache-Control", "max-age=0")], swr: 60, entry) == .staleWhileRevalidate,
                "pip's max-age=0 on a fresh index page: answered now, refreshed behind")
        #expect(Self.decide(.standard, swr: 60, entry) == .hit(.fresh))
        #expect(Self.decide(.standard, swr: 60, Self.stored([("Cache-Control", "max-age=10")]), at: 30)
            == .refetch(.stale, staleIfError: false), "no validators: nothing to refresh in the background with")
        #expect(Self.decide(.standard, swr: 60, Self.stored([("Cache-Control", "max-age=10, must-revalidate"), Self.etag]), at: 30)
            == .revalidate(Self.validated, staleIfError: false, reason: .stale), "the origin's prohibition wins")
        #expect(Self.decide(.noRefresh, swr: 60, entry, at: 30) == .hit(.stalePolicy))
    }

    // MARK: Rules

    static func request(_ url: String, method: String = "GET", headers: [(String, String)] = []) -> PolicyRequest {
        var request = PolicyRequest(method: method, url: url)!
        request.headers = HTTPHeaders(headers)
        return request
    }

    static func rule(_ match: PolicyRule.Match, _ policy: CachePolicy, _ name: String) -> PolicyRule {
        PolicyRule(match, ResolvedPolicy(policy, origin: name))
    }

    @Test("host patterns: exact, .suffix, *.subdomains and globs, case-insensitive")
    func hostPatterns() throws {
        func host(_ text: String) throws -> HostPattern { try HostPattern(parsing: text, allowsGlob: true) }
        #expect(try host("PyPI.org").matches(lowercased: "pypi.org"))
        #expect(try !host("pypi.org").matches(lowercased: "test.pypi.org"))
        #expect(try host(".pypi.org").matches(lowercased: "pypi.org"))
        #expect(try host(".pypi.org").matches(lowercased: "test.pypi.org"))
        #expect(try !host(".pypi.org").matches(lowercased: "notpypi.org"))
        #expect(try host("*.pythonhosted.org").matches(lowercased: "files.pythonhosted.org"))
        #expect(try !host("*.pythonhosted.org").matches(lowercased: "pythonhosted.org"))
        #expect(try host("mirror-*.example.com").matches(lowercased: "mirror-eu-1.example.com"))
        #expect(try !host("mirror-*.example.com").matches(lowercased: "mirror.example.com"))
        #expect(try host("10.0.?.1").matches(lowercased: "10.0.7.1"))
        #expect(try host("*").matches(lowercased: "anything"))
        #expect(throws: HostPatternError.self) { try HostPattern(parsing: "bad host", allowsGlob: true) }
        #expect(throws: HostPatternError.self) { try HostPattern(parsing: "ex*ample.com", allowsGlob: false) }
    }

    @Test("every key of a match must hold; the first matching rule wins; then the built-in table; then the default")
    func ruleOrder() throws {
        let rules = RuleSet(rules: [
            Self.rule(.init(host: try HostPattern(parsing: ".example.com", allowsGlob: true), pathPrefix: "/assets/",
                            methods: ["GET"]), .noRefresh, "assets"),
            Self.rule(.init(pathSuffix: ".CSV"), .alwaysUpstream, "csv"),
            Self.rule(.init(pathContains: "/private/"), .noCache, "private"),
            Self.rule(.init(headers: [(name: "User-Agent", pattern: try RulePattern("^pip/"))]), .staleIfError, "pip"),
            Self.rule(.init(pathRegex: try RulePattern(#"^/v\d+/items\?"#)), .noRefresh, "regex"),
        ], defaultPolicy: .standard, includeDefaults: true)
        func origin(_ url: String, method: String = "GET", headers: [(String, String)] = []) -> String {
            rules.resolve(Self.request(url, method: method, headers: headers)).resolved.origin
        }
        #expect(origin("https://cdn.example.com/assets/a.js") == "assets")
        #expect(origin("https://cdn.example.com/ASSETS/a.js") == "assets", "paths match case-insensitively")
        #expect(origin("https://cdn.example.com/assets/a.js", method: "HEAD") == "default policy", "method must match")
        #expect(origin("https://other.test/assets/a.js") == "default policy", "host must match")
        #expect(origin("https://a.test/data/x.csv?v=2") == "csv", "suffixes test the path, not the query")
        #expect(origin("https://cdn.example.com/assets/private/x.csv") == "assets", "first match wins")
        #expect(origin("https://a.test/x", headers: [("User-Agent", "pip/24.0")]) == "pip")
        #expect(origin("https://a.test/x", headers: [("User-Agent", "curl/8")]) == "default policy")
        #expect(origin("https://a.test/v2/items?id=1") == "regex")
        #expect(origin("https://deb.debian.org/debian/pool/main/a/a_1.deb").hasPrefix("default rule"))
        let noDefaults = RuleSet(rules: rules.rules, defaultPolicy: .noCache, includeDefaults: false)
        let resolved = noDefaults.resolve(Self.request("https://deb.debian.org/debian/pool/main/a/a_1.deb")).resolved
        #expect(resolved.policy == .noCache && resolved.origin == "default policy")
    }

    @Test("the built-in table: apt, PyPI, registries, metadata services, AWS APIs")
    func defaultTable() {
        let rules = RuleSet()
        func policy(_ url: String) -> CachePolicy { rules.resolve(Self.request(url)).resolved.policy }
        // apt: pool files never change; every index is asked upstream (a mix of old and new ones
        // is a hash mismatch); by-hash names are hashes.
        #expect(policy("http://deb.debian.org/debian/pool/main/c/curl/curl_8.deb") == .noRefresh)
        #expect(policy("https://apt.example.com/stable/tool_1.0.deb") == .staleIfError, "a .deb outside a pool")
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/InRelease") == .alwaysUpstream)
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/main/binary-amd64/Packages.xz") == .alwaysUpstream)
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/main/i18n/Translation-en.bz2") == .alwaysUpstream)
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/main/dep11/Components-amd64.yml.gz") == .alwaysUpstream)
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/main/dep11/icons-64x64.tar.gz") == .alwaysUpstream)
        #expect(policy("http://archive.ubuntu.com/ubuntu/dists/noble/main/installer-amd64/current/images/MANIFEST") == .standard)
        #expect(policy("https://download.example.com/repo/./Packages.gz") == .alwaysUpstream, "a flat repository")
        #expect(policy("http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0123abcdef") == .noRefresh)
        // Registries: content by digest never changes; tags and the ping are asked every time.
        let blob = rules.resolve(Self.request("https://registry-1.docker.io/v2/library/alpine/blobs/sha256:"
                                              + String(repeating: "ab", count: 32))).resolved
        #expect(blob.policy == .noRefresh && blob.redirectFallback, "its presigned redirect is kept as a fallback")
        #expect(policy("https://ghcr.io/v2/org/img/manifests/sha256:" + String(repeating: "0f", count: 32)) == .noRefresh)
        #expect(policy("https://mirror.example/v2/library/alpine/blobs/sha256:" + String(repeating: "ab", count: 32) + "?ns=docker.io")
            == .noRefresh, "a containerd mirror's namespace parameter")
        #expect(policy("https://ghcr.io/v2/org/img/manifests/latest") == .alwaysUpstream, "tags move")
        #expect(policy("https://ghcr.io/v2/") == .staleIfError)
        #expect(policy("http://s3.test:9000/bucket/docker/registry/v2/blobs/sha256/ab/" + String(repeating: "ab", count: 32)
                       + "/data?X-Amz-Signature=ab&X-Amz-Credential=c") == .noRefresh, "a registry's storage, by digest")
        #expect(!rules.resolve(Self.request("https://ghcr.io/v2/org/img/manifests/latest")).resolved.redirectFallback)
        let hubBlob = rules.resolve(Self.request("https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/ab/"
                                                 + String(repeating: "ab", count: 32) + "/data?verify=1700000000-abc")).resolved
        #expect(hubBlob.policy == .noRefresh && hubBlob.stripQuery == ["verify"], "Docker Hub's CDN signature is not part of the key")
        // PyPI and other indexes.
        #expect(policy("https://files.pythonhosted.org/packages/a/b/x.whl") == .noRefresh)
        #expect(policy("https://devpi.example.com/root/pypi/+simple/x/") == .staleIfError)
        #expect(policy("https://example.com/docs/simple/index.html") == .standard, "a page, not an index")
        #expect(policy("https://nexus.example.com/repository/pypi/simple/requests/") == .staleIfError)
        #expect(policy("https://nexus.example.com/repository/pypi/simple/") == .staleIfError)
        #expect(policy("https://nexus.example.com/repository/pypi/simple/requests/x.whl") == .standard)
        let simple = rules.resolve(Self.request("https://pypi.org/simple/requests/")).resolved
        #expect(simple.policy == .staleIfError && simple.staleWhileRevalidate == 86_400)
        #expect(policy("http://169.254.169.254/latest/meta-data/") == .noCache)
        #expect(policy("http://metadata.google.internal/computeMetadata/v1/") == .noCache)
        #expect(policy("https://sts.amazonaws.com/?Action=GetCallerIdentity") == .noCache)
        #expect(policy("https://my-bucket.s3.us-east-1.amazonaws.com/pkg.deb") == .staleIfError, "order: .deb first")
        #expect(policy("https://my-bucket.s3.amazonaws.com/model.bin?X-Amz-Signature=ab&X-Amz-Credential=c") == .standard,
                "presigned S3 downloads are cached")
        #expect(policy("https://d-1.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/x/") == .standard)
        #expect(policy("https://example.com/") == .standard)
    }

    @Test("content_type rules wait for a Content-Type: the stored entry's or the response's")
    func contentTypeRules() {
        let rules = RuleSet(rules: [
            Self.rule(.init(contentTypes: ["text/html"]), .noCache, "html"),
            Self.rule(.init(host: try! HostPattern(parsing: "a.test", allowsGlob: true), contentTypes: ["application/*"]),
                      .noRefresh, "binaries"),
        ], defaultPolicy: .standard, includeDefaults: false)
        let resolution = rules.resolve(Self.request("https://a.test/x"))
        #expect(resolution.resolved.policy == .standard)
        #expect(resolution.contentTypeRules.count == 2)
        #expect(resolution.resolved(contentType: "text/html; charset=utf-8").policy == .noCache)
        #expect(resolution.resolved(contentType: "Application/Octet-Stream").policy == .noRefresh)
        #expect(resolution.resolved(contentType: "image/png").policy == .standard)
        #expect(resolution.resolved(contentType: nil).policy == .standard)
        #expect(rules.resolve(Self.request("https://b.test/x")).contentTypeRules.count == 1)
        let onlyHTML = RuleSet(rules: [Self.rule(.init(contentTypes: ["application/json"]), .standard, "json")],
                               defaultPolicy: .noCache, includeDefaults: false).resolve(Self.request("https://a.test/x"))
        #expect(onlyHTML.mayUseCache && onlyHTML.resolvedForMiss.policy == .standard,
                "under a NoCache default, a content_type rule that caches still needs the lookup")
        #expect(!RuleSet(defaultPolicy: .noCache, includeDefaults: false).resolve(Self.request("https://a.test/x")).mayUseCache)
    }

    @Test("a reloadable resolver answers with the old rules or the new, whole")
    func reloadable() {
        let resolver = ReloadablePolicyResolver(RuleSet(defaultPolicy: .standard, includeDefaults: false))
        #expect(resolver.resolve(Self.request("https://a.test/")).resolved.policy == .standard)
        resolver.replace(with: RuleSet(defaultPolicy: .noRefresh, includeDefaults: false))
        #expect(resolver.resolve(Self.request("https://a.test/")).resolved.policy == .noRefresh)
    }
}

@Suite("Presigned URL keys")
struct SignedURLKeyTests {
    static func key(_ url: String, stripping: [String] = []) -> String { CacheKey(url: url, stripping: stripping)!.normalizedURL }

    @Test("AWS SigV4: two differently signed URLs of one object share a key; other parameters stay")
    func sigV4() {
        let first = "https://b.s3.us-east-1.amazonaws.com/model.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIA%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261202T000000Z"
            + "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=aaaa&versionId=7"
        let second = "https://b.s3.us-east-1.amazonaws.com/model.bin?versionId=7&X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=ASIA%2F20261203%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261203T101010Z"
            + "&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok&X-Amz-Signature=bbbb"
        #expect(Self.key(first) == "https://b.s3.us-east-1.amazonaws.com/model.bin?versionId=7")
        #expect(CacheKey(url: first)!.id == CacheKey(url: second)!.id)
        let fromAnSDK = "https://b.s3.us-east-1.amazonaws.com/model.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=AKIA%2F20261204%2Fus-east-1%2Fs3%2Faws4_request"
            + "&X-Amz-Date=20261204T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
            + "&X-Amz-User-Agent=aws-sdk-js%2F2.1&X-Amz-Signature=cccc&versionId=7"
        #expect(CacheKey(url: fromAnSDK)!.id == CacheKey(url: first)!.id, "the payload hash and the SDK's user agent go too")
        #expect(Self.key("https://b.s3.amazonaws.com/x?X-Amz-Signature=a") == "https://b.s3.amazonaws.com/x?X-Amz-Signature=a",
                "a lone X-Amz-Signature is no SigV4 URL")
        #expect(Self.key("https://b.s3.amazonaws.com/x?x-amz-request-payer=requester&X-Amz-Signature=a&X-Amz-Credential=c")
            == "https://b.s3.amazonaws.com/x?x-amz-request-payer=requester", "only the signing parameters go")
    }

    @Test("CloudFront, Azure SAS, GCS and SigV2 signatures are recognised with their companions")
    func otherSchemes() {
        #expect(Self.key("https://d1.cloudfront.net/f.tgz?Expires=1&Signature=s~&Key-Pair-Id=K1") == "https://d1.cloudfront.net/f.tgz")
        #expect(Self.key("https://d1.cloudfront.net/f.tgz?Policy=eyJ&Signature=s&Key-Pair-Id=K1&v=2") == "https://d1.cloudfront.net/f.tgz?v=2")
        #expect(Self.key("https://acct.blob.core.windows.net/c/b.bin?sv=2022-11-02&st=2026-12-01&se=2026-12-03&sr=b&sp=r&sig=abc%3D&rscd=attachment")
            == "https://acct.blob.core.windows.net/c/b.bin?rscd=attachment", "response overrides stay")
        #expect(Self.key("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=c&X-Goog-Date=d&X-Goog-Expires=60&X-Goog-SignedHeaders=host&X-Goog-Signature=ff")
            == "https://storage.googleapis.com/b/o")
        #expect(Self.key("https://b.s3.amazonaws.com/o?AWSAccessKeyId=AK&Expires=1&Signature=x") == "https://b.s3.amazonaws.com/o")
    }

    @Test("bug 17: generic names are stripped only where their scheme is recognised, so unrelated URLs never collide")
    func noCollisions() {
        let first = CacheKey(url: "https://api.example.com/doc?signature=alice&policy=1")!
        let second = CacheKey(url: "https://api.example.com/doc?signature=bob&policy=1")!
        #expect(first.id != second.id)
        #expect(CacheKey(url: "https://a.test/x?sp=r&sig=1")!.id != CacheKey(url: "https://a.test/x?sp=r&sig=2")!.id,
                "sig without sv is no Azure SAS")
        #expect(CacheKey(url: "https://a.test/x?expires=1")!.id != CacheKey(url: "https://a.test/x?expires=2")!.id)
    }

    @Test("a rule's strip_query names leave the key too, case-insensitively")
    func ruleParameters() {
        #expect(Self.key("https://hf.test/m.bin?Token=abc&rev=main", stripping: ["token"]) == "https://hf.test/m.bin?rev=main")
        #expect(CacheKey(url: "https://a.test/x?t=1", stripping: ["t"])!.id == CacheKey(url: "https://a.test/x?t=2", stripping: ["t"])!.id)
        #expect(Self.key("https://a.test/x?t=1") == "https://a.test/x?t=1", "without the rule it stays")
    }
}
