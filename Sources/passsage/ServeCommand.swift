import ArgumentParser
import CachePolicy
import CertificateAuthority
import CommandLineSupport
import DataPlane
import DownloadEngine
import ForwardProxy
import Logging
import NIOCore
import OriginConnections
import PolicyFile
import ProxyCache
import RemoteDataPlane
import ServiceLifecycle
import StorageSetup
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the caching forward proxy (the default command).",
        discussion: "Every option can also be set through the environment variable named in its help."
    )

    @Option(name: [.customShort("p"), .long], help: "Proxy listen port; 0 picks a free one. [PASSSAGE_PORT, default 8080]")
    var port: Int?

    @Option(name: [.customShort("b"), .long], help: "Proxy listen address. [PASSSAGE_HOST, default 0.0.0.0]")
    var bind: String?

    @Option(help: "Health listener port; 0 disables it. [PASSSAGE_HEALTH_PORT, default 8082]")
    var healthPort: Int?

    @Option(help: "Health listener address. [PASSSAGE_HEALTH_HOST, default 0.0.0.0]")
    var healthHost: String?

    @Option(name: .customLong("mitm-ca"), help: "CA private key and certificate (or the key alone, with --mitm-ca-cert): inline PEM or a path. [PASSSAGE_MITM_CA]")
    var mitmCA: String?

    @Option(name: .customLong("mitm-ca-cert"), help: "CA certificate: inline PEM or a path; must match --mitm-ca's key. [PASSSAGE_MITM_CA_CERT]")
    var mitmCACert: String?

    @Option(name: .customLong("ca-dir"), help: "Where the CA lives when --mitm-ca is not given; generated on first start (mitmproxy file names). [PASSSAGE_CA_DIR, default ~/.mitmproxy]")
    var caDirectory: String?

    @Option(name: .customLong("upstream-ca-file"), help: "Extra PEM trust anchors for upstream TLS, added to the system store. [PASSSAGE_UPSTREAM_CA_FILE]")
    var upstreamCAFile: String?

    @Flag(name: .customLong("upstream-tls-skip-verify"), help: "Do not verify upstream certificates (unsafe). [PASSSAGE_UPSTREAM_TLS_SKIP_VERIFY]")
    var upstreamTLSSkipVerify = false

    @Option(help: "Upstream connect timeout, e.g. 10s. [PASSSAGE_UPSTREAM_CONNECT_TIMEOUT, default 10s]")
    var upstreamConnectTimeout: DurationValue?

    @Option(help: "Longest upstream silence before 504 (or an abort mid-body); 0 disables. [PASSSAGE_UPSTREAM_READ_TIMEOUT, default 60s]")
    var upstreamReadTimeout: DurationValue?

    @Option(help: "Close client connections idle this long. [PASSSAGE_CLIENT_IDLE_TIMEOUT, default 120s]")
    var clientIdleTimeout: DurationValue?

    @Option(help: "From a request's first byte, how long its headers (and a tunnel's TLS handshake) may take before 408. [PASSSAGE_CLIENT_HEADER_TIMEOUT, default 30s]")
    var clientHeaderTimeout: DurationValue?

    @Option(help: "Client connections served at once; more get 503. [PASSSAGE_MAX_CLIENT_CONNECTIONS, default (open-file limit - 64) / 2]")
    var maxClientConnections: Int?

    @Option(name: .customLong("deny-upstream"), help: ArgumentHelp("Upstream networks never connected to, checked after DNS; the proxy's own listeners are added unless empty. An empty value allows everything. [PASSSAGE_DENY_UPSTREAM, default 127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32]", valueName: "CIDR,..."))
    var denyUpstream: String?

    @Option(help: "On SIGTERM, how long in-flight requests may finish. [PASSSAGE_SHUTDOWN_GRACE_PERIOD, default 30s]")
    var shutdownGracePeriod: DurationValue?

    @Option(name: .customLong("public-proxy-url"), help: "Proxy URL written into proxy-env.sh, e.g. http://passsage.ci:8080. [PASSSAGE_PUBLIC_PROXY_URL]")
    var publicProxyURL: String?

    @Option(help: "Comma-separated hosts added to NO_PROXY by proxy-env.sh. [PASSSAGE_NO_PROXY_EXTRA]")
    var noProxyExtra: String?

    @Option(name: .customLong("no-intercept"), help: ArgumentHelp("Hosts tunnelled without TLS interception (pinned clients): host, .domain, *.domain; comma-separated or repeated. [PASSSAGE_NO_INTERCEPT]", valueName: "host-patterns"))
    var noIntercept: [String] = []

    @Option(name: .customLong("data-dir"), help: "Where the embedded cache keeps objects and its SQLite metadata. [PASSSAGE_DATA_DIR, default ~/.passsage]")
    var dataDirectory: String?

    @Option(help: "Bytes of cached objects kept under --data-dir; past the high watermark of it the least recently used are evicted. 0: the watermarks apply to the file system instead. [PASSSAGE_CACHE_SIZE, default 10GiB]")
    var cacheSize: ByteSizeValue?

    @Option(help: "Eviction stops below this usage of --cache-size, in percent. [PASSSAGE_CACHE_LOW_WATERMARK, default 85]")
    var cacheLowWatermark: Int?

    @Option(help: "Eviction starts at this usage of --cache-size, in percent. [PASSSAGE_CACHE_HIGH_WATERMARK, default 95]")
    var cacheHighWatermark: Int?

    @Option(help: "Bytes of small cached bodies also held in memory, so hot ones are answered without disk reads; 0 disables. [PASSSAGE_MEMORY_CACHE_SIZE, default 64MiB]")
    var memoryCacheSize: ByteSizeValue?

    @Option(help: "Largest body held in memory. [PASSSAGE_MEMORY_CACHE_MAX_OBJECT, default 256KiB]")
    var memoryCacheMaxObject: ByteSizeValue?

    @Option(help: "YAML rules choosing each request's policy, timeouts and key (docs/policies.md); reloaded on SIGHUP. [PASSSAGE_POLICY_FILE]")
    var policyFile: String?

    @Option(help: "Policy when no rule matches: NoRefresh, Standard, StaleIfError, AlwaysUpstream or NoCache; overrides the policy file's default_policy. [PASSSAGE_DEFAULT_POLICY, default Standard]")
    var defaultPolicy: String?

    @Flag(help: "Let a client's X-Passsage-Policy header choose its request's policy (trusted clients only). [PASSSAGE_ALLOW_POLICY_HEADER]")
    var allowPolicyHeader = false

    @Option(help: "A separate xs3lerator serving the cache's bodies (split mode); needs --elasticsearch-url. [PASSSAGE_XS3LERATOR_URL]")
    var xs3leratorURL: String?

    @Option(help: "Sent to xs3lerator in X-Xs3lerator-Auth; its --auth-token. [PASSSAGE_XS3LERATOR_AUTH_TOKEN]")
    var xs3leratorAuthToken: String?

    @Option(help: "Elasticsearch for the cache's metadata, shared with xs3lerator and other passsage replicas (https://user:password@host:9200 for Basic authentication); without it, SQLite under --data-dir. [PASSSAGE_ELASTICSEARCH_URL]")
    var elasticsearchURL: String?

    @Option(help: "Elasticsearch API key (the base64 id:key), sent as Authorization: ApiKey. [PASSSAGE_ELASTICSEARCH_API_KEY]")
    var elasticsearchAPIKey: String?

    @Option(help: "Index of the metadata documents. [PASSSAGE_ELASTICSEARCH_META_INDEX, default passsage_meta]")
    var elasticsearchMetaIndex: String?

    @Option(help: "Shards of the index, when passsage creates it. [PASSSAGE_ELASTICSEARCH_SHARDS, default 9]")
    var elasticsearchShards: Int?

    @Option(help: "Replicas of the index, when passsage creates it. [PASSSAGE_ELASTICSEARCH_REPLICAS, default 1]")
    var elasticsearchReplicas: Int?

    @Option(help: "How often batched last_access updates are sent, in seconds or e.g. 30s. [PASSSAGE_ELASTICSEARCH_FLUSH_INTERVAL, default 30]")
    var elasticsearchFlushInterval: DurationValue?

    @Option(help: "S3 bucket for the embedded data plane's chunks, with a disk cache under --data-dir; not used with --xs3lerator-url. [S3_BUCKET]")
    var s3Bucket: String?

    @Option(help: "S3 endpoint for MinIO, LocalStack or moto (path-style). [S3_ENDPOINT_URL, default AWS]")
    var s3Endpoint: String?

    @Option(help: "S3 region. [AWS_REGION, default us-east-1]")
    var s3Region: String?

    @Flag(name: .customLong("no-cache"), help: "Run as a plain forward proxy: nothing is cached. [PASSSAGE_NO_CACHE]")
    var noCache = false

    @Flag(name: [.customShort("v"), .long], help: "Debug logging. [PASSSAGE_VERBOSE]")
    var verbose = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings = try Settings(command: self, environment: environment)
        LoggingSetup.bootstrap(verbose: settings.verbose)
        let logger = Logger(label: "passsage")
        let descriptors = DescriptorLimit.raiseToHard()
        logger.notice("open-file limit: soft \(descriptors.soft) (was \(descriptors.previousSoft)), hard \(descriptors.hard)")
        var configuration = settings.proxy
        if configuration.maxClientConnections == nil {
            configuration.maxClientConnections = ProxyConfiguration.derivedMaxClientConnections(descriptorLimit: descriptors.soft)
        }
        var cacheOptions = settings.cache
        // One connection to xs3lerator per client request in flight, at most.
        if let limit = configuration.maxClientConnections { cacheOptions.xs3lerator?.maximumConnections = limit }
        let denied = configuration.destinationPolicy.deniedNetworks.map(\.description).joined(separator: ",")
        logger.notice("upstream destinations denied: \(denied.isEmpty ? "none (--deny-upstream is empty)" : denied + " and the proxy's own listeners")")

        let (authority, origin) = try CertificateAuthorityStore.resolve(
            bundle: settings.mitmCA, certificate: settings.mitmCACert, directory: settings.caDirectory)
        switch origin {
        case .explicit: logger.notice("CA from --mitm-ca")
        case .loaded(let directory): logger.notice("CA loaded from \(directory)")
        case .generated(let directory): logger.notice("CA generated in \(directory)")
        }
        let leaves = try LeafCertificateCache(authority: authority)
        var embedded: CacheBackend?
        if let dataDirectory = settings.dataDirectory {
            embedded = try await CacheBackend.open(dataDirectory: dataDirectory, options: cacheOptions, proxy: configuration,
                                                   environment: environment, logger: logger)
        }
        let policies = ReloadablePolicyResolver(settings.policies)
        if let file = settings.policyFile { logger.notice("policies from \(file): \(policies.rules.rules.count) rules") }
        var cacheSource: (@Sendable (DestinationGuard) -> any ResponseSource)?
        if let embedded {
            let cacheSettings = CacheSettings(policyHeaderAllowed: settings.allowPolicyHeader)
            cacheSource = { destinations in
                embedded.source(destinations: destinations, policies: policies, settings: cacheSettings)
            }
        }
        let service: ProxyService
        do {
            service = try ProxyService(configuration: configuration, leaves: leaves, logger: logger, cache: cacheSource)
        } catch {
            await embedded?.close()
            throw error
        }
        if let health = embedded?.health {
            service.readiness.reportDegradations { health.degradations() }
        }
        let reloader = PolicyReloader(resolver: policies, settings: settings, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service), .init(service: reloader)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            await embedded?.close()
            throw error
        }
        await embedded?.close()
    }
}

