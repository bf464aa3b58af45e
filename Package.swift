// swift-tools-version:6.1
import PackageDescription

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
]

let package = Package(
    name: "passsage",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "passsage", targets: ["passsage"]),
        .executable(name: "xs3lerator", targets: ["xs3lerator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.12.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-structured-headers.git", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
    ],
    targets: [
        // A least-recently-used map with expiry (pure): leaf certificates, TLS contexts, cached
        // metadata documents and in-memory bodies.
        .target(name: "Recency"),
        // CA loading/generation, leaf minting and the leaf cache.
        .target(name: "CertificateAuthority", dependencies: nio + [
            "Recency",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        // Pure HTTP rules shared by passsage and xs3lerator: request targets and authorities,
        // hop-by-hop and internal headers, Via, request ids.
        .target(name: "HTTPRules", dependencies: [.product(name: "NIOHTTP1", package: "swift-nio")]),
        // The mitm.it site and the proxy-env.sh onboarding script (pure rendering).
        .target(name: "Onboarding"),
        // A lean HTTP/1.1 client for relaying: per-event-loop keep-alive pools, no thread hops.
        .target(name: "OriginConnections", dependencies: nio + [
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
        ]),
        // Listener, absolute-form forwarding, CONNECT, interception, health, lifecycle.
        .target(name: "ForwardProxy", dependencies: nio + [
            "HTTPRules", "Recency",
            "OriginConnections",
            "CertificateAuthority",
            "Onboarding",
            "StorageCore",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Storage plumbing shared by the data plane and the proxy: streams, ranges, retries.
        .target(name: "StorageCore", dependencies: nio + ["HTTPRules"]),
        // The chunk manifest and its binary codec (pure).
        .target(name: "ChunkManifest"),
        // The object-store protocol, chunk keys, and the local-directory backend.
        .target(name: "ObjectStore", dependencies: nio + ["StorageCore"]),
        // SigV4, the AWS credential chain, and a small XML reader.
        .target(name: "AWSCore", dependencies: nio + [
            "StorageCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // The S3 object-store backend.
        .target(name: "S3ObjectStore", dependencies: nio + [
            "StorageCore", "ObjectStore", "AWSCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The metadata-store protocol, JSON documents, and the SQLite and Elasticsearch backends.
        .target(name: "MetadataStore", dependencies: nio + [
            "StorageCore", "Recency",
            .product(name: "SQLiteNIO", package: "sqlite-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Pure download planning: chunk plans, chunk ownership, the concurrency ramp, ranges, sizes.
        .target(name: "DownloadPlanning", dependencies: ["StorageCore", "HTTPRules"]),
        // passsage's caching rules (pure): Cache-Control, freshness, storability, decisions,
        // invalidation, Cache-Status, policies, cache keys.
        .target(name: "CachePolicy", dependencies: [
            "HTTPRules",
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "RawStructuredFieldValues", package: "swift-http-structured-headers"),
        ]),
        // The policy file (YAML) read into CachePolicy's rules, with line numbers in its errors.
        .target(name: "PolicyFile", dependencies: [
            "CachePolicy", "HTTPRules", "CommandLineSupport",
            .product(name: "Yams", package: "Yams"),
        ]),
        // The data plane's download engine: upstream clients, chunk files, parallel range download.
        .target(name: "DownloadEngine", dependencies: nio + [
            "DownloadPlanning", "StorageCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The data plane as a library (no HTTP server): accelerator, keyed miss with its sink,
        // hits, collapsing, revalidation, the disk cache. xs3lerator and passsage both call it.
        .target(name: "DataPlane", dependencies: nio + [
            "DownloadEngine", "DownloadPlanning", "HTTPRules", "StorageCore", "ObjectStore", "ChunkManifest", "MetadataStore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // xs3lerator's HTTP shell: routing, contract headers, auth, access log, graceful shutdown.
        .target(name: "Xs3leratorService", dependencies: nio + [
            "CachePolicy", "DataPlane", "DownloadEngine", "DownloadPlanning", "HTTPRules", "StorageCore", "ChunkManifest",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // Our own origin server for tests and benchmarks (TLS, sizes, rates, stalls, uploads).
        .target(name: "TestOrigin", dependencies: nio + [
            "CertificateAuthority",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        // Benchmark helper: origin process and keep-alive load generator (Benchmarks/).
        .executableTarget(name: "passsage-bench", dependencies: nio + [
            "TestOrigin",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Benchmarks/BenchTool"),
        // The data plane's CLI only.
        .executableTarget(name: "xs3lerator", dependencies: [
            "Xs3leratorService", "DataPlane", "DownloadEngine", "DownloadPlanning", "CommandLineSupport",
            "ObjectStore", "S3ObjectStore", "AWSCore", "MetadataStore", "ChunkManifest", "StorageSetup",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // What both command lines share: option values from flags or the environment, one-line errors.
        .target(name: "CommandLineSupport", dependencies: [
            "DownloadPlanning",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The CLI only.
        .executableTarget(name: "passsage", dependencies: [
            "ForwardProxy", "CommandLineSupport",
            "CertificateAuthority", "OriginConnections",
            "ProxyCache", "RemoteDataPlane", "DataPlane", "DownloadEngine", "StorageSetup", "MetadataStore", "CachePolicy", "PolicyFile",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),

        .testTarget(name: "CertificateAuthorityTests", dependencies: nio + [
            "CertificateAuthority", "Recency",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Opening the stores the storage options name (S3 or a local directory; Elasticsearch or
        // SQLite), for xs3lerator and passsage's embedded data plane.
        .target(name: "StorageSetup", dependencies: nio + [
            "AWSCore", "CommandLineSupport", "DataPlane", "MetadataStore", "ObjectStore", "S3ObjectStore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // passsage's cache: the response source that looks entries up, decides and serves them
        // through the data plane.
        // The data plane as a separate xs3lerator over HTTP (split mode).
        .target(name: "RemoteDataPlane", dependencies: nio + [
            "ChunkManifest", "DataPlane", "HTTPRules", "MetadataStore", "ProxyCache", "StorageCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ProxyCache", dependencies: nio + [
            "CachePolicy", "ChunkManifest", "DataPlane", "ForwardProxy", "HTTPRules", "MetadataStore",
            "OriginConnections", "Recency", "StorageCore",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CachePolicyTests", dependencies: ["CachePolicy", "HTTPRules", "PolicyFile",
                                                            .product(name: "NIOHTTP1", package: "swift-nio")]),
        .testTarget(name: "ForwardProxyTests", dependencies: nio + [
            "ForwardProxy", "HTTPRules", "OriginConnections", "CertificateAuthority", "StorageCore", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        // The relay client in process against our origin: reuse, retry, limits, expiry, timeouts.
        .testTarget(name: "OriginConnectionsTests", dependencies: nio + ["OriginConnections", "TestOrigin", "TestSupport"]),
        .testTarget(name: "OnboardingTests", dependencies: ["Onboarding"]),
        // Pure storage logic: manifest codec, ranges, keys, SigV4 against botocore vectors, XML.
        .testTarget(name: "StorageTests", dependencies: nio + [
            "StorageCore", "ChunkManifest", "ObjectStore", "AWSCore", "S3ObjectStore", "TestSupport", "object-store-streamer",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], exclude: ["Fixtures"]),
        // Real processes on 127.0.0.1: the passsage binary, curl, openssl, sh and bash.
        // RealClients/: pip, uv, apt and skopeo through passsage against local PyPI-, Debian- and
        // registry-like upstreams (Fixtures/ builds their content).
        .testTarget(name: "PasssageEndToEndTests", dependencies: nio + ["TestOrigin", "TestSupport", "passsage", "xs3lerator", "MetadataStore",
                                                                         "StorageCore", "FakeElasticsearch",
                                                                         .product(name: "Crypto", package: "swift-crypto")],
                    exclude: ["RealClients/Fixtures"]),
        // Real xs3lerator processes against our origin: downloads, ranges, timeouts, cancellation, memory.
        .testTarget(name: "Xs3leratorEndToEndTests", dependencies: nio + [
            "TestOrigin", "TestSupport", "xs3lerator", "FakeElasticsearch", "MetadataStore",
        ], exclude: ["check_chunks.py"]),
        // The data plane's pure logic: planning, ranges, ramp, chunk board, contract headers.
        .testTarget(name: "DataPlaneLogicTests", dependencies: nio + [.product(name: "NIOEmbedded", package: "swift-nio"), "DownloadPlanning", "DownloadEngine", "StorageCore", "Xs3leratorService", "DataPlane",
                                                                "ProxyCache", "RemoteDataPlane", "MetadataStore", "ChunkManifest",
                                                                .product(name: "Logging", package: "swift-log"),
                                                                .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        // The data plane in process (no HTTP server): misses, hits, collapsing, damage, revalidation,
        // aliases, against our origin, local stores and SQLite.
        .testTarget(name: "DataPlaneTests", dependencies: nio + [
            "DataPlane", "DownloadEngine", "ObjectStore", "MetadataStore", "ChunkManifest", "StorageCore", "TestOrigin", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Metadata-store contract suite: SQLite (two processes on one file) and Elasticsearch (fake).
        .testTarget(name: "MetadataStoreTests", dependencies: nio + [
            "MetadataStore", "FakeElasticsearch", "TestSupport", "sqlite-metadata-writer",
        ]),
        // Helpers shared by the test suites: run a command, poll, free ports, a tiny HTTP server.
        .target(name: "TestSupport", dependencies: nio + [.product(name: "NIOSSL", package: "swift-nio-ssl")], path: "Tests/TestSupport"),
        // A small Elasticsearch stand-in answering in ES's documented shapes; only MetadataStoreTests uses it.
        .target(name: "FakeElasticsearch", dependencies: nio + ["TestSupport"], path: "Tests/FakeElasticsearch"),
        // Streams 100 MiB through a store in a process of its own, to measure its peak memory alone.
        .executableTarget(name: "object-store-streamer", dependencies: [
            "ObjectStore", "S3ObjectStore", "AWSCore", "StorageCore", .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Tests/ObjectStoreStreamer"),
        // The second process of the SQLite two-process test.
        .executableTarget(name: "sqlite-metadata-writer", dependencies: ["MetadataStore"], path: "Tests/SQLiteMetadataWriter"),
    ]
)
