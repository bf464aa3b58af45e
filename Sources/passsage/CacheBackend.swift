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
import StorageSetup

/// The embedded default: the data plane in-process over a local object directory and SQLite under
/// `--data-dir`, and the cache source that uses it.
struct EmbeddedCache: Sendable {
    /// The cache's size settings (`--cache-size`, watermarks, `--memory-cache-*`).
    struct Options: Sendable {
        /// nil: the watermarks apply to the file system.
        var capacityBytes: Int64? = 10 << 30
        var lowWatermark = 85
        var highWatermark = 95
        var memoryBytes = 64 << 20
        var memoryObjectLimit = 256 << 10
    }

    let storage: StorageSetup
    let metadata: any MetadataStore
    let dataPlane: DataPlane
    let accessTimes: AccessTimes
    /// Flushes `last_access` every 30 s until `close`.
    let accessFlusher: Task<Void, Never>

    /// Upstream trust and timeouts follow the proxy's, so a URL fetches the same way through the
    /// cache as through the relay.
    static func open(dataDirectory: String, options cache: Options, proxy: ProxyConfiguration,
                     logger: Logger) async throws -> EmbeddedCache {
        var options = StorageOptions()
        options.dataDirectory = dataDirectory
        options.dataPrefix = "data/"
        options.embeddedEviction = true
        options.embeddedCapacityBytes = cache.capacityBytes
        options.lowWatermark = cache.lowWatermark
        options.highWatermark = cache.highWatermark
        let storage = try await StorageSetup.open(options, logger: logger)
        guard var stores = storage.stores, let staging = stores.diskCache?.stagingDirectory else {
            await storage.close()
            throw UsageError("--data-dir \(dataDirectory): no local object directory")
        }
        // passsage is the only writer of its SQLite file, and every write goes through the memo:
        // hot entries are looked up without a query.
        let metadata = MemoizedMetadataStore(stores.metadata)
        stores.metadata = metadata
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
                                  eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                  logger: Logger(label: "passsage.cache"))
        logger.notice("cache: embedded, \(storage.description)")
        let accessTimes = AccessTimes(metadata: metadata, logger: Logger(label: "passsage.cache"))
        return EmbeddedCache(storage: storage, metadata: metadata, dataPlane: dataPlane, accessTimes: accessTimes,
                             accessFlusher: Task { await accessTimes.run() })
    }

    func source(destinations: DestinationGuard, policies: any PolicyResolver, settings: CacheSettings) -> any ResponseSource {
        CacheSource(dataPlane: dataPlane, metadata: metadata, destinations: destinations, resolver: policies,
                    settings: settings, accessTimes: accessTimes, logger: Logger(label: "passsage.cache"))
    }

    func close() async {
        // The pending last_access batch is written before the stores close (bug 25).
        accessFlusher.cancel()
        await accessFlusher.value
        await accessTimes.flush()
        await dataPlane.shutdown()
        await storage.close()
    }
}
