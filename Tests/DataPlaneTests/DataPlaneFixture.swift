import ChunkManifest
import Crypto
import DataPlane
import DownloadEngine
import Foundation
import Logging
import MetadataStore
import NIOCore
import NIOHTTP1
import NIOPosix
import ObjectStore
import StorageCore
import TestOrigin
import TestSupport

/// The data plane in this process over our origin, a local object directory, SQLite and
/// (optionally) a separate disk cache, all under one temporary directory. Small chunks keep the
/// tests quick while every object still spans many chunks.
final class DataPlaneFixture: Sendable {
    let origin: TestOriginServer
    let directory: String
    let objects: any ObjectStore
    let objectRoot: String
    let layout: ChunkKeyLayout
    let metadata: SQLiteMetadataStore
    let diskCache: DiskCache?
    let dataPlane: DataPlane

    static let chunkSize: Int64 = 1 << 20

    var originBase: String { "http://127.0.0.1:\(origin.port)" }

    private init(origin: TestOriginServer, directory: String, objects: any ObjectStore, objectRoot: String, layout: ChunkKeyLayout,
                 metadata: SQLiteMetadataStore, diskCache: DiskCache?, dataPlane: DataPlane) {
        self.origin = origin
        self.directory = directory
        self.objects = objects
        self.objectRoot = objectRoot
        self.layout = layout
        self.metadata = metadata
        self.diskCache = diskCache
        self.dataPlane = dataPlane
    }

    /// `separateDiskCache`: the disk cache is its own directory in front of the object
    /// directory (as with S3); otherwise the object directory doubles as the disk cache
    /// (the embedded configuration). `objects` wraps the store (to inject faults).
    struct Options: Sendable {
        /// The disk cache is its own directory in front of the object directory (as with S3);
        /// otherwise the object directory doubles as the disk cache (the embedded configuration).
        var separateDiskCache = false
        /// Where the separate disk cache lives (default: in the fixture's directory).
        var diskCacheRoot: String?
        var watermarks = DiskCache.Watermarks(low: 85, high: 95)
        /// Chunk files' directory (default: the disk cache's staging directory).
        var temporaryDirectory: String?
        var hitReadAhead = 4
        var checkInterval: Duration = .seconds(10)
        /// Bytes of small bodies held in memory (0: none), and the largest held.
        var memoryCacheBytes = 0
        var memoryCacheObjectLimit = 256 << 10
    }

    static func start(separateDiskCache: Bool = false, hitReadAhead: Int = 4,
                      wrapObjects: (any ObjectStore) -> any ObjectStore = { $0 }) async throws -> DataPlaneFixture {
        try await start(Options(separateDiskCache: separateDiskCache, hitReadAhead: hitReadAhead), wrapObjects: wrapObjects)
    }

