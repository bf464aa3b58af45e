import FakeElasticsearch
import Foundation
import MetadataStore
import NIOConcurrencyHelpers
import TestOrigin
import TestSupport
import Testing

/// A caching xs3lerator process (not passthrough) over our origin, with the stores its
/// arguments name; its data directory and disk cache live in one temporary directory, which
/// survives a restart of the process.
final class CachingXs3: Sendable {
    let origin: TestOriginServer
    let directory: String
    let arguments: [String]
    let environment: [String: String]
    let process: NIOLockedValueBox<ServiceProcess>

    var xs3: ServiceProcess { process.withLockedValue { $0 } }
    var base: String { "http://127.0.0.1:\(xs3.port)" }
    var originBase: String { "http://127.0.0.1:\(origin.port)" }
    var cacheDirectory: String { directory + "/disk" }
    var metadataPath: String { directory + "/data/metadata.sqlite" }

    func url(_ path: String) -> String { "\(base)/\(originBase)\(path)" }

    private init(origin: TestOriginServer, directory: String, arguments: [String], environment: [String: String], process: ServiceProcess) {
        self.origin = origin
        self.directory = directory
        self.arguments = arguments
        self.environment = environment
        self.process = NIOLockedValueBox(process)
    }

    static func launch(_ arguments: [String], environment: [String: String]) async throws -> ServiceProcess {
        try await ServiceProcess.launch(builtExecutable("xs3lerator"), arguments, environment: environment,
                                        clearingPrefixes: ["XS3_", "AWS_"], marker: "xs3lerator listening on ")
    }

    static func start(_ extra: [String], environment: [String: String] = [:], origin existing: TestOriginServer? = nil) async throws -> CachingXs3 {
        let origin: TestOriginServer
        if let existing { origin = existing } else { origin = try await TestOriginServer.start() }
        let directory = try makeTemporaryDirectory()
        let arguments = ["--bind-ip", "127.0.0.1", "--port", "0", "--data-dir", directory + "/data", "--chunk-size", "4MiB",
                         "--range-size", "1MiB", "--temp-dir", directory + "/data"] + extra.map { $0.replacingOccurrences(of: "$DIR", with: directory) }
        do {
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            let xs3 = try await launch(arguments, environment: environment)
            return CachingXs3(origin: origin, directory: directory, arguments: arguments, environment: environment, process: xs3)
        } catch {
            if existing == nil { await origin.stop() }
            throw error
        }
    }

    /// Starts the process again with the same arguments and directories.
    func restart() async throws {
        xs3.stop()
        let next = try await Self.launch(arguments, environment: environment)
        process.withLockedValue { $0 = next }
    }

