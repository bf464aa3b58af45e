import StorageSetup
import ArgumentParser
import CommandLineSupport

/// Where chunks and manifests are stored: shared by `serve` and `sweep`.
struct StorageArguments: ParsableArguments {
    @Option(help: "S3 bucket for chunks; without it chunks go under --data-dir. [XS3_S3_BUCKET]")
    var s3Bucket: String?

    @Option(help: "S3 endpoint for MinIO, LocalStack or moto (path-style). [XS3_S3_ENDPOINT, default AWS]")
    var s3Endpoint: String?

    @Option(help: "S3 region. [XS3_S3_REGION, default $AWS_REGION or us-east-1]")
    var s3Region: String?

    @Option(help: "Key prefix of chunk objects; a '/' is added when missing. [XS3_DATA_PREFIX, default data/]")
    var dataPrefix: String?

    @Option(help: "Local disk cache of chunks in front of S3. [XS3_CACHE_DIR, default none]")
    var cacheDir: String?

    @Option(help: "Disk cache eviction stops below this usage of its file system, in percent. [XS3_CACHE_LOW_WATERMARK, default 85]")
    var cacheLowWatermark: Int?

    @Option(help: "Disk cache eviction starts at this usage of its file system, in percent. [XS3_CACHE_HIGH_WATERMARK, default 95]")
    var cacheHighWatermark: Int?

    @Option(help: "Elasticsearch URL for manifests (https://user:password@host:9200 for Basic authentication); without it they go to SQLite under --data-dir. [XS3_ELASTICSEARCH_URL]")
    var elasticsearchURL: String?

    @Option(help: "Elasticsearch API key (the base64 id:key), sent as Authorization: ApiKey. [XS3_ELASTICSEARCH_API_KEY]")
    var elasticsearchAPIKey: String?

    @Option(help: "Elasticsearch index of the metadata documents. [XS3_ELASTICSEARCH_INDEX, default passsage_meta]")
    var elasticsearchManifestIndex: String?

    @Option(help: "Directory for the embedded stores (objects/, metadata.sqlite) when S3 or Elasticsearch is not configured. [XS3_DATA_DIR, default ./xs3lerator-data]")
    var dataDir: String?

    func options(_ env: EnvironmentResolver, environment: [String: String], passthrough: Bool,
                 temporaryDirectoryGiven: Bool = false) throws -> StorageOptions {
        var options = StorageOptions()
        options.passthrough = passthrough
        options.temporaryDirectoryGiven = temporaryDirectoryGiven
        options.bucket = try env.value(s3Bucket, "XS3_S3_BUCKET", option: "--s3-bucket").flatMap { $0.isEmpty ? nil : $0 }
        options.endpoint = try env.value(s3Endpoint, "XS3_S3_ENDPOINT", option: "--s3-endpoint").flatMap { $0.isEmpty ? nil : $0 }
        options.region = try env.value(s3Region, "XS3_S3_REGION", option: "--s3-region")
            ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? "us-east-1"
        options.dataPrefix = try env.value(dataPrefix, "XS3_DATA_PREFIX", option: "--data-prefix") ?? "data/"
        options.cacheDirectory = try env.value(cacheDir, "XS3_CACHE_DIR", option: "--cache-dir").flatMap { $0.isEmpty ? nil : $0 }
        options.lowWatermark = try env.value(cacheLowWatermark, "XS3_CACHE_LOW_WATERMARK", option: "--cache-low-watermark") ?? 85
        options.highWatermark = try env.value(cacheHighWatermark, "XS3_CACHE_HIGH_WATERMARK", option: "--cache-high-watermark") ?? 95
        try StorageOptions.checkWatermarks(low: options.lowWatermark, high: options.highWatermark,
                                           lowOption: "--cache-low-watermark", highOption: "--cache-high-watermark")
        if let url = try env.value(elasticsearchURL, "XS3_ELASTICSEARCH_URL", option: "--elasticsearch-url"), !url.isEmpty {
            (options.elasticsearchURL, options.elasticsearchAuthentication) = try StorageOptions.elasticsearchAccess(
                url: url, apiKey: try env.value(elasticsearchAPIKey, "XS3_ELASTICSEARCH_API_KEY", option: "--elasticsearch-api-key"),
                urlOption: "--elasticsearch-url", apiKeyOption: "--elasticsearch-api-key")
        }
        options.elasticsearchIndex = try env.value(elasticsearchManifestIndex, "XS3_ELASTICSEARCH_INDEX", option: "--elasticsearch-manifest-index")
            ?? "passsage_meta"
        if passthrough, options.elasticsearchURL != nil || options.bucket != nil {
            throw UsageError("--passthrough stores nothing: it cannot be combined with --s3-bucket or --elasticsearch-url")
        }
        options.dataDirectory = try env.value(dataDir, "XS3_DATA_DIR", option: "--data-dir") ?? "xs3lerator-data"
        options.environment = environment
        return options
    }
}