    static func start(_ options: Options, wrapObjects: (any ObjectStore) -> any ObjectStore = { $0 }) async throws -> DataPlaneFixture {
        let separateDiskCache = options.separateDiskCache
        let hitReadAhead = options.hitReadAhead
        let origin = try await TestOriginServer.start()
        let directory = try makeTemporaryDirectory()
        let objectRoot = directory + "/objects"
        let layout = try ChunkKeyLayout(prefix: "data/")
        let local = try LocalDirectoryObjectStore(root: objectRoot)
        let diskCache = separateDiskCache
            ? try DiskCache(root: options.diskCacheRoot ?? directory + "/disk", watermarks: options.watermarks)
            : try DiskCache(root: objectRoot + "/data", watermarks: nil)
        let metadata = try await SQLiteMetadataStore.open(path: directory + "/metadata.sqlite")
        try await metadata.ensureSchema()
        let settings = DownloadSettings(chunkSize: chunkSize, rangeSize: 256 << 10, concurrency: 4,
                                        temporaryDirectory: options.temporaryDirectory ?? diskCache.stagingDirectory)
        let storage = DataPlaneStorage(objects: wrapObjects(local), layout: layout, metadata: metadata, diskCache: diskCache)
        var logger = Logger(label: "data-plane-test")
        logger.logLevel = .warning
        var configuration = DataPlaneConfiguration(download: settings, upstreamConnectTimeout: .seconds(2),
                                                   upstreamReadTimeout: .seconds(10), hitReadAhead: hitReadAhead,
                                                   linkWaitTimeout: .seconds(20), diskCacheCheckInterval: options.checkInterval)
        configuration.memoryCacheBytes = options.memoryCacheBytes
        configuration.memoryCacheObjectLimit = options.memoryCacheObjectLimit
        let dataPlane = DataPlane(configuration: configuration,
                                  storage: storage, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        return DataPlaneFixture(origin: origin, directory: directory, objects: storage.objects, objectRoot: objectRoot, layout: layout,
                                metadata: metadata, diskCache: diskCache, dataPlane: dataPlane)
    }

    func stop() async {
        await dataPlane.shutdown()
        try? await metadata.close()
        await origin.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func with(_ options: Options, _ body: (DataPlaneFixture) async throws -> Void) async throws {
        let fixture = try await start(options)
        try await withTeardown({ try await body(fixture) }) { await fixture.stop() }
    }

    static func with(separateDiskCache: Bool = false, hitReadAhead: Int = 4,
                     wrapObjects: @escaping (any ObjectStore) -> any ObjectStore = { $0 },
                     _ body: (DataPlaneFixture) async throws -> Void) async throws {
        let fixture = try await start(separateDiskCache: separateDiskCache, hitReadAhead: hitReadAhead, wrapObjects: wrapObjects)
        try await withTeardown({ try await body(fixture) }) { await fixture.stop() }
    }

    // MARK: Requests

    struct Answer: Sendable {
        var status: UInt
        var headers: HTTPHeaders
        var count: Int64
        var sha256: String
        /// The body threw after `count` bytes (the connection would be aborted).
        var failure: String?

        func header(_ name: String) -> String? { headers.first(name: name) }
    }

    func request(_ path: String, key: String? = nil, range: String? = nil, configure: (inout DataPlaneRequest) -> Void = { _ in })
        -> DataPlaneRequest {
        var request = DataPlaneRequest(url: originBase + path, range: range, cacheKey: key)
        configure(&request)
        return request
    }

    /// Serves `request` and reads the whole body, hashing it.
    func get(_ request: DataPlaneRequest) async -> Answer {
        let response = await dataPlane.serve(request)
        var hasher = SHA256()
        var count: Int64 = 0
        var failure: String?
        do {
            for try await piece in response.body {
                count += Int64(piece.readableBytes)
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
        } catch {
            failure = "\(error)"
            print("data plane test: body of \(request.url) (key \(request.cacheKey ?? "none")) failed after \(count) bytes: \(error)")
        }
        return Answer(status: response.status.code, headers: response.headers, count: count,
                      sha256: OriginContent.hex(hasher.finalize()), failure: failure)
    }

    func get(_ path: String, key: String? = nil, range: String? = nil, configure: (inout DataPlaneRequest) -> Void = { _ in }) async -> Answer {
        await get(request(path, key: key, range: range, configure: configure))
    }

    // MARK: Cache state

    func manifest(_ key: String) async throws -> Manifest? {
        guard case .string(let text)? = try await metadata.get([key])[key]?["manifest_b64"] else { return nil }
        return try ManifestCodec.decodeBase64(text)
    }

    /// Waits until `key` has a manifest (the miss's sink finished) and returns it.
    func waitForManifest(_ key: String, timeout: Double = 60) async throws -> Manifest {
        var found: Manifest?
        try await waitUntil(timeout: timeout, "a manifest for \(key)") {
            found = try await manifest(key)
            return found != nil
        }
        return found!
    }

    /// Waits until no keyed download is in flight.
    func waitForQuiet(timeout: Double = 60) async throws {
        try await waitUntil(timeout: timeout, "keyed downloads to finish") { dataPlane.downloadsInFlight == 0 }
    }

    func chunkKey(_ id: ChunkID) throws -> String { try layout.key(forHex: id.hex) }

    /// Every chunk object under the data prefix.
    func storedChunkKeys() async throws -> Set<String> {
        Set(try await objects.listAll(prefix: layout.prefix).map(\.key))
    }

    func diskPath(_ id: ChunkID) -> String {
        let hex = id.hex
        let h = hex.prefix(4).map(String.init)
        return "\(diskCache!.root)/\(h[0])/\(h[1])/\(h[2])/\(h[3])/\(hex)"
    }

    func objectPath(_ id: ChunkID) throws -> String { objectRoot + "/" + (try chunkKey(id)) }
}

/// The SHA-256 (hex) of object bytes `range` as the origin serves them.
func expected(_ range: Range<Int64>) -> String { OriginContent.sha256(range: range) }

/// An object store that refuses uploads (S3 denying PutObject) and passes everything else on.
struct RefusingUploads: ObjectStore {
    let base: any ObjectStore

    func get(_ key: String, range: ByteRange?) async throws -> ObjectDownload { try await base.get(key, range: range) }
    func put(_ key: String, payload: ObjectPayload, length: Int64) async throws {
        throw ObjectStoreError(.accessDenied, operation: "PutObject", key: key, code: "AccessDenied", message: "uploads refused by the test")
    }
    func head(_ key: String) async throws -> ObjectInfo { try await base.head(key) }
    func delete(_ keys: [String]) async throws -> [ObjectDeleteFailure] { try await base.delete(keys) }
    func list(prefix: String, continuation: String?, maxKeys: Int) async throws -> ObjectListPage {
        try await base.list(prefix: prefix, continuation: continuation, maxKeys: maxKeys)
    }
    func checkHealth() async throws { try await base.checkHealth() }
}
