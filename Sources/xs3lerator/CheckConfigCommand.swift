import ArgumentParser
import CommandLineSupport
import DataPlane
import DownloadPlanning
import StorageSetup
import Xs3leratorService
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `xs3lerator check-config`: reads every option (flags and environment) as `serve` would,
/// prints the configuration that results and exits; it opens no listener or store. Errors exit
/// 2 with the message `serve` would give.
struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the options, print the configuration they give, open nothing.",
        discussion: "Takes the same options and environment variables as `serve`. Exit code 0: valid; 2: invalid."
    )

    @OptionGroup var serve: ServeCommand

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let env = EnvironmentResolver(environment: environment)
        let (service, dataPlane) = try serve.makeConfiguration(env, environment: environment)
        _ = try env.flag(serve.verbose, "XS3_VERBOSE", option: "--verbose")
        let storage = try serve.storage.options(env, environment: environment, passthrough: dataPlane.passthrough)
        print(Self.report(service, dataPlane, storage).joined(separator: "\n"))
    }

    /// The configuration as `key: value` lines; stable, for scripts and tests.
    static func report(_ service: Xs3leratorConfiguration, _ dataPlane: DataPlaneConfiguration,
                       _ storage: StorageOptions) -> [String] {
        let download = dataPlane.download
        var lines = [
            "xs3lerator: configuration is valid",
            "listen: \(service.bindHost):\(service.port)",
            "auth: " + (service.authToken == nil ? "off" : "token"),
            "upstream-connect-timeout: \(DurationValue.describe(dataPlane.upstreamConnectTimeout))",
            "upstream-read-timeout: " + (dataPlane.upstreamReadTimeout.map(DurationValue.describe) ?? "0 (off)"),
            "client-head-timeout: \(DurationValue.describe(service.requestHeadTimeout))",
            "client-write-stall-timeout: \(DurationValue.describe(service.writeStallTimeout))",
            "shutdown-grace-period: \(DurationValue.describe(service.shutdownGracePeriod))",
            "chunk-size: \(ByteSize.describe(download.chunkSize))",
            "range-size: \(ByteSize.describe(download.rangeSize))",
            "http-concurrency: \(download.concurrency)",
            "max-range-workers: \(dataPlane.maximumRangeWorkers)",
            "read-ahead: \(ByteSize.describe(download.readAhead))",
            "temp-dir: \(download.temporaryDirectory)",
        ]
        if storage.passthrough {
            lines.append("storage: none (--passthrough)")
        } else {
            lines.append("chunks: " + (storage.bucket.map { "S3 bucket \($0)" + (storage.endpoint.map { " at \($0)" } ?? "")
                                                            + " (\(storage.region)), prefix \(storage.dataPrefix)" }
                                       ?? "under \(storage.dataDirectory)"))
            lines.append("disk-cache: " + (storage.cacheDirectory ?? "none"))
            let authentication = StorageOptions.describe(storage.elasticsearchAuthentication)
            lines.append("metadata: " + (storage.elasticsearchURL.map { "Elasticsearch \($0), index \(storage.elasticsearchIndex), \(authentication)" }
                                         ?? "SQLite under \(storage.dataDirectory)"))
        }
        return lines
    }
}
