import CachePolicy
import CommandLineSupport
import DataPlane
import DownloadEngine
import ForwardProxy
import Logging
import MetadataStore
import NIOCore
import NIOPosix
import OriginConnections
import ProxyCache
import RemoteDataPlane
import StorageSetup

/// Where the cache keeps things, and which data plane serves its bodies:
/// - **embedded** (the default): the data plane in-process over a local object directory and
///   SQLite under `--data-dir`;
/// - **embedded over S3 and/or Elasticsearch** (`--s3-bucket`, `--elasticsearch-url`): the same
///   in-process data plane with shared stores, and the disk cache under `--data-dir`;
/// - **split** (`--xs3lerator-url`, which needs `--elasticsearch-url`): a separate xs3lerator
///   holds the bodies; passsage reads and writes the shared index.
struct CacheBackend: Sendable {
    /// The cache's settings from the command line.
    struct Options: Sendable {
        /// nil: the watermarks apply to the file system.
        var capacityBytes: Int64? = 10 << 30
        var lowWatermark = 85
        var highWatermark = 95
        var memoryBytes = 64 << 20
        var memoryObjectLimit = 256 << 10
        var s3Bucket: String?
        var s3Endpoint: String?
        var s3Region = "us-east-1"
        var elasticsearch: ElasticsearchOptions?
        var xs3lerator: RemoteDataPlaneConfiguration?
    }

    struct ElasticsearchOptions: Sendable {
        /// Without credentials: they are in `authentication`.
        var url: String
        var authentication: ElasticsearchMetadataStore.Configuration.Authentication = .none
        var index = "passsage_meta"
        var shards = 9
        var replicas = 1
        /// How often batched `last_access` updates are sent.
        var flushInterval: Duration = .seconds(30)
    }

    let metadata: any MetadataStore
    let dataPlane: any CacheDataPlane
    let accessTimes: AccessTimes
    let health: CacheHealth
    /// Flushes `last_access` every interval until `close`.
    let accessFlusher: Task<Void, Never>
    /// Creates the Elasticsearch index, retrying until it exists.
    let schemaRetry: Task<Void, Never>?
    private let closeStores: @Sendable () async -> Void

