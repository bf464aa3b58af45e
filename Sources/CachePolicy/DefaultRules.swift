import HTTPRules

/// The built-in rule table (reference §5.4, extended), consulted after a policy file's own rules
/// when `include_defaults` is true (the default), and on its own without a policy file.
public enum DefaultRules {
    public static let table: [PolicyRule] = {
        var rules: [PolicyRule] = []
        func add(_ policy: CachePolicy, _ match: PolicyRule.Match, swr: Int64? = nil, stripQuery: [String] = [],
                 redirectFallback: Bool = false) {
            rules.append(PolicyRule(match, ResolvedPolicy(policy, staleWhileRevalidate: swr, stripQuery: stripQuery,
                                                          redirectFallback: redirectFallback,
                                                          origin: "default rule \(rules.count + 1)")))
        }
        func host(_ pattern: String) -> HostPattern {
            // The table's patterns are valid by construction.
            try! HostPattern(parsing: pattern, allowsGlob: true)
        }
        func regex(_ source: String) -> RulePattern { try! RulePattern(source) }

        // The proxy's own onboarding site.
        add(.noCache, .init(host: host("mitm.it")))
        // Cloud metadata and credentials services: never cached (the destination guard denies
        // most of them anyway).
        add(.noCache, .init(host: host("169.254.169.*")))
        add(.noCache, .init(host: host("169.254.170.*")))
        add(.noCache, .init(host: host("100.100.100.*")))
        add(.noCache, .init(host: host(".metadata.azure.internal")))
        add(.noCache, .init(host: host(".metadata.google.internal")))
        // Content-addressed: a by-hash name, a registry blob or a manifest by digest never
        // changes, so it is never revalidated. A registry that keeps blobs in object storage
        // answers a blob with a 307 to a presigned URL that expires: that redirect is kept only
        // as a fallback for when the registry is down (`redirect_fallback`).
        add(.noRefresh, .init(urlRegex: regex("/by-hash/[A-Za-z0-9]+/[A-Fa-f0-9]+$")))
        add(.noRefresh, .init(pathRegex: regex("^/v2/.+/(blobs|manifests)/sha256:[a-f0-9]{64}(\\?.*)?$"), methods: ["GET", "HEAD"]),
            redirectFallback: true)
        // Where such a redirect leads: the distribution registry's storage layout names blobs by
        // digest (in S3, GCS or Azure, behind a signed URL the key leaves out; Docker Hub's CDN
        // signs with a `verify` parameter of its own, which the digest makes irrelevant too).
        add(.noRefresh, .init(pathRegex: regex("/docker/registry/v2/blobs/sha256/[a-f0-9]{2}/[a-f0-9]{64}/data(\\?.*)?$"),
                              methods: ["GET", "HEAD"]), stripQuery: ["verify"])
        // Registry tags move: a manifest by tag is asked every time (conditionally, by its ETag)
        // and served from the cache when the registry is down; so is the API's `/v2/` ping.
        add(.alwaysUpstream, .init(pathRegex: regex("^/v2/.+/manifests/[^/]+$"), methods: ["GET", "HEAD"]))
        add(.staleIfError, .init(pathRegex: regex("^/v2/?$"), methods: ["GET", "HEAD"]))
        // Debian and Ubuntu archives. A pool file's name carries its version: it never changes.
        // The indexes change together, and InRelease names the others' hashes: one of them
        // served from the cache while another is new is apt's "Hash Sum mismatch", so every
        // index is asked upstream every time (conditionally) and served from the cache only
        // when the mirror fails. by-hash files (above) are the exception: their names are hashes.
        add(.noRefresh, .init(pathContains: "/pool/", pathSuffix: ".deb"))
        add(.noRefresh, .init(pathContains: "/pool/", pathSuffix: ".udeb"))
        add(.staleIfError, .init(pathSuffix: ".deb"))
        add(.staleIfError, .init(pathSuffix: ".udeb"))
        add(.alwaysUpstream, .init(pathRegex: regex(
            "/dists/.+/(InRelease|Release|Release\\.gpg|(Packages|Sources|Contents-[^/]+|Translation-[^/]+|Components-[^/]+|icons-[^/]+|Commands-[^/]+)(\\.(gz|xz|bz2|lzma|zst))?|Index)(\\?.*)?$")))
        for name in ["/packages", "/packages.gz", "/packages.xz", "/inrelease", "/release", "/release.gpg"] {
            add(.alwaysUpstream, .init(pathSuffix: name))
        }
        // PyPI: files are immutable; the simple index is served stale for a day while it is
        // revalidated in the background (pip always asks with max-age=0).
        add(.noRefresh, .init(host: host("files.pythonhosted.org"), pathPrefix: "/packages/"))
        add(.staleIfError, .init(host: host("files.pythonhosted.org")))
        add(.staleIfError, .init(host: host(".pypi.org"), pathPrefix: "/simple"), swr: 86_400)
        // AWS APIs (S3, STS, …) are signed per request and never cached; CodeArtifact is.
        add(.standard, .init(host: host("*.codeartifact.*.amazonaws.com")))
        // Presigned downloads (S3 objects, mostly) carry no credentials but their signature,
        // which the key leaves out: they are cached like any download.
        add(.standard, .init(host: host("*amazonaws.com"), urlRegex: regex("[?&]X-Amz-Signature="), methods: ["GET", "HEAD"]))
        add(.noCache, .init(host: host("*amazonaws.com")))
        add(.staleIfError, .init(host: host("mran.microsoft.com"), pathPrefix: "/snapshot/"))
        // Other package indexes' project pages (PEP 503/691: devpi, Artifactory, Nexus, GitLab):
        // revalidated as their origin says, answered from the cache when the index is down.
        add(.staleIfError, .init(pathRegex: regex("/\\+?simple/([^/?]+/)?(\\?.*)?$")))
        return rules
    }()
}
