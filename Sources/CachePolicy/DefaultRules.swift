import HTTPRules

/// The built-in rule table (reference §5.4, extended), consulted after a policy file's own rules
/// when `include_defaults` is true (the default), and on its own without a policy file.
public enum DefaultRules {
    public static let table: [PolicyRule] = {
        var rules: [PolicyRule] = []
        func add(_ policy: CachePolicy, _ match: PolicyRule.Match, swr: Int64? = nil) {
            rules.append(PolicyRule(match, ResolvedPolicy(policy, staleWhileRevalidate: swr,
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
        // changes, so it is never revalidated.
        add(.noRefresh, .init(urlRegex: regex("/by-hash/[A-Za-z0-9]+/[A-Fa-f0-9]+$")))
        add(.noRefresh, .init(pathRegex: regex("^/v2/.+/(blobs|manifests)/sha256:[a-f0-9]{64}$"), methods: ["GET", "HEAD"]))
        // Debian and Ubuntu archives: packages and indexes answer from the cache when the mirror fails.
        add(.staleIfError, .init(pathSuffix: ".deb"))
        add(.staleIfError, .init(pathSuffix: ".udeb"))
        add(.staleIfError, .init(pathSuffix: "/packages"))
        add(.staleIfError, .init(pathSuffix: "/packages.gz"))
        add(.staleIfError, .init(pathSuffix: "/packages.xz"))
        add(.staleIfError, .init(pathSuffix: "/inrelease"))
        add(.staleIfError, .init(pathSuffix: "/release"))
        add(.staleIfError, .init(pathSuffix: "/release.gpg"))
        // PyPI: files are immutable; the simple index is served stale for a day while it is
        // revalidated in the background (pip always asks with max-age=0).
        add(.staleIfError, .init(host: host("files.pythonhosted.org")))
        add(.staleIfError, .init(host: host(".pypi.org"), pathPrefix: "/simple"), swr: 86_400)
        // AWS APIs (S3, STS, …) are signed per request and never cached; CodeArtifact is.
        add(.standard, .init(host: host("*.codeartifact.*.amazonaws.com")))
        // Presigned downloads (S3 objects, mostly) carry no credentials but their signature,
        // which the key leaves out: they are cached like any download.
        add(.standard, .init(host: host("*amazonaws.com"), urlRegex: regex("[?&]X-Amz-Signature="), methods: ["GET", "HEAD"]))
        add(.noCache, .init(host: host("*amazonaws.com")))
        add(.staleIfError, .init(host: host("mran.microsoft.com"), pathPrefix: "/snapshot/"))
        return rules
    }()
}