/// A duration option that must be above zero.
private func positive(_ value: DurationValue?, option: String) throws -> TimeAmount? {
    guard let value else { return nil }
    guard value.amount > .zero else { throw UsageError("invalid value '0' for \(option): must be positive") }
    return value.amount
}

/// The command line and environment, resolved and validated.
struct Settings {
    var proxy = ProxyConfiguration()
    var mitmCA: String?
    var mitmCACert: String?
    var caDirectory: String
    /// nil: no cache (`--no-cache`).
    var dataDirectory: String?
    var cache = CacheBackend.Options()
    var policyFile: String?
    var defaultPolicy: CachePolicy?
    var allowPolicyHeader: Bool
    /// The rules at start-up (`loadPolicies()` reads them again on SIGHUP).
    var policies = RuleSet()
    var verbose: Bool

    /// The shared stores and the remote data plane, when given.
    private static func readStorage(_ c: ServeCommand, env: EnvironmentResolver, into cache: inout CacheBackend.Options) throws {
        func nonEmpty(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        if let url = nonEmpty(try env.value(c.elasticsearchURL, "PASSSAGE_ELASTICSEARCH_URL", option: "--elasticsearch-url")) {
            let access = try StorageOptions.elasticsearchAccess(
                url: url, apiKey: try env.value(c.elasticsearchAPIKey, "PASSSAGE_ELASTICSEARCH_API_KEY", option: "--elasticsearch-api-key"),
                urlOption: "--elasticsearch-url", apiKeyOption: "--elasticsearch-api-key")
            var elasticsearch = CacheBackend.ElasticsearchOptions(url: access.url, authentication: access.authentication)
            if let index = nonEmpty(try env.value(c.elasticsearchMetaIndex, "PASSSAGE_ELASTICSEARCH_META_INDEX", option: "--elasticsearch-meta-index")) {
                elasticsearch.index = index
            }
            if let shards = try env.value(c.elasticsearchShards, "PASSSAGE_ELASTICSEARCH_SHARDS", option: "--elasticsearch-shards") {
                guard shards >= 1 else { throw UsageError("invalid value '\(shards)' for --elasticsearch-shards: must be at least 1") }
                elasticsearch.shards = shards
            }
            if let replicas = try env.value(c.elasticsearchReplicas, "PASSSAGE_ELASTICSEARCH_REPLICAS", option: "--elasticsearch-replicas") {
                guard replicas >= 0 else { throw UsageError("invalid value '\(replicas)' for --elasticsearch-replicas: must not be negative") }
                elasticsearch.replicas = replicas
            }
            if let interval = try positive(env.value(c.elasticsearchFlushInterval, "PASSSAGE_ELASTICSEARCH_FLUSH_INTERVAL",
                                                     option: "--elasticsearch-flush-interval"), option: "--elasticsearch-flush-interval") {
                elasticsearch.flushInterval = Duration(interval)
            }
            cache.elasticsearch = elasticsearch
        }
        if let url = nonEmpty(try env.value(c.xs3leratorURL, "PASSSAGE_XS3LERATOR_URL", option: "--xs3lerator-url")) {
            guard url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://"),
                  url.split(separator: "/", omittingEmptySubsequences: true).count >= 2 else {
                throw UsageError("invalid value '\(url)' for --xs3lerator-url: expected an http(s) URL such as http://xs3lerator:8090")
            }
            guard cache.elasticsearch != nil else {
                throw UsageError("--xs3lerator-url needs --elasticsearch-url: passsage and xs3lerator share the metadata index")
            }
            var remote = RemoteDataPlaneConfiguration(url: url)
            remote.authToken = nonEmpty(try env.value(c.xs3leratorAuthToken, "PASSSAGE_XS3LERATOR_AUTH_TOKEN", option: "--xs3lerator-auth-token"))
            cache.xs3lerator = remote
        }
        cache.s3Bucket = nonEmpty(try env.value(c.s3Bucket, "S3_BUCKET", option: "--s3-bucket"))
        cache.s3Endpoint = nonEmpty(try env.value(c.s3Endpoint, "S3_ENDPOINT_URL", option: "--s3-endpoint"))
        cache.s3Region = nonEmpty(try env.value(c.s3Region, "AWS_REGION", option: "--s3-region")) ?? "us-east-1"
    }

    /// The policy file's rules (or the built-in table), with `--default-policy` applied.
    func loadPolicies() throws -> RuleSet {
        var rules = RuleSet()
        if let policyFile {
            do {
                rules = try PolicyFile.load(path: policyFile)
            } catch {
                throw UsageError("\(error)")
            }
        }
        if let defaultPolicy { rules.defaultPolicy = defaultPolicy }
        return rules
    }

    init(command c: ServeCommand, environment: [String: String]) throws {
        let env = EnvironmentResolver(environment: environment)
        proxy.port = try PortOption.check(try env.value(c.port, "PASSSAGE_PORT", option: "--port") ?? 8080, option: "--port")
        proxy.bindHost = try env.value(c.bind, "PASSSAGE_HOST", option: "--bind") ?? "0.0.0.0"
        proxy.healthPort = try PortOption.check(
            try env.value(c.healthPort, "PASSSAGE_HEALTH_PORT", option: "--health-port") ?? 8082, option: "--health-port")
        proxy.healthHost = try env.value(c.healthHost, "PASSSAGE_HEALTH_HOST", option: "--health-host") ?? "0.0.0.0"
        mitmCA = try env.value(c.mitmCA, "PASSSAGE_MITM_CA", option: "--mitm-ca")
        mitmCACert = try env.value(c.mitmCACert, "PASSSAGE_MITM_CA_CERT", option: "--mitm-ca-cert")
        if mitmCACert != nil, mitmCA == nil {
            throw UsageError("--mitm-ca-cert needs --mitm-ca (the CA private key) as well")
        }
        let home = environment["HOME"] ?? "."
        caDirectory = try env.value(c.caDirectory, "PASSSAGE_CA_DIR", option: "--ca-dir") ?? home + "/.mitmproxy"
        if caDirectory.hasPrefix("~/") { caDirectory = home + caDirectory.dropFirst() }

        proxy.upstreamCAFile = try env.value(c.upstreamCAFile, "PASSSAGE_UPSTREAM_CA_FILE", option: "--upstream-ca-file")
        if let file = proxy.upstreamCAFile, !FileManager.default.isReadableFile(atPath: file) {
            throw UsageError("invalid value '\(file)' for --upstream-ca-file: not a readable file")
        }
        proxy.upstreamTLSSkipVerify = try env.flag(c.upstreamTLSSkipVerify, "PASSSAGE_UPSTREAM_TLS_SKIP_VERIFY",
                                                   option: "--upstream-tls-skip-verify")
        if let value = try positive(env.value(c.upstreamConnectTimeout, "PASSSAGE_UPSTREAM_CONNECT_TIMEOUT", option: "--upstream-connect-timeout"), option: "--upstream-connect-timeout") {
            proxy.upstreamConnectTimeout = value
        }
        if let value = try env.value(c.upstreamReadTimeout, "PASSSAGE_UPSTREAM_READ_TIMEOUT",
                                     option: "--upstream-read-timeout") {
            proxy.upstreamReadTimeout = value.amount == .zero ? nil : value.amount
        }
        if let value = try positive(env.value(c.clientIdleTimeout, "PASSSAGE_CLIENT_IDLE_TIMEOUT", option: "--client-idle-timeout"), option: "--client-idle-timeout") {
            proxy.clientIdleTimeout = value
        }
        if let value = try positive(env.value(c.clientHeaderTimeout, "PASSSAGE_CLIENT_HEADER_TIMEOUT", option: "--client-header-timeout"), option: "--client-header-timeout") {
            proxy.clientHeaderTimeout = value
        }
        if let value = try env.value(c.maxClientConnections, "PASSSAGE_MAX_CLIENT_CONNECTIONS",
                                     option: "--max-client-connections") {
            guard value > 0 else {
                throw UsageError("invalid value '\(value)' for --max-client-connections: must be positive")
            }
            proxy.maxClientConnections = value
        }
        // An empty value is meaningful here (allow everything), so the variable counts when set at all.
        if let text = c.denyUpstream ?? environment["PASSSAGE_DENY_UPSTREAM"] {
            do {
                proxy.destinationPolicy = try DestinationPolicy(parsing: text)
            } catch {
                throw UsageError("invalid value for --deny-upstream: \(error)")
            }
        }
        if let value = try env.value(c.shutdownGracePeriod, "PASSSAGE_SHUTDOWN_GRACE_PERIOD",
                                     option: "--shutdown-grace-period") {
            proxy.shutdownGracePeriod = value.amount
        }
        if let url = try env.value(c.publicProxyURL, "PASSSAGE_PUBLIC_PROXY_URL", option: "--public-proxy-url") {
            proxy.publicProxyURL = try OptionChecks.proxyURL(url, option: "--public-proxy-url")
        }
        if let extra = try env.value(c.noProxyExtra, "PASSSAGE_NO_PROXY_EXTRA", option: "--no-proxy-extra") {
            proxy.noProxyExtra = try OptionChecks.hostList(extra, option: "--no-proxy-extra")
        }
        let patterns = c.noIntercept.isEmpty ? (environment["PASSSAGE_NO_INTERCEPT"].map { [$0] } ?? []) : c.noIntercept
        do {
            proxy.noIntercept = try HostPatternList(parsing: patterns)
        } catch {
            throw UsageError("invalid value for --no-intercept: \(error)")
        }
        if try env.flag(c.noCache, "PASSSAGE_NO_CACHE", option: "--no-cache") {
            dataDirectory = nil
        } else {
            var directory = try env.value(c.dataDirectory, "PASSSAGE_DATA_DIR", option: "--data-dir") ?? home + "/.passsage"
            if directory.hasPrefix("~/") { directory = home + directory.dropFirst() }
            guard !directory.isEmpty else { throw UsageError("invalid value '' for --data-dir: must not be empty") }
            dataDirectory = directory
            let size = try env.value(c.cacheSize, "PASSSAGE_CACHE_SIZE", option: "--cache-size")?.bytes ?? 10 << 30
            cache.capacityBytes = size > 0 ? size : nil
            cache.lowWatermark = try env.value(c.cacheLowWatermark, "PASSSAGE_CACHE_LOW_WATERMARK", option: "--cache-low-watermark") ?? 85
            cache.highWatermark = try env.value(c.cacheHighWatermark, "PASSSAGE_CACHE_HIGH_WATERMARK", option: "--cache-high-watermark") ?? 95
            try StorageOptions.checkWatermarks(low: cache.lowWatermark, high: cache.highWatermark,
                                               lowOption: "--cache-low-watermark", highOption: "--cache-high-watermark")
            let memory = try env.value(c.memoryCacheSize, "PASSSAGE_MEMORY_CACHE_SIZE", option: "--memory-cache-size")?.bytes
            cache.memoryBytes = Int(min(memory ?? 64 << 20, 1 << 40))
            let largest = try env.value(c.memoryCacheMaxObject, "PASSSAGE_MEMORY_CACHE_MAX_OBJECT", option: "--memory-cache-max-object")?.bytes
            cache.memoryObjectLimit = Int(min(largest ?? 256 << 10, 1 << 40))
        }
        if dataDirectory != nil {
            try Self.readStorage(c, env: env, into: &cache)
        }
        policyFile = try env.value(c.policyFile, "PASSSAGE_POLICY_FILE", option: "--policy-file")
        if let name = try env.value(c.defaultPolicy, "PASSSAGE_DEFAULT_POLICY", option: "--default-policy") {
            guard let policy = CachePolicy(name: name) else {
                let names = CachePolicy.allCases.map(\.rawValue).joined(separator: ", ")
                throw UsageError("invalid value '\(name)' for --default-policy: expected one of \(names)")
            }
            defaultPolicy = policy
        }
        // Only the listed true values enable it (bug 3: the original took "0" for yes).
        allowPolicyHeader = try env.flag(c.allowPolicyHeader, "PASSSAGE_ALLOW_POLICY_HEADER", option: "--allow-policy-header")
        verbose = try env.flag(c.verbose, "PASSSAGE_VERBOSE", option: "--verbose")
        policies = try loadPolicies()
    }
}
