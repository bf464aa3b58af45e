import AsyncHTTPClient
import AWSCore
import CommandLineSupport
import DataPlane
import Logging
import MetadataStore
import NIOPosix
import ObjectStore
import S3ObjectStore
#if canImport(Glibc)
import Glibc
#endif

/// What the storage options say (xs3lerator's, and passsage's embedded data plane).
public struct StorageOptions: Sendable {
    public var passthrough = false
    public var temporaryDirectoryGiven = false
    public var bucket: String?
    public var endpoint: String?
    public var region = "us-east-1"
    public var dataPrefix = "data/"
    public var cacheDirectory: String?
    public var lowWatermark = 85
    public var highWatermark = 95
    /// Embedded (no bucket): evict the least recently used objects between the watermarks (the
    /// object directory is then a cache, and an evicted chunk is fetched again when needed);
    /// false keeps every object.
    public var embeddedEviction = false
    /// What the embedded watermarks are a percentage of: this many bytes of objects, or nil for
    /// the file system.
    public var embeddedCapacityBytes: Int64?
    /// Without credentials: they are in `elasticsearchAuthentication`.
    public var elasticsearchURL: String?
    public var elasticsearchAuthentication: ElasticsearchMetadataStore.Configuration.Authentication = .none
    public var elasticsearchIndex = "passsage_meta"
    /// Used only when the index is created (passsage creates it; xs3lerator expects it).
    public var elasticsearchShards = 9
    public var elasticsearchReplicas = 1
    public var dataDirectory = "xs3lerator-data"
    public var environment: [String: String] = [:]

    public init() {}

    /// 0 ≤ low < high ≤ 100, or a usage error naming the options.
    public static func checkWatermarks(low: Int, high: Int, lowOption: String, highOption: String) throws {
        guard (1...100).contains(high), (0..<high).contains(low) else {
            throw UsageError("invalid watermarks \(low)/\(high): expected 0 ≤ \(lowOption) < \(highOption) ≤ 100")
        }
    }

    /// How `check-config` names an authentication, never with its secret.
    public static func describe(_ authentication: ElasticsearchMetadataStore.Configuration.Authentication) -> String {
        switch authentication {
        case .none: return "no authentication"
        case .basic(let username, _): return "Basic authentication as \(username)"
        case .apiKey: return "an API key"
        }
    }

    /// An Elasticsearch URL and API key as given: the URL without credentials (it is logged and
    /// printed) and the authentication, the URL's `user:password@` as Basic or the API key. Errors
    /// never repeat the credentials.
    public static func elasticsearchAccess(url: String, apiKey: String?, urlOption: String, apiKeyOption: String) throws
        -> (url: String, authentication: ElasticsearchMetadataStore.Configuration.Authentication) {
        let access: (url: String, authentication: ElasticsearchMetadataStore.Configuration.Authentication)
        do {
            access = try ElasticsearchMetadataStore.Configuration.resolvingCredentials(url: url, authentication: .none)
        } catch let error as MetadataStoreError {
            throw UsageError("invalid value for \(urlOption): \(error.message)")
        }
        var authentication = access.authentication
        if let apiKey, !apiKey.isEmpty {
            guard case .none = authentication else {
                throw UsageError("give Elasticsearch credentials once: as user:password@ in \(urlOption), or as \(apiKeyOption)")
            }
            authentication = .apiKey(apiKey)
        }
        guard access.url.hasPrefix("http://") || access.url.hasPrefix("https://") else {
            throw UsageError("invalid value '\(access.url)' for \(urlOption): expected an http(s) URL such as http://elasticsearch:9200")
        }
        return (access.url, authentication)
    }
}

/// The stores the options name, opened, and how to close them.
public struct StorageSetup: Sendable {
    public let stores: DataPlaneStorage?
    public let description: String
    private let closers: [@Sendable () async -> Void]

    public func close() async {
        for close in closers { await close() }
    }

