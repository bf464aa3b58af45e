import ArgumentParser
import CachePolicy
import CertificateAuthority
import CommandLineSupport
import NIOCore
import StorageSetup
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `passsage check-config`: reads every option (flags and environment) and the policy file as
/// `serve` would, checks the CA, prints the configuration that results and exits; it opens no
/// listener or store and writes nothing. Errors exit 2 with the message `serve` would give. For
/// init containers, `helm test` and CI.
struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the options and the policy file, print the configuration they give, change nothing.",
        discussion: "Takes the same options and environment variables as `serve`. Exit code 0: valid; 2: invalid."
    )

    @OptionGroup var serve: ServeCommand

    func run() async throws {
        let settings = try Settings(command: serve, environment: ProcessInfo.processInfo.environment)
        let origin: CertificateAuthorityStore.Origin
        do {
            origin = try CertificateAuthorityStore.check(bundle: settings.mitmCA, certificate: settings.mitmCACert,
                                                         directory: settings.caDirectory)
        } catch {
            throw UsageError("the CA: \(error)")
        }
        print(Self.report(settings, ca: origin).joined(separator: "\n"))
    }

    static func describe(_ amount: TimeAmount?) -> String {
        amount.map { DurationValue.describe(nanoseconds: $0.nanoseconds) } ?? "0 (off)"
    }

    /// The configuration as `key: value` lines, one rule per line; stable, for scripts and tests.
    static func report(_ settings: Settings, ca: CertificateAuthorityStore.Origin) -> [String] {
        let proxy = settings.proxy
        var lines = ["passsage: configuration is valid",
                     "proxy: \(proxy.bindHost):\(proxy.port)",
                     "health: " + (proxy.healthPort == 0 ? "off" : "\(proxy.healthHost):\(proxy.healthPort)")]
        switch ca {
        case .explicit: lines.append("ca: from --mitm-ca")
        case .loaded(let directory): lines.append("ca: loaded from \(directory)")
        case .generated(let directory): lines.append("ca: none yet; generated in \(directory) on first start")
        }
        lines += [
            "upstream-connect-timeout: \(describe(proxy.upstreamConnectTimeout))",
            "upstream-read-timeout: \(describe(proxy.upstreamReadTimeout))",
            "client-idle-timeout: \(describe(proxy.clientIdleTimeout))",
            "client-header-timeout: \(describe(proxy.clientHeaderTimeout))",
            "shutdown-grace-period: \(describe(proxy.shutdownGracePeriod))",
            "max-client-connections: " + (proxy.maxClientConnections.map(String.init) ?? "from the open-file limit"),
            "deny-upstream: " + (proxy.destinationPolicy.deniedNetworks.isEmpty ? "none"
                                 : proxy.destinationPolicy.deniedNetworks.map(\.description).joined(separator: ",")),
        ]
        let cache = settings.cache
        if let dataDirectory = settings.dataDirectory {
            if let remote = cache.xs3lerator {
                lines.append("cache: split, bodies from xs3lerator at \(remote.url)"
                             + (remote.authToken == nil ? " (no auth token)" : " (auth token set)"))
            } else if let bucket = cache.s3Bucket {
                lines.append("cache: embedded, chunks in S3 bucket \(bucket)" + (cache.s3Endpoint.map { " at \($0)" } ?? "")
                             + " (\(cache.s3Region)), disk cache under \(dataDirectory)")
            } else {
                lines.append("cache: embedded, objects under \(dataDirectory)")
            }
            if let elasticsearch = cache.elasticsearch {
                lines.append("metadata: Elasticsearch \(elasticsearch.url), index \(elasticsearch.index), "
                             + StorageOptions.describe(elasticsearch.authentication))
            } else {
                lines.append("metadata: SQLite under \(dataDirectory)")
            }
        } else {
            lines.append("cache: off (--no-cache)")
        }
        let rules = settings.policies
        lines.append("policy-file: " + (settings.policyFile.map { "\($0), \(rules.rules.count) rules" } ?? "none"))
        lines.append("default-policy: \(rules.defaultPolicy)")
        lines.append("built-in rules: " + (rules.includeDefaults ? "after the file's" : "off"))
        for rule in rules.rules {
            var line = "\(rule.outcome.origin): \(rule.outcome.policy)"
            if let timeouts = rule.outcome.timeouts {
                if let connect = timeouts.connect { line += ", connect timeout \(DurationValue.describe(connect))" }
                if let read = timeouts.read { line += ", read timeout \(DurationValue.describe(read))" }
            }
            if let window = rule.outcome.staleWhileRevalidate { line += ", stale-while-revalidate \(window)s" }
            if !rule.outcome.stripQuery.isEmpty { line += ", strip_query \(rule.outcome.stripQuery.joined(separator: ","))" }
            if rule.outcome.redirectFallback { line += ", redirect_fallback" }
            lines.append(line)
        }
        return lines
    }
}