    func stop() async {
        xs3.stop()
        await origin.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func with(_ extra: [String], environment: [String: String] = [:], _ body: (CachingXs3) async throws -> Void) async throws {
        let fixture = try await start(extra, environment: environment)
        try await withTeardown({ try await body(fixture) }) { await fixture.stop() }
    }

    /// Waits until no keyed download is being cached (from `/metrics`).
    func waitForQuiet(timeout: Double = 120) async throws {
        try await waitUntil(timeout: timeout, "cached downloads to finish") {
            let metrics = try await curl(["\(base)/metrics"])
            return metrics.stdout.contains("xs3_downloads_in_flight 0")
        }
    }

    /// The manifest of `key` from the SQLite metadata store, checked against the chunk objects
    /// by `check_chunks.py`: prints `none`, or `ok <chunks>` when every chunk the manifest names
    /// exists under its SHA-256 (and, with `exact`, nothing else is stored).
    func checkChunks(key: String, moto: MotoServer?, exact: Bool = true, mode: String? = nil) async throws -> String {
        var arguments = ["python3", Self.script, metadataPath, key, mode ?? (exact ? "exact" : "any")]
        if let moto { arguments += [moto.endpoint, moto.bucket, moto.accessKey, moto.secretKey] } else { arguments += [directory + "/data/objects"] }
        let result = try await run("/usr/bin/env", arguments, timeout: 120)
        guard result.status == 0 else { throw HarnessError("check_chunks.py failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static var script: String {
        String(#filePath).split(separator: "/").dropLast().joined(separator: "/").reduce(into: "/") { $0.append($1) } + "/check_chunks.py"
    }

    var diskCacheFiles: Int {
        let enumerator = FileManager.default.enumerator(atPath: cacheDirectory)
        var count = 0
        while let path = enumerator?.nextObject() as? String {
            if !path.hasPrefix(".tmp"), path.split(separator: "/").count == 5 { count += 1 }
        }
        return count
    }
}

@Suite("xs3lerator cache service", .serialized)
struct CacheServiceTests {
    @Test(.tags(.heavy)) func a300MiBMissThenHitsFromDiskAndFromS3() async throws {
        let moto = try await MotoServer.start()
        try await withTeardown({
            try await CachingXs3.with(["--s3-bucket", moto.bucket, "--s3-endpoint", moto.endpoint, "--cache-dir", "$DIR/disk"],
                                      environment: moto.environment()) { fixture in
                let size: Int64 = 300 << 20
                let path = "/object/\(size)"
                let key = ["-H", "X-Xs3lerator-Cache-Key: k/large"]
                let miss = try await download(fixture.url(path), headers: ["X-Xs3lerator-Cache-Key: k/large"], timeout: 600)
                #expect(miss.status == 200 && miss.size == size && miss.sha256 == OriginContent.sha256(range: 0..<size))
                try await fixture.waitForQuiet(timeout: 300)
                let stored = try await fixture.checkChunks(key: "k/large", moto: moto)
                #expect(stored == "ok 75", "exactly the manifest's chunks, each under its SHA-256: \(stored)")
                #expect(fixture.diskCacheFiles == 75)

                let before = fixture.origin.stats.requests(path)
                let hit = try await download(fixture.url(path), headers: ["X-Xs3lerator-Cache-Key: k/large"], timeout: 600)
                #expect(hit.status == 200 && hit.sha256 == miss.sha256)
                let head = try await curl(["-s", "-D", "-", "-o", "/dev/null"] + key + [fixture.url(path)])
                #expect(head.stdout.lowercased().contains("x-xs3lerator-cache-hit: true"))
                #expect(fixture.origin.stats.requests(path) == before, "hits make no upstream request")
                let metrics = try await curl(["\(fixture.base)/metrics"]).stdout
                #expect(metrics.contains("xs3_bytes_served_total{source=\"disk\"} \(2 * size)"), "\(metrics)")

                // With the disk cache wiped, the hit comes from S3 and back-fills the disk cache.
                for entry in try FileManager.default.contentsOfDirectory(atPath: fixture.cacheDirectory) where entry != ".tmp" {
                    try FileManager.default.removeItem(atPath: fixture.cacheDirectory + "/" + entry)
                }
                let fromS3 = try await download(fixture.url(path), headers: ["X-Xs3lerator-Cache-Key: k/large"], timeout: 600)
                #expect(fromS3.status == 200 && fromS3.sha256 == miss.sha256)
                #expect(fixture.origin.stats.requests(path) == before)
                #expect(fixture.diskCacheFiles == 75, "back-filled")
                let after = try await curl(["\(fixture.base)/metrics"]).stdout
                #expect(after.contains("xs3_bytes_served_total{source=\"object_store\"} \(size)"), "\(after)")
            }
        }) { await moto.stop() }
    }

    @Test(.tags(.heavy)) func fiftyClientsOfOneUncachedObjectCauseOneDownload() async throws {
        try await CachingXs3.with(["--chunk-size", "8MiB", "--range-size", "2MiB"]) { fixture in
            let size: Int64 = 200 << 20
            // About 5 s of download: every client arrives while it is in flight.
            let path = "/object/\(size)?rate=\(5 << 20)"
            let started = ContinuousClock.now
            let results = try await withThrowingTaskGroup(of: (Int, (status: Int, size: Int64, sha256: String)).self) { group in
                for client in 0..<50 {
                    let range: String? = client % 5 == 4 ? "bytes=\(Int64(client) << 20)-\((Int64(client) << 20) + 5_000_000)" : nil
                    group.addTask {
                        var headers = ["X-Xs3lerator-Cache-Key: k/fifty"]
                        if let range { headers.append("Range: \(range)") }
                        return (client, try await download(fixture.url(path), headers: headers, timeout: 300))
                    }
                }
                var all = [Int: (status: Int, size: Int64, sha256: String)]()
                for try await (client, result) in group { all[client] = result }
                return all
            }
            #expect(fixture.origin.stats.plainRequests("/object/\(size)") == 1, "one upstream download for 50 clients")
            for (client, result) in results {
                if client % 5 == 4 {
                    let first = Int64(client) << 20
                    #expect(result.status == 206 && result.sha256 == OriginContent.sha256(range: first..<(first + 5_000_001)), "client \(client)")
                } else {
                    #expect(result.status == 200 && result.size == size && result.sha256 == OriginContent.sha256(range: 0..<size), "client \(client)")
                }
            }
            print("50 clients, 200 MiB, one download: \(ContinuousClock.now - started)")
            // A client that comes once half of another download is done still gets everything.
            let second = "/object/\(size)?rate=\(5 << 20)&seed=3"
            let early = Task { try await download(fixture.url(second), headers: ["X-Xs3lerator-Cache-Key: k/half"], timeout: 300) }
            try await waitUntil(timeout: 60, "half of the second object") { fixture.origin.stats.bytesSent >= size + size / 2 }
            let late = try await download(fixture.url(second), headers: ["X-Xs3lerator-Cache-Key: k/half"], timeout: 300)
            let expected = OriginContent.sha256(range: 3..<(size + 3))
            #expect(late.status == 200 && late.sha256 == expected)
            #expect(try await early.value.sha256 == expected)
            #expect(fixture.origin.stats.plainRequests("/object/\(size)") == 2)
        }
    }

    @Test func chunksDamagedInS3AndOnDiskAreCaughtBeforeTheHeadersOrAbortMidStream() async throws {
        let moto = try await MotoServer.start()
        try await withTeardown({
            try await CachingXs3.with(["--s3-bucket", moto.bucket, "--s3-endpoint", moto.endpoint, "--cache-dir", "$DIR/disk",
                                       "--hit-read-ahead", "1"],
                                      environment: moto.environment()) { fixture in
                let size: Int64 = 24 << 20
                let path = "/object/\(size)"
                let headers = ["X-Xs3lerator-Cache-Key: k/damaged"]
                _ = try await download(fixture.url(path), headers: headers)
                try await fixture.waitForQuiet()
                let keys = try await fixture.checkChunks(key: "k/damaged", moto: moto, exact: false, mode: "keys")
                    .split(separator: "\n").map(String.init)
                #expect(keys.count == 6)
                // Damage chunk 3 everywhere: deleted from S3 and from the disk cache.
                func damage(_ key: String, _ action: String) async throws {
                    let script = """
                        import boto3, sys
                        s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                                          aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
                        if sys.argv[5] == "delete":
                            s3.delete_object(Bucket="\(moto.bucket)", Key=sys.argv[4])
                        else:
                            body = bytearray(s3.get_object(Bucket="\(moto.bucket)", Key=sys.argv[4])["Body"].read())
                            body[100] ^= 0xff
                            s3.put_object(Bucket="\(moto.bucket)", Key=sys.argv[4], Body=bytes(body))
                        """
                    let result = try await run("/usr/bin/env", ["python3", "-c", script, moto.endpoint, moto.accessKey, moto.secretKey, key, action])
                    #expect(result.status == 0, "\(result.stderr)")
                    let local = fixture.cacheDirectory + "/" + key.dropFirst("data/".count)
                    if action == "delete" {
                        try FileManager.default.removeItem(atPath: local)
                    } else {
                        let handle = try #require(FileHandle(forUpdatingAtPath: local))
                        try handle.seek(toOffset: 100)
                        let byte = try #require(try handle.read(upToCount: 1))
                        try handle.seek(toOffset: 100)
                        try handle.write(contentsOf: Data([byte[0] ^ 0xff]))
                        try handle.close()
                    }
                }
                try await damage(keys[3], "delete")
                let plain = fixture.origin.stats.plainRequests(path)
                let refetched = try await download(fixture.url(path), headers: headers)
                #expect(refetched.status == 200 && refetched.sha256 == OriginContent.sha256(range: 0..<size), "the right bytes, from upstream")
                #expect(fixture.origin.stats.plainRequests(path) == plain + 1)
                try await fixture.waitForQuiet()
                #expect(try await fixture.checkChunks(key: "k/damaged", moto: moto, exact: false) == "ok 6", "the entry is repaired")

                // Corrupt (same length) a later chunk everywhere: found mid-stream, the connection aborts.
                let manifestKeys = try await fixture.checkChunks(key: "k/damaged", moto: moto, exact: false, mode: "keys")
                    .split(separator: "\n").map(String.init)
                let order = try await run("/usr/bin/env", ["python3", "-c", """
                    import base64, json, sqlite3, sys
                    row = sqlite3.connect(sys.argv[1]).execute("SELECT fields FROM documents WHERE id = 'k/damaged'").fetchone()
                    raw = base64.b64decode(json.loads(row[0])["manifest_b64"])
                    print(raw[26 + 32 * 4: 26 + 32 * 5].hex())
                    """, fixture.metadataPath])
                let fifth = order.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let victim = try #require(manifestKeys.first { $0.hasSuffix(fifth) })
                try await damage(victim, "corrupt")
                let aborted = try await run("/bin/bash", ["-c", "curl -sS -o /dev/null -w '%{http_code} %{size_download}' -H 'X-Xs3lerator-Cache-Key: k/damaged' '\(fixture.url(path))'"])
                #expect(aborted.status != 0, "curl sees the connection end before Content-Length: \(aborted.stdout)")
                #expect(aborted.stdout.hasPrefix("200 ") && Int64(aborted.stdout.split(separator: " ").last ?? "") ?? size < size)
                try await waitUntil(timeout: 20, "the damaged manifest to be cleared") {
                    try await fixture.checkChunks(key: "k/damaged", moto: moto, exact: false) == "none"
                }
            }
        }) { await moto.stop() }
    }

    @Test(.bug(id: 7, "xs3lerator-behaviour.md §13")) func s3RefusingUploadsServesTheClientAndWritesNoManifest() async throws {
        let moto = try await MotoServer.start()
        try await withTeardown({
            try await CachingXs3.with(["--s3-bucket", moto.bucket, "--s3-endpoint", moto.endpoint],
                                      environment: moto.environment(readOnly: true)) { fixture in
                let size: Int64 = 10 << 20
                let answer = try await download(fixture.url("/object/\(size)"), headers: ["X-Xs3lerator-Cache-Key: k/denied"])
                #expect(answer.status == 200 && answer.sha256 == OriginContent.sha256(range: 0..<size))
                try await fixture.waitForQuiet()
                #expect(try await fixture.checkChunks(key: "k/denied", moto: moto, exact: false) == "none")
                let metrics = try await curl(["\(fixture.base)/metrics"]).stdout
                #expect(!metrics.contains("xs3_upload_failures_total 0"), "\(metrics)")
            }
        }) { await moto.stop() }
    }

    @Test func killedMidDownloadLeavesNoManifestAndARestartDownloadsAgain() async throws {
        try await CachingXs3.with([]) { fixture in
            let size: Int64 = 64 << 20
            let path = "/object/\(size)?rate=\(8 << 20)&ranges=none"
            let slow = Task { try? await download(fixture.url(path), headers: ["X-Xs3lerator-Cache-Key: k/killed"], timeout: 60) }
            try await waitUntil(timeout: 30, "the download to be under way") { fixture.origin.stats.bytesSent > 8 << 20 }
            fixture.xs3.signal(SIGKILL)
            _ = await slow.value
            #expect(try await fixture.checkChunks(key: "k/killed", moto: nil, exact: false) == "none")
            try await fixture.restart()
            let plain = fixture.origin.stats.plainRequests("/object/\(size)")
            let again = try await download(fixture.url("/object/\(size)?ranges=none"), headers: ["X-Xs3lerator-Cache-Key: k/killed"])
            #expect(again.status == 200 && again.sha256 == OriginContent.sha256(range: 0..<size))
            #expect(fixture.origin.stats.plainRequests("/object/\(size)") == plain + 1, "the restart repeats the download")
            try await fixture.waitForQuiet()
            #expect(try await fixture.checkChunks(key: "k/killed", moto: nil, exact: false) == "ok 16")
        }
    }

    @Test(.bug(id: 16, "xs3lerator-behaviour.md §13"), .bug(id: 17, "xs3lerator-behaviour.md §13"), .bug(id: 18, "xs3lerator-behaviour.md §13"), .bug(id: 19, "xs3lerator-behaviour.md §13")) func sweepListsExactlyTheUnreferencedChunksAndDeletesThemOnlyWhenAsked() async throws {
        try await CachingXs3.with([]) { fixture in
            let size: Int64 = 10 << 20
            for (key, seed) in [("k/kept", 1), ("k/refreshed", 2)] {
                _ = try await download(fixture.url("/object/\(size)?seed=\(seed)"), headers: ["X-Xs3lerator-Cache-Key: \(key)"])
            }
            try await fixture.waitForQuiet()
            // An alias of the entry about to be refreshed keeps its old chunks referenced.
            let alias = try await curl(["-w", "%{http_code}", "-X", "POST", "-H", "X-Xs3lerator-Link-Manifest-Source: k/kept",
                                        "-H", "X-Xs3lerator-Link-Manifest-Target: k/alias", "\(fixture.base)/alias"])
            #expect(alias.stdout == "204")
            let old = Set(try await fixture.checkChunks(key: "k/refreshed", moto: nil, exact: false, mode: "keys").split(separator: "\n").map(String.init))
            _ = try await download(fixture.url("/object/\(size)?seed=3"), headers: ["X-Xs3lerator-Cache-Key: k/refreshed", "X-Xs3lerator-Cache-Skip: true"])
            try await fixture.waitForQuiet()
            // Age every chunk by two hours; a sweep with a grace of one hour may then take them.
            let aged = try await run("/bin/sh", ["-c", "find '\(fixture.directory)/data/objects/data' -type f -exec touch -d '2 hours ago' {} +"])
            #expect(aged.status == 0)
            let sweep = { (arguments: [String]) in
                try await run(builtExecutable("xs3lerator"), ["sweep", "--data-dir", fixture.directory + "/data", "--grace", "1h", "--list"] + arguments)
            }
            let dry = try await sweep([])
            #expect(dry.status == 0, "\(dry.stderr)")
            let listed = Set(dry.stdout.split(separator: "\n").filter { $0.hasPrefix("data/") }.map(String.init))
            #expect(listed == old, "exactly the refreshed entry's old chunks")
            #expect(dry.stdout.contains("deleted 0 (dry run"))
            let young = try await run(builtExecutable("xs3lerator"), ["sweep", "--data-dir", fixture.directory + "/data"])
            #expect(young.stdout.contains("unreferenced 0"), "within the default grace nothing is taken: \(young.stdout)")
            let real = try await sweep(["--delete"])
            #expect(real.status == 0 && real.stdout.contains("deleted \(old.count), failed 0"), "\(real.stdout)")
            for key in old { #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/data/objects/" + key)) }
            for (key, seed) in [("k/kept", 1), ("k/alias", 1), ("k/refreshed", 3)] {
                let hit = try await curl(["-s", "-D", "-", "-o", "/dev/null", "-H", "X-Xs3lerator-Cache-Key: \(key)", fixture.url("/object/\(size)?seed=\(seed)")])
                #expect(hit.stdout.lowercased().contains("x-xs3lerator-cache-hit: true"), "\(key) still hits")
            }
            let again = try await sweep([])
            #expect(again.stdout.contains("unreferenced 0"))
        }
    }

    @Test func theAuthTokenGuardsEverythingButHealthAndMetrics() async throws {
        try await CachingXs3.with(["--auth-token", "s3cret"]) { fixture in
            let anonymous = try await curl(["-w", "%{http_code}", "-o", "/dev/null", fixture.url("/object/10")])
            #expect(anonymous.stdout == "401")
            let wrong = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Auth: guess", fixture.url("/object/10")])
            #expect(wrong.stdout == "401")
            let right = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Auth: s3cret", fixture.url("/object/10")])
            #expect(right.stdout == "200")
            let health = try await curl(["-w", " %{http_code}", "\(fixture.base)/healthz"])
            #expect(health.stdout == "ok 200")
            let metrics = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "\(fixture.base)/metrics"])
            #expect(metrics.stdout == "200")
            let link = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-X", "POST", "-H", "X-Xs3lerator-Link-Manifest-Source: a",
                                       "-H", "X-Xs3lerator-Link-Manifest-Target: b", "\(fixture.base)/alias"])
            #expect(link.stdout == "401")
        }
    }

    @Test func tlsSkipVerifyIsHonouredOnlyForAuthenticatedCallers() async throws {
        // An origin whose certificate nobody trusts.
        let pki = try TestPKI()
        let origin = try await TestOriginServer.start(tls: try pki.serverConfiguration())
        let open = try await CachingXs3.start([], origin: origin)
        let guarded = try await CachingXs3.start(["--auth-token", "s3cret"], origin: origin)
        try await withTeardown({
            let target = "https://127.0.0.1:\(origin.port)/object/10"
            let anonymous = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Tls-Skip-Verify: true",
                                            "\(open.base)/\(target)"])
            #expect(anonymous.stdout == "502", "without a token nobody may turn verification off")
            let authenticated = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Tls-Skip-Verify: true",
                                                "-H", "X-Xs3lerator-Auth: s3cret", "\(guarded.base)/\(target)"])
            #expect(authenticated.stdout == "200")
            let unverified = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Auth: s3cret",
                                             "\(guarded.base)/\(target)"])
            #expect(unverified.stdout == "502")
        }) {
            open.xs3.stop()
            guarded.xs3.stop()
            await origin.stop()
            try? FileManager.default.removeItem(atPath: open.directory)
            try? FileManager.default.removeItem(atPath: guarded.directory)
        }
    }

    @Test func manifestsLiveInElasticsearchWhenConfigured() async throws {
        let elastic = try await FakeElasticsearch.start()
        try await withTeardown({
            let store = try ElasticsearchMetadataStore(configuration: .init(url: elastic.url))
            try await store.ensureSchema()
            try? await store.shutdown()
            try await CachingXs3.with(["--elasticsearch-url", elastic.url]) { fixture in
                let size: Int64 = 9 << 20
                let path = "/object/\(size)"
                let miss = try await download(fixture.url(path), headers: ["X-Xs3lerator-Cache-Key: https/example.org/abc+1"])
                #expect(miss.status == 200 && miss.sha256 == OriginContent.sha256(range: 0..<size))
                try await fixture.waitForQuiet()
                let source = try #require(elastic.storedSource(index: "passsage_meta", id: "https/example.org/abc+1"))
                #expect(source.contains("manifest_b64"))
                let before = fixture.origin.stats.requests(path)
                let head = try await curl(["-s", "-D", "-", "-o", "/dev/null", "-H", "X-Xs3lerator-Cache-Key: https/example.org/abc+1",
                                           fixture.url(path)])
                #expect(head.stdout.lowercased().contains("x-xs3lerator-cache-hit: true"))
                #expect(fixture.origin.stats.requests(path) == before)
            }
        }) { await elastic.stop() }
    }
}