    /// S3 when a bucket is given, else a local object directory; Elasticsearch when a URL is
    /// given, else SQLite; both local ones under the data directory. Embedded (no bucket), the
    /// object directory doubles as the disk cache: one copy of each chunk on disk.
    public static func open(_ options: StorageOptions, logger: Logger) async throws -> StorageSetup {
        if options.passthrough {
            return StorageSetup(stores: nil, description: "none (passthrough)", closers: [])
        }
        let layout: ChunkKeyLayout
        do {
            layout = try ChunkKeyLayout(prefix: options.dataPrefix)
        } catch {
            throw UsageError("invalid value '\(options.dataPrefix)' for --data-prefix: \(error.reason)")
        }
        var closers: [@Sendable () async -> Void] = []
        var parts: [String] = []
        let dataDirectory = Self.absolute(options.dataDirectory, environment: options.environment)

        let objects: any ObjectStore
        var diskCache: DiskCache?
        if let bucket = options.bucket {
            let credentialClient = HTTPClient(eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton))
            closers.append { try? await credentialClient.shutdown() }
            let resolved: CredentialChain.Resolved
            let configuration: S3Configuration
            do {
                resolved = try CredentialChain.resolve(environment: options.environment, httpClient: credentialClient)
                configuration = try S3Configuration(bucket: bucket, region: options.region, endpoint: options.endpoint)
            } catch {
                try? await credentialClient.shutdown()
                throw UsageError("S3 storage: \(error)")
            }
            let store = S3ObjectStore(configuration: configuration, credentials: resolved.provider,
                                      logger: Logger(label: "xs3lerator.s3"))
            closers.insert({ try? await store.shutdown() }, at: 0)
            objects = store
            parts.append("S3 s3://\(bucket)/\(layout.prefix) (credentials: \(resolved.source))")
            if let cacheDirectory = options.cacheDirectory {
                do {
                    diskCache = try DiskCache(root: cacheDirectory, watermarks: .init(low: options.lowWatermark, high: options.highWatermark))
                } catch {
                    throw UsageError("invalid value '\(cacheDirectory)' for --cache-dir: \(error)")
                }
                parts.append("disk cache \(cacheDirectory) (\(options.lowWatermark)–\(options.highWatermark) %)")
            }
        } else {
            let root = dataDirectory + "/objects"
            do {
                objects = try LocalDirectoryObjectStore(root: root)
                let watermarks = options.embeddedEviction ? DiskCache.Watermarks(low: options.lowWatermark, high: options.highWatermark) : nil
                diskCache = try DiskCache(root: root + (layout.prefix.isEmpty ? "" : "/" + layout.prefix), watermarks: watermarks,
                                          capacity: options.embeddedCapacityBytes.map { .bytes($0) } ?? .fileSystem)
            } catch {
                throw UsageError("invalid value '\(options.dataDirectory)' for --data-dir: \(error)")
            }
            parts.append("local objects \(root)")
            if options.embeddedEviction {
                let of = options.embeddedCapacityBytes.map { "of \($0 >> 20) MiB" } ?? "of the file system"
                parts.append("evicted at \(options.highWatermark) % \(of), down to \(options.lowWatermark) %")
            }
            if options.cacheDirectory != nil {
                logger.notice("--cache-dir is ignored without --s3-bucket: the local object directory is the disk cache")
            }
        }

        let metadata: any MetadataStore
        if let url = options.elasticsearchURL {
            do {
                let store = try ElasticsearchMetadataStore(configuration: .init(url: url, index: options.elasticsearchIndex,
                                                                                          shards: options.elasticsearchShards,
                                                                                          replicas: options.elasticsearchReplicas,
                                                                                          authentication: options.elasticsearchAuthentication),
                                                           logger: Logger(label: "xs3lerator.elasticsearch"))
                closers.append { try? await store.shutdown() }
                metadata = store
            } catch {
                await StorageSetup(stores: nil, description: "", closers: closers).close()
                throw UsageError("invalid Elasticsearch settings: \(error)")
            }
            parts.append("Elasticsearch \(url) index \(options.elasticsearchIndex)")
        } else {
            let path = dataDirectory + "/metadata.sqlite"
            do {
                try makeDirectories(dataDirectory)
                let store = try await SQLiteMetadataStore.open(path: path, logger: Logger(label: "xs3lerator.sqlite"))
                try await store.ensureSchema()
                closers.append { try? await store.close() }
                metadata = store
            } catch {
                await StorageSetup(stores: nil, description: "", closers: closers).close()
                throw UsageError("invalid value '\(options.dataDirectory)' for --data-dir: SQLite at \(path): \(error)")
            }
            parts.append("SQLite \(path)")
        }
        let stores = DataPlaneStorage(objects: objects, layout: layout, metadata: metadata, diskCache: diskCache)
        return StorageSetup(stores: stores, description: parts.joined(separator: ", "), closers: closers)
    }

    public static func absolute(_ path: String, environment: [String: String]) -> String {
        if path.hasPrefix("/") { return path }
        var cwd = [CChar](repeating: 0, count: 4096)
        guard getcwd(&cwd, cwd.count) != nil else { return path }
        let bytes = cwd.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self) + "/" + path
    }
}

/// `mkdir -p`.
private func makeDirectories(_ path: String) throws {
    var current = ""
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw UsageError("cannot create \(current): \(String(cString: strerror(errno)))")
        }
    }
}