    static func open(dataDirectory: String, options cache: Options, proxy: ProxyConfiguration,
                     environment: [String: String], logger: Logger) async throws -> CacheBackend {
        let cacheLogger = Logger(label: "passsage.cache")
        let health = CacheHealth(logger: cacheLogger)
        if let remote = cache.xs3lerator {
            guard let elasticsearch = cache.elasticsearch else {
                throw UsageError("--xs3lerator-url needs --elasticsearch-url: passsage and xs3lerator share the metadata index")
            }
            if cache.s3Bucket != nil {
                logger.notice("--s3-bucket is not used with --xs3lerator-url: the bodies are xs3lerator's to store")
            }
            let store = try openElasticsearch(elasticsearch)
            let schemaRetry = ensureSchema(store, logger: logger)
            let dataPlane = RemoteDataPlane(configuration: remote, metadata: store, health: health, logger: cacheLogger)
            logger.notice("cache: split, data plane \(remote.url) (auth: \(remote.authToken == nil ? "none" : "token")), Elasticsearch \(elasticsearch.url) index \(elasticsearch.index)")
            let accessTimes = AccessTimes(metadata: store, interval: elasticsearch.flushInterval, logger: cacheLogger)
            return CacheBackend(metadata: store, dataPlane: dataPlane, accessTimes: accessTimes, health: health,
                                accessFlusher: Task { await accessTimes.run() }, schemaRetry: schemaRetry,
                                closeStores: {
                                    await dataPlane.shutdown()
                                    try? await store.shutdown()
                                })
        }

        var options = StorageOptions()
        options.dataDirectory = dataDirectory
        options.dataPrefix = "data/"
        options.bucket = cache.s3Bucket
        options.endpoint = cache.s3Endpoint
        options.region = cache.s3Region
        options.environment = environment
        if cache.s3Bucket != nil {
            // Chunks come from S3; the disk cache in front of it lives under --data-dir.
            options.cacheDirectory = dataDirectory + "/chunks"
        } else {
            options.embeddedEviction = true
            options.embeddedCapacityBytes = cache.capacityBytes
        }
        options.lowWatermark = cache.lowWatermark
        options.highWatermark = cache.highWatermark
        if let elasticsearch = cache.elasticsearch {
            options.elasticsearchURL = elasticsearch.url
            options.elasticsearchAuthentication = elasticsearch.authentication
            options.elasticsearchIndex = elasticsearch.index
            options.elasticsearchShards = elasticsearch.shards
            options.elasticsearchReplicas = elasticsearch.replicas
        }
        let storage = try await StorageSetup.open(options, logger: logger)
        guard var stores = storage.stores, let staging = stores.diskCache?.stagingDirectory else {
            await storage.close()
            throw UsageError("--data-dir \(dataDirectory): no local object directory")
        }
        var schemaRetry: Task<Void, Never>?
        let metadata: any MetadataStore
        if let store = stores.metadata as? ElasticsearchMetadataStore {
            schemaRetry = ensureSchema(store, logger: logger)
            metadata = store
        } else {
            // passsage is the only writer of its SQLite file, and every write goes through the
            // memo: hot entries are looked up without a query. A shared index has other writers,
            // so it is asked every time.
            metadata = MemoizedMetadataStore(stores.metadata)
            stores.metadata = metadata
        }
        // Chunk files are written next to the objects they become, so storing one is a rename.
        var configuration = DataPlaneConfiguration(
            download: DownloadSettings(temporaryDirectory: staging),
            upstreamTLSSkipVerify: proxy.upstreamTLSSkipVerify,
            upstreamConnectTimeout: Duration(proxy.upstreamConnectTimeout),
            upstreamReadTimeout: proxy.upstreamReadTimeout.map { Duration($0) },
            upstreamCAFile: proxy.upstreamCAFile)
        configuration.memoryCacheBytes = cache.memoryBytes
        configuration.memoryCacheObjectLimit = cache.memoryObjectLimit
        let dataPlane = DataPlane(configuration: configuration, storage: stores,
                                  eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: cacheLogger)
        logger.notice("cache: embedded, \(storage.description)")
        let accessTimes = AccessTimes(metadata: metadata, interval: cache.elasticsearch?.flushInterval ?? .seconds(30),
                                      logger: cacheLogger)
        return CacheBackend(metadata: metadata, dataPlane: dataPlane, accessTimes: accessTimes, health: health,
                            accessFlusher: Task { await accessTimes.run() }, schemaRetry: schemaRetry,
                            closeStores: {
                                await dataPlane.shutdown()
                                await storage.close()
                            })
    }

    static func openElasticsearch(_ options: ElasticsearchOptions) throws -> ElasticsearchMetadataStore {
        do {
            return try ElasticsearchMetadataStore(configuration: .init(url: options.url, index: options.index,
                                                                       shards: options.shards, replicas: options.replicas,
                                                                       authentication: options.authentication),
                                                  logger: Logger(label: "passsage.elasticsearch"))
        } catch {
            throw UsageError("invalid Elasticsearch settings: \(error)")
        }
    }

    /// Creates the index (an existing one is kept), in the background: passsage does not wait for
    /// Elasticsearch to start serving (requests pass through until the index answers). Failures
    /// are retried every 5 s until one succeeds.
    static func ensureSchema(_ store: ElasticsearchMetadataStore, logger: Logger) -> Task<Void, Never> {
        Task {
            var warned = false
            while !Task.isCancelled {
                do {
                    try await store.ensureSchema()
                    if warned { logger.notice("Elasticsearch index ready") }
                    return
                } catch {
                    if !warned {
                        logger.warning("Elasticsearch index not ready; requests pass through until it is; retrying every 5 s",
                                       metadata: ["error": "\(error)"])
                        warned = true
                    }
                }
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }

    func source(destinations: DestinationGuard, policies: any PolicyResolver, settings: CacheSettings) -> any ResponseSource {
        CacheSource(dataPlane: dataPlane, metadata: metadata, destinations: destinations, resolver: policies,
                    settings: settings, accessTimes: accessTimes, health: health, logger: Logger(label: "passsage.cache"))
    }

    func close() async {
        schemaRetry?.cancel()
        await schemaRetry?.value
        // The pending last_access batch is written before the stores close (bug 25).
        accessFlusher.cancel()
        await accessFlusher.value
        await accessTimes.flush()
        await closeStores()
    }
}
