import StorageSetup
import ArgumentParser
import CommandLineSupport
import DataPlane
import DownloadEngine
import DownloadPlanning
import Logging
import NIOPosix
import ServiceLifecycle
import Xs3leratorService
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@main
struct Xs3leratorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xs3lerator",
        abstract: "The Passsage data plane: downloads upstream objects with parallel range requests, streams them to the caller, and caches them as content-addressed chunks.",
        version: "0.2.0",
        subcommands: [ServeCommand.self, SweepCommand.self, CheckConfigCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    static func main() async {
        await runReportingErrors(program: "xs3lerator")
    }
}

/// `xs3lerator` and `xs3lerator serve`: the HTTP service.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the data plane over HTTP (the default).",
        discussion: """
            GET /<absolute upstream URL> downloads through the engine (cached when the caller sends X-Xs3lerator-Cache-Key);
            HEAD is passed through; POST links a manifest alias; GET /healthz answers ok; GET /metrics gives Prometheus metrics.
            Storage: with --s3-bucket chunks go to S3, with --elasticsearch-url manifests go to Elasticsearch; without them,
            both go under --data-dir (a local object directory and SQLite), so the service runs alone.
            Every option can also be set through the environment variable named in its help. Sizes: KiB, MiB, GiB are
            binary (1 MiB = 1,048,576 bytes); k, KB, M, MB, G, GB are decimal (5m = 5,000,000 bytes).
            """
    )

    @Option(name: .customLong("bind-ip"), help: "Listen address. [XS3_BIND_IP, default 0.0.0.0]")
    var bindIP: String?

    @Option(help: "Listen port; 0 picks a free one. [XS3_PORT, default 8080]")
    var port: Int?

    @Option(help: "Most parallel range requests per download. [XS3_HTTP_CONCURRENCY, default 8]")
    var httpConcurrency: Int?

    @Option(help: "Range workers fetching at once across all downloads; bounds memory whatever the number of clients. [XS3_MAX_RANGE_WORKERS, default 2 × http-concurrency]")
    var maxRangeWorkers: Int?

    @Option(help: "Chunk size, e.g. 32MiB; grown for objects over 10,000 chunks. [XS3_CHUNK_SIZE, default 32MiB]")
    var chunkSize: ByteSizeValue?

    @Option(help: "Size of one range request; made to divide the chunk size, at most one chunk. [XS3_RANGE_SIZE, default 8MiB]")
    var rangeSize: ByteSizeValue?

    @Option(help: "How far ahead of a client a download may fetch; bounds temporary space per download. [XS3_READ_AHEAD, default (http-concurrency + 1) × chunk-size]")
    var readAhead: ByteSizeValue?

    @Option(help: "Directory for chunk files (unlinked, never visible). [XS3_TEMP_DIR, default $TMPDIR or /tmp]")
    var tempDir: String?

    @Option(name: .customLong("upstream-ca-file"), help: "Extra PEM trust anchors for upstream TLS, added to the system store. [XS3_UPSTREAM_CA_FILE]")
    var upstreamCAFile: String?

    @Flag(name: .customLong("upstream-tls-skip-verify"), help: "Do not verify upstream certificates (unsafe). [XS3_UPSTREAM_TLS_SKIP_VERIFY]")
    var upstreamTLSSkipVerify = false

    @Option(help: "Upstream connect timeout, e.g. 30s or 30. [XS3_UPSTREAM_CONNECT_TIMEOUT, default 30s]")
    var upstreamConnectTimeout: DurationValue?

    @Option(help: "Longest upstream silence while a response is expected; 0 disables. [XS3_UPSTREAM_READ_TIMEOUT, default 300s]")
    var upstreamReadTimeout: DurationValue?

    @Option(help: "A client's next request head must be complete this long after its connection opened or its last response ended; idle keep-alive connections close then. [XS3_CLIENT_HEAD_TIMEOUT, default 60s]")
    var clientHeadTimeout: DurationValue?

    @Option(help: "Close a client connection that reads nothing of its response for this long. [XS3_CLIENT_WRITE_STALL_TIMEOUT, default 60s]")
    var clientWriteStallTimeout: DurationValue?

    @Flag(help: "Accelerator only: ignore cache keys, store nothing. [XS3_PASSTHROUGH]")
    var passthrough = false

    @OptionGroup var storage: StorageArguments

    @Option(help: "Chunks a cache hit fetches from S3 ahead of its client. [XS3_HIT_READ_AHEAD, default 8]")
    var hitReadAhead: Int?

    @Option(help: "Chunk uploads to S3 at once, across all downloads. [XS3_UPLOAD_CONCURRENCY, default 8]")
    var uploadConcurrency: Int?

    @Option(help: "Callers must send this in X-Xs3lerator-Auth (not /healthz, /metrics); set it in production. [XS3_AUTH_TOKEN]")
    var authToken: String?

    @Option(help: "On SIGTERM, how long in-flight responses may finish. [XS3_SHUTDOWN_GRACE_PERIOD, default 30s]")
    var shutdownGracePeriod: DurationValue?

    @Flag(name: [.customShort("v"), .long], help: "Debug logging. [XS3_VERBOSE]")
    var verbose = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let env = EnvironmentResolver(environment: environment)
        var (configuration, dataPlaneConfiguration) = try makeConfiguration(env, environment: environment)
        let verbose = try env.flag(verbose, "XS3_VERBOSE", option: "--verbose")
        LoggingSetup.bootstrap(verbose: verbose)
        let logger = Logger(label: "xs3lerator")
        let storageOptions = try storage.options(env, environment: environment, passthrough: dataPlaneConfiguration.passthrough,
                                                 temporaryDirectoryGiven: tempDir != nil || environment["XS3_TEMP_DIR"].map { !$0.isEmpty } == true)
        let storage = try await StorageSetup.open(storageOptions, logger: logger)
        if let staging = storage.stores?.diskCache?.stagingDirectory, !storageOptions.temporaryDirectoryGiven {
            // Chunk files next to the disk cache: installing a chunk is then a link, not a copy.
            dataPlaneConfiguration.download.temporaryDirectory = staging
        }
        let download = dataPlaneConfiguration.download
        logger.notice("starting", metadata: [
            "chunk-size": "\(ByteSize.describe(download.chunkSize))",
            "http-concurrency": "\(download.concurrency)",
            "range-size": "\(ByteSize.describe(download.rangeSize))",
            "read-ahead": "\(ByteSize.describe(download.readAhead))",
            "temp-dir": "\(download.temporaryDirectory)",
            "storage": "\(storage.description)",
            "auth": "\(configuration.authToken == nil ? "off" : "token")",
        ])
        if configuration.authToken == nil, configuration.bindHost != "127.0.0.1", configuration.bindHost != "::1" {
            logger.warning("no --auth-token: anyone who reaches \(configuration.bindHost):\(configuration.port) can use this service")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let dataPlane = DataPlane(configuration: dataPlaneConfiguration, storage: storage.stores, eventLoopGroup: group, logger: logger)
        let server = Xs3leratorServer(configuration: configuration, dataPlane: dataPlane, eventLoopGroup: group, logger: logger)
        let services = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint],
                                                         logger: logger))
        do {
            try await services.run()
        } catch {
            await dataPlane.shutdown()
            await storage.close()
            throw error
        }
        await dataPlane.shutdown()
        await storage.close()
    }

    func makeConfiguration(_ env: EnvironmentResolver, environment: [String: String]) throws
        -> (Xs3leratorConfiguration, DataPlaneConfiguration) {
        let port = try PortOption.check(try env.value(port, "XS3_PORT", option: "--port") ?? 8080, option: "--port")
        let concurrency = try env.value(httpConcurrency, "XS3_HTTP_CONCURRENCY", option: "--http-concurrency") ?? 8
        guard (1...256).contains(concurrency) else {
            throw UsageError("invalid value '\(concurrency)' for --http-concurrency: expected 1 to 256")
        }
        let chunk = try env.value(chunkSize, "XS3_CHUNK_SIZE", option: "--chunk-size")?.bytes ?? (32 << 20)
        guard chunk >= 1024, chunk <= ChunkPlan.maximumChunkSize else {
            throw UsageError("invalid value '\(chunk)' for --chunk-size: expected 1 KiB to 5 GiB")
        }
        let maximumWorkers = try env.value(maxRangeWorkers, "XS3_MAX_RANGE_WORKERS", option: "--max-range-workers") ?? 2 * concurrency
        guard (1...4096).contains(maximumWorkers) else {
            throw UsageError("invalid value '\(maximumWorkers)' for --max-range-workers: expected 1 to 4096")
        }
        let range = try env.value(rangeSize, "XS3_RANGE_SIZE", option: "--range-size")?.bytes ?? (8 << 20)
        guard range >= 1024 else {
            throw UsageError("invalid value '\(range)' for --range-size: expected at least 1 KiB")
        }
        let readAhead = try env.value(readAhead, "XS3_READ_AHEAD", option: "--read-ahead")?.bytes
            ?? DownloadSettings.defaultReadAhead(chunkSize: chunk, concurrency: concurrency)
        guard readAhead >= chunk else {
            throw UsageError("invalid value '\(readAhead)' for --read-ahead: must be at least the chunk size (\(chunk))")
        }
        var temp = try env.value(tempDir, "XS3_TEMP_DIR", option: "--temp-dir")
            ?? environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        while temp.count > 1, temp.hasSuffix("/") { temp.removeLast() }
        do {
            try TemporaryChunkFile(directory: temp).close()
        } catch {
            throw UsageError("invalid value '\(temp)' for --temp-dir: cannot create files there (\(error))")
        }
        var connect = Duration.seconds(30)
        if let value = try env.value(upstreamConnectTimeout, "XS3_UPSTREAM_CONNECT_TIMEOUT", option: "--upstream-connect-timeout") {
            guard value.duration > .zero else { throw UsageError("invalid value '0' for --upstream-connect-timeout: must be positive") }
            connect = value.duration
        }
        var read: Duration? = .seconds(300)
        if let value = try env.value(upstreamReadTimeout, "XS3_UPSTREAM_READ_TIMEOUT", option: "--upstream-read-timeout") {
            read = value.duration == .zero ? nil : value.duration
        }
        let headTimeout = try env.value(clientHeadTimeout, "XS3_CLIENT_HEAD_TIMEOUT", option: "--client-head-timeout")?.duration
            ?? .seconds(60)
        let stallTimeout = try env.value(clientWriteStallTimeout, "XS3_CLIENT_WRITE_STALL_TIMEOUT",
                                         option: "--client-write-stall-timeout")?.duration ?? .seconds(60)
        for (value, option) in [(headTimeout, "--client-head-timeout"), (stallTimeout, "--client-write-stall-timeout")] {
            guard value > .zero, value <= .seconds(86_400) else { throw UsageError("invalid value for \(option): expected more than 0 and at most 24h") }
        }
        let grace = try env.value(shutdownGracePeriod, "XS3_SHUTDOWN_GRACE_PERIOD", option: "--shutdown-grace-period")?.duration
            ?? .seconds(30)
        let hitReadAhead = try env.value(hitReadAhead, "XS3_HIT_READ_AHEAD", option: "--hit-read-ahead") ?? 8
        guard (1...64).contains(hitReadAhead) else {
            throw UsageError("invalid value '\(hitReadAhead)' for --hit-read-ahead: expected 1 to 64")
        }
        let uploads = try env.value(uploadConcurrency, "XS3_UPLOAD_CONCURRENCY", option: "--upload-concurrency") ?? 8
        guard (1...256).contains(uploads) else {
            throw UsageError("invalid value '\(uploads)' for --upload-concurrency: expected 1 to 256")
        }
        var token = try env.value(authToken, "XS3_AUTH_TOKEN", option: "--auth-token")
        if token?.isEmpty == true { token = nil }
        if let token, !token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw UsageError("invalid value for --auth-token: use visible ASCII characters only")
        }
        let caFile = try env.value(upstreamCAFile, "XS3_UPSTREAM_CA_FILE", option: "--upstream-ca-file").flatMap { $0.isEmpty ? nil : $0 }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw UsageError("invalid value '\(caFile)' for --upstream-ca-file: not a readable file")
        }
        let service = Xs3leratorConfiguration(
            bindHost: try env.value(bindIP, "XS3_BIND_IP", option: "--bind-ip") ?? "0.0.0.0", port: port,
            shutdownGracePeriod: grace, authToken: token, requestHeadTimeout: headTimeout, writeStallTimeout: stallTimeout)
        let dataPlane = DataPlaneConfiguration(
            download: DownloadSettings(chunkSize: chunk, rangeSize: range, concurrency: concurrency, readAhead: readAhead,
                                       temporaryDirectory: temp),
            upstreamTLSSkipVerify: try env.flag(upstreamTLSSkipVerify, "XS3_UPSTREAM_TLS_SKIP_VERIFY", option: "--upstream-tls-skip-verify"),
            upstreamConnectTimeout: connect, upstreamReadTimeout: read,
            passthrough: try env.flag(passthrough, "XS3_PASSTHROUGH", option: "--passthrough"),
            maximumRangeWorkers: maximumWorkers, hitReadAhead: hitReadAhead, uploadConcurrency: uploads, upstreamCAFile: caFile)
        return (service, dataPlane)
    }
}
