import FakeElasticsearch
import Foundation
import NIOConcurrencyHelpers
import Testing
import TestOrigin
import TestSupport

/// Split mode: passsage and xs3lerator as two processes, sharing S3 on moto (signatures checked)
/// and the Elasticsearch fake, in front of our TLS origin.
final class SplitStack: Sendable {
    static let token = "split-mode-test-token"

    let directory: String
    let originCAFile: String
    let origin: TestOriginServer
    let moto: MotoServer
    let elastic: FakeElasticsearch
    private let xs3Box: NIOLockedValueBox<ServiceProcess>
    let xs3Port: Int
    let proxy: PasssageProcess
    let proxyCAFile: String

    var xs3: ServiceProcess { xs3Box.withLockedValue { $0 } }
    var originURL: String { "https://localhost:\(origin.port)" }

    private init(directory: String, originCAFile: String, origin: TestOriginServer, moto: MotoServer, elastic: FakeElasticsearch,
                 xs3: ServiceProcess, proxy: PasssageProcess, proxyCAFile: String) {
        self.directory = directory
        self.originCAFile = originCAFile
        self.origin = origin
        self.moto = moto
        self.elastic = elastic
        self.xs3Box = NIOLockedValueBox(xs3)
        self.xs3Port = xs3.port
        self.proxy = proxy
        self.proxyCAFile = proxyCAFile
    }

