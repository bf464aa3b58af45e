import DownloadEngine
import MetadataStore
import ObjectStore

/// How the data plane works: the engine's knobs and the cache's.
public struct DataPlaneConfiguration: Sendable {
    public var download: DownloadSettings
    /// Accept any upstream certificate, for every request.
    public var upstreamTLSSkipVerify: Bool
    /// Extra PEM trust anchors for upstream TLS, added to the system's.
    public var upstreamCAFile: String?
    public var upstreamConnectTimeout: Duration
    /// Longest silence from upstream while a response is expected; nil for none.
    public var upstreamReadTimeout: Duration?
    /// Accelerator only: cache keys are ignored and nothing is stored.
    public var passthrough: Bool
    /// Range workers fetching at once across all downloads (each download's first stream and
    /// probe come on top). Bounds memory whatever the number of clients.
    public var maximumRangeWorkers: Int
    /// Chunks a hit fetches from the object store ahead of its client (each into a temporary
    /// file, never memory): per-connection bandwidth caps multiply by this.
    public var hitReadAhead: Int
    /// Chunk uploads to the object store at once, across all downloads.
    public var uploadConcurrency: Int
    /// How long a manifest alias waits for its source's download to finish.
    public var linkWaitTimeout: Duration
    /// How often the disk cache checks its usage against its watermarks.
    public var diskCacheCheckInterval: Duration
    /// A stored chunk older than this is uploaded again when a download needs it, so that a
    /// `sweep` with twice this grace never deletes a chunk a new manifest names.
    public var chunkRefreshAge: Duration
    /// Background revalidations running at once, across all keys. Past it, a stale hit is served
    /// without starting another (the next request for the key tries again).
    public var maximumBackgroundRefreshes: Int
    /// Bytes of small bodies held in memory for `bodyInMemory` (0: none), and the largest body held.
    public var memoryCacheBytes: Int = 0
    public var memoryCacheObjectLimit: Int = 256 << 10

    public init(download: DownloadSettings, upstreamTLSSkipVerify: Bool = false, upstreamConnectTimeout: Duration = .seconds(30),
                upstreamReadTimeout: Duration? = .seconds(300), passthrough: Bool = false, maximumRangeWorkers: Int = 16,
                hitReadAhead: Int = 8, uploadConcurrency: Int = 8, linkWaitTimeout: Duration = .seconds(60),
                diskCacheCheckInterval: Duration = .seconds(10), chunkRefreshAge: Duration = .seconds(12 * 3600),
                maximumBackgroundRefreshes: Int = 32, upstreamCAFile: String? = nil) {
        self.download = download
        self.upstreamTLSSkipVerify = upstreamTLSSkipVerify
        self.upstreamCAFile = upstreamCAFile
        self.upstreamConnectTimeout = upstreamConnectTimeout
        self.upstreamReadTimeout = upstreamReadTimeout
        self.passthrough = passthrough
        self.maximumRangeWorkers = maximumRangeWorkers
        self.hitReadAhead = hitReadAhead
        self.uploadConcurrency = uploadConcurrency
        self.linkWaitTimeout = linkWaitTimeout
        self.diskCacheCheckInterval = diskCacheCheckInterval
        self.chunkRefreshAge = chunkRefreshAge
        self.maximumBackgroundRefreshes = max(1, maximumBackgroundRefreshes)
    }
}

/// Where the cache lives: chunks in an object store (and optionally a local disk cache in front
/// of it), manifests in a metadata store. Without it the data plane only accelerates.
public struct DataPlaneStorage: Sendable {
    public var objects: any ObjectStore
    public var layout: ChunkKeyLayout
    public var metadata: any MetadataStore
    public var diskCache: DiskCache?

    public init(objects: any ObjectStore, layout: ChunkKeyLayout, metadata: any MetadataStore, diskCache: DiskCache? = nil) {
        self.objects = objects
        self.layout = layout
        self.metadata = metadata
        self.diskCache = diskCache
    }
}