    static func with(_ body: (SplitStack) async throws -> Void) async throws {
        let directory = try makeTemporaryDirectory()
        let pki = try TestPKI()
        let originCAFile = directory + "/origin-ca.pem"
        try pki.caPEM.write(toFile: originCAFile, atomically: true, encoding: .utf8)
        let origin = try await TestOriginServer.start(tls: try pki.serverConfiguration())
        var started: (MotoServer?, FakeElasticsearch?, ServiceProcess?, PasssageProcess?) = (nil, nil, nil, nil)
        let stack: SplitStack
        do {
            let moto = try await MotoServer.start()
            started.0 = moto
            let elastic = try await FakeElasticsearch.start()
            started.1 = elastic
            let xs3 = try await launchXs3(port: 0, directory: directory, moto: moto, elastic: elastic, originCAFile: originCAFile)
            started.2 = xs3
            let proxy = try await launchProxy(xs3Port: xs3.port, directory: directory, elastic: elastic, originCAFile: originCAFile)
            started.3 = proxy
            let proxyCAFile = try await fetchCA(proxy, into: directory + "/proxy-ca.pem")
            stack = SplitStack(directory: directory, originCAFile: originCAFile, origin: origin, moto: moto, elastic: elastic,
                               xs3: xs3, proxy: proxy, proxyCAFile: proxyCAFile)
        } catch {
            started.3?.stop()
            started.2?.stop()
            await started.1?.stop()
            await started.0?.stop()
            await origin.stop()
            throw error
        }
        try await withTeardown {
            try await body(stack)
        } teardown: {
            stack.proxy.stop()
            stack.xs3.stop()
            await stack.elastic.stop()
            await stack.moto.stop()
            await origin.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// `prefix`: a command xs3lerator runs through (`TestHosts`).
    static func launchXs3(port: Int, directory: String, moto: MotoServer, elastic: FakeElasticsearch,
                          originCAFile: String, prefix: [String] = []) async throws -> ServiceProcess {
        let temporary = directory + "/xs3-tmp"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        let command = prefix + [builtExecutable("xs3lerator")]
        return try await ServiceProcess.launch(
            command[0],
            Array(command.dropFirst()) + ["--bind-ip", "127.0.0.1", "--port", String(port), "--temp-dir", temporary,
             "--s3-bucket", moto.bucket, "--s3-endpoint", moto.endpoint, "--elasticsearch-url", elastic.url,
             "--auth-token", token, "--upstream-ca-file", originCAFile, "--chunk-size", "1MiB", "--range-size", "1MiB",
             "--data-dir", directory + "/xs3-data"],
            environment: moto.environment(), clearingPrefixes: ["XS3_"], marker: "xs3lerator listening on ")
    }

    static func launchProxy(xs3Port: Int, directory: String, elastic: FakeElasticsearch, originCAFile: String,
                            arguments: [String] = [], prefix: [String] = []) async throws -> PasssageProcess {
        try await PasssageProcess.launch(arguments + [
            "--data-dir", try makeTemporaryDirectory(), "--upstream-ca-file", originCAFile,
            "--xs3lerator-url", "http://127.0.0.1:\(xs3Port)", "--xs3lerator-auth-token", token,
            "--elasticsearch-url", elastic.url, "--elasticsearch-flush-interval", "1",
            "--health-port", String(try unusedPort()), "--health-host", "127.0.0.1",
        ], prefix: prefix)
    }

    static func fetchCA(_ proxy: PasssageProcess, into file: String) async throws -> String {
        let fetched = try await curl(["-x", proxy.proxyURL, "-o", file, "-w", "%{http_code}", "http://mitm.it/cert/pem"])
        guard fetched.stdout == "200" else { throw HarnessError("fetching the CA failed: \(fetched.stdout) \(fetched.stderr)") }
        return file
    }

    /// Stops xs3lerator (SIGKILL: as if it crashed) and waits for it to be gone.
    func stopXs3() async {
        xs3.stop()
        _ = await xs3.waitForExit(timeout: 10)
    }

    /// Starts xs3lerator again on its port.
    func restartXs3() async throws {
        let started = try await Self.launchXs3(port: xs3Port, directory: directory, moto: moto, elastic: elastic,
                                               originCAFile: originCAFile)
        xs3Box.withLockedValue { $0 = started }
    }

    /// One request through `proxy` (default: the first passsage): its headers, the body into `file`.
    func get(_ url: String, through proxy: PasssageProcess? = nil, caFile: String? = nil,
             output file: String = "/dev/null") async throws -> String {
        let proxy = proxy ?? self.proxy
        return try await curl(["-x", proxy.proxyURL, "--cacert", caFile ?? proxyCAFile, "-s", "-D", "-", "-o", file, url]).stdout
    }

    func health(of proxy: PasssageProcess? = nil) async throws -> String {
        let port = try #require((proxy ?? self.proxy).healthPort)
        return try await curl(["-s", "http://127.0.0.1:\(port)/health"]).stdout
    }

    /// Requests `url` until its `Cache-Status` satisfies `condition`.
    func poll(_ url: String, _ what: String, through proxy: PasssageProcess? = nil, caFile: String? = nil,
              until condition: @escaping (String) -> Bool) async throws -> String {
        var last = ""
        try await waitUntil(timeout: 20, what) {
            last = try await self.get(url, through: proxy, caFile: caFile)
            return condition(SplitModeTests.cacheStatus(last))
        }
        return last
    }
}

// One at a time: each starts its own moto_server, xs3lerator and passsage processes, and eight
// such stacks at once starve the rest of the suite on two cores.
@Suite("Split mode: passsage and xs3lerator as two processes over S3 and Elasticsearch", .serialized)
struct SplitModeTests {
    static func cacheStatus(_ output: String) -> String { CachingTests.headers(output)["cache-status"] ?? "" }
    static func isHit(_ status: String) -> Bool { status.hasPrefix("passsage;hit") }

    @Test("miss, hit and revalidation; no X-Xs3lerator header reaches the client; a second passsage gets the first one's hits")
    func missHitRevalidationAndASecondProxy() async throws {
        try await SplitStack.with { stack in
            let size: Int64 = 3_000_000
            let path = "/object/\(size)"
            let url = "\(stack.originURL)\(path)?cc=max-age%3D600"
            let body = stack.directory + "/body"
            let miss = try await stack.get(url, output: body)
            #expect(CachingTests.status(miss) == "200")
            #expect(Self.cacheStatus(miss).contains("fwd=uri-miss") && Self.cacheStatus(miss).contains("stored"), "\(miss)")
            #expect(!miss.lowercased().contains("x-xs3lerator-"), "\(miss)")
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<size))

            // The manifest lands once xs3lerator has stored every chunk in S3.
            let hit = try await stack.poll(url, "a hit") { Self.isHit($0) }
            #expect(!hit.lowercased().contains("x-xs3lerator-"), "\(hit)")
            let requests = stack.origin.stats.requests(path)
            let lookups = stack.elastic.requestCount("_mget")
            _ = try await stack.get(url, output: body)
            #expect(stack.origin.stats.requests(path) == requests, "a hit asks nothing of the origin")
            #expect(stack.elastic.requestCount("_mget") == lookups + 1, "one _mget per request")
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<size))
            let ranged = try await curl(["-x", stack.proxy.proxyURL, "--cacert", stack.proxyCAFile, "-s", "-D", "-",
                                         "-o", body, "-r", "1000-1999", url]).stdout
            #expect(CachingTests.status(ranged) == "206" && Self.isHit(Self.cacheStatus(ranged)), "\(ranged)")
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 1000..<2000))

            // last_access of the hits goes out in _bulk batches (every second here).
            try await waitUntil(timeout: 10, "a _bulk batch") { stack.elastic.requestCount("_bulk") > 0 }
            #expect(stack.elastic.requestCount("_update") > 0, "entries are written as partial updates")

            // Revalidation: an entry that expires after a second is asked with its validator.
            let short = "\(stack.originURL)/object/5000?cc=max-age%3D1"
            _ = try await stack.poll(short, "the short-lived entry") { !$0.isEmpty && !$0.contains("uri-miss") }
            let revalidated = try await stack.poll(short, "a revalidation") { $0.hasPrefix("passsage;fwd=stale;fwd-status=304") }
            #expect(CachingTests.status(revalidated) == "200")
            #expect(stack.origin.stats.conditionalRequests >= 1)

            // A second passsage sharing S3 and the index: the first one's entries are its hits.
            let second = try await SplitStack.launchProxy(xs3Port: stack.xs3Port, directory: stack.directory,
                                                          elastic: stack.elastic, originCAFile: stack.originCAFile)
            try await withTeardown {
                let caFile = try await SplitStack.fetchCA(second, into: stack.directory + "/second-ca.pem")
                let before = stack.origin.stats.requests(path)
                let shared = try await stack.get(url, through: second, caFile: caFile, output: body)
                #expect(Self.isHit(Self.cacheStatus(shared)), "\(shared)")
                #expect(stack.origin.stats.requests(path) == before)
                #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<size))
            } teardown: {
                second.stop()
            }
        }
    }

    @Test("concurrent cold requests through the remote data plane share one download")
    func collapsing() async throws {
        try await SplitStack.with { stack in
            let size = 4_000_000
            let path = "/object/\(size)"
            let url = "\(stack.originURL)\(path)?rate=4000000&cc=max-age%3D600"
            // Each download starts with one whole-object GET, then asks ranges in parallel; the
            // bytes the origin writes depend on how soon that first GET is cut (its socket buffers
            // fill on a loaded machine), so downloads are counted by their whole-object GETs.
            let before = stack.origin.stats.plainRequests(path)
            let sums = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<10 {
                    group.addTask {
                        let file = stack.directory + "/cold\(index)"
                        _ = try await stack.get(url, output: file)
                        return try await sha256Hex(ofFile: file)
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(sums) == [OriginContent.sha256(range: 0..<Int64(size))])
            let downloads = stack.origin.stats.plainRequests(path) - before
            let notes = (stack.proxy.output + stack.xs3.output).split(separator: "\n")
                .filter { $0.contains("warning") || $0.contains("unavailable") }
            #expect(downloads == 1, "10 clients caused \(downloads) downloads\n\(notes.joined(separator: "\n"))")
            _ = try await stack.poll(url, "a hit") { Self.isHit($0) }
        }
    }

    @Test("with Elasticsearch down requests pass through, /health says so and counts them (bug 24); when it is back, hits return")
    func elasticsearchDown() async throws {
        try await SplitStack.with { stack in
            let path = "/object/20000"
            let url = "\(stack.originURL)\(path)?cc=max-age%3D600"
            _ = try await stack.poll(url, "a hit") { Self.isHit($0) }
            #expect(try await stack.health() == "ok\n")

            await stack.elastic.stop()
            let body = stack.directory + "/body"
            let requests = stack.origin.stats.requests(path)
            for _ in 0..<3 {
                let passed = try await stack.get(url, output: body)
                #expect(CachingTests.status(passed) == "200", "\(passed)")
                #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<20000))
            }
            #expect(stack.origin.stats.requests(path) == requests + 3, "passed through to the origin")
            let health = try await stack.health()
            #expect(health.hasPrefix("degraded\n") && health.contains("metadata store unavailable"), "\(health)")
            #expect(health.contains("3 requests passed through"), "\(health)")

            try await stack.elastic.restart()
            _ = try await stack.poll(url, "hits again") { Self.isHit($0) }
            #expect(try await stack.health() == "ok\n")
        }
    }

    @Test("with xs3lerator down requests go straight upstream, /health says so; when it is back, hits return")
    func xs3leratorDown() async throws {
        try await SplitStack.with { stack in
            let path = "/object/30000"
            let url = "\(stack.originURL)\(path)?cc=max-age%3D600"
            _ = try await stack.poll(url, "a hit") { Self.isHit($0) }

            await stack.stopXs3()
            let body = stack.directory + "/body"
            let requests = stack.origin.stats.requests(path)
            let direct = try await stack.get(url, output: body)
            #expect(CachingTests.status(direct) == "200", "\(direct)")
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<30000))
            #expect(stack.origin.stats.requests(path) == requests + 1, "straight to the origin")
            // A miss goes direct too.
            let other = try await stack.get("\(stack.originURL)/object/1234", output: body)
            #expect(CachingTests.status(other) == "200", "\(other)")
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<1234))
            let health = try await stack.health()
            #expect(health.hasPrefix("degraded\n") && health.contains("data plane unavailable"), "\(health)")

            try await stack.restartXs3()
            _ = try await stack.poll(url, "hits again") { Self.isHit($0) }
            #expect(try await stack.health() == "ok\n")
        }
    }

    @Test("one passsage over S3 and Elasticsearch without an xs3lerator: the embedded data plane stores there, and a second passsage gets hits")
    func embeddedOverSharedStores() async throws {
        try await SplitStack.with { stack in
            func launch() async throws -> PasssageProcess {
                try await PasssageProcess.launch(
                    ["--data-dir", try makeTemporaryDirectory(), "--upstream-ca-file", stack.originCAFile,
                     "--s3-bucket", stack.moto.bucket, "--s3-endpoint", stack.moto.endpoint, "--elasticsearch-url", stack.elastic.url,
                     "--elasticsearch-meta-index", "embedded_meta"],
                    environment: stack.moto.environment())
            }
            let first = try await launch()
            let second = try await launch()
            try await withTeardown {
                let firstCA = try await SplitStack.fetchCA(first, into: stack.directory + "/first-ca.pem")
                let secondCA = try await SplitStack.fetchCA(second, into: stack.directory + "/second-ca.pem")
                let size: Int64 = 2_500_000
                let path = "/object/\(size)"
                let url = "\(stack.originURL)\(path)?cc=max-age%3D600"
                let body = stack.directory + "/body"
                let miss = try await stack.get(url, through: first, caFile: firstCA, output: body)
                #expect(Self.cacheStatus(miss).contains("stored"), "\(miss)")
                #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<size))
                // Stored once the whole body is in S3.
                _ = try await stack.poll(url, "a hit through the first passsage", through: first, caFile: firstCA) { Self.isHit($0) }
                let requests = stack.origin.stats.requests(path)
                let shared = try await stack.get(url, through: second, caFile: secondCA)
                #expect(Self.isHit(Self.cacheStatus(shared)), "\(shared)")
                #expect(stack.origin.stats.requests(path) == requests, "\(shared)")
                _ = try await stack.get(url, through: second, caFile: secondCA, output: body)
                #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<size))
                #expect(stack.xs3.output.components(separatedBy: "status=").count == 1, "xs3lerator served nothing")
            } teardown: {
                first.stop()
                second.stop()
            }
        }
    }

    @Test("a rule's read timeout reaches xs3lerator as a contract header: 504 on a slow origin, in the rule's time")
    func perRuleTimeoutsReachXs3lerator() async throws {
        try await SplitStack.with { stack in
            let file = stack.directory + "/policies.yaml"
            try "rules:\n  - match: {path_suffix: /1109}\n    policy: Standard\n    timeouts: {read: 1s}\n".write(toFile: file, atomically: true, encoding: .utf8)
            let proxy = try await SplitStack.launchProxy(xs3Port: stack.xs3Port, directory: stack.directory, elastic: stack.elastic,
                                                         originCAFile: stack.originCAFile, arguments: ["--policy-file", file])
            try await withTeardown {
                let caFile = try await SplitStack.fetchCA(proxy, into: stack.directory + "/rule-ca.pem")
                let started = ContinuousClock.now
                // xs3lerator's own read timeout is 300 s and passsage's 60 s: only the rule's 1 s answers this soon.
                let answer = try await stack.get("\(stack.originURL)/object/1109?delay=10000", through: proxy, caFile: caFile)
                #expect(CachingTests.status(answer) == "504", "\(answer)")
                #expect(ContinuousClock.now - started < .seconds(8))
                try await waitUntil(timeout: 10, "xs3lerator to log its 504") { stack.xs3.output.contains("status=504") }
            } teardown: {
                proxy.stop()
            }
        }
    }

    @Test("clients sending Accept-Encoding share an entry that does not vary, and get their own variant of one that does")
    func acceptEncoding() async throws {
        try await SplitStack.with { stack in
            func get(_ url: String, encoding: String?, output file: String) async throws -> String {
                try await curl(["-x", stack.proxy.proxyURL, "--cacert", stack.proxyCAFile, "-s", "-D", "-", "-o", file]
                               + (encoding.map { ["-H", "Accept-Encoding: \($0)"] } ?? []) + [url]).stdout
            }
            let body = stack.directory + "/body"
            // Not varying: downloaded under the gzip client's key, stored by URL, a hit for everyone.
            let plain = "\(stack.originURL)/object/40000?cc=max-age%3D600"
            _ = try await get(plain, encoding: "gzip", output: body)
            try await waitUntil(timeout: 20, "a hit for the identity client") {
                Self.isHit(Self.cacheStatus(try await get(plain, encoding: nil, output: body)))
            }
            #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: 0..<40000))
            #expect(Self.isHit(Self.cacheStatus(try await get(plain, encoding: "br", output: body))))

            // Varying on Accept-Encoding: each encoding its own entry, never the other's bytes.
            let varying = "\(stack.originURL)/object/30000?cc=max-age%3D600&vary=ae"
            for (encoding, offset) in [("gzip", Int64(1_000_000)), ("identity", Int64(0))] {
                try await waitUntil(timeout: 20, "a \(encoding) hit") {
                    Self.isHit(Self.cacheStatus(try await get(varying, encoding: encoding, output: body)))
                }
                #expect(try await sha256Hex(ofFile: body) == OriginContent.sha256(range: offset..<(offset + 30000)), "\(encoding)")
            }
        }
    }
}
