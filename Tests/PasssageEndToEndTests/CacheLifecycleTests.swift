import Foundation
import MetadataStore
import StorageCore
import Testing
import TestOrigin
import TestSupport

/// Entries over time through the real proxy over HTTPS: expiry and revalidation, stale answers when
/// the origin fails, background refreshes, redirects, collapsing and restarts.
@Suite("Caching: expiry, revalidation, failures, restarts")
struct CacheLifecycleTests {
    static func cacheStatus(_ output: String) -> String { CachingTests.headers(output)["cache-status"] ?? "" }

    /// Requests `url` until `Cache-Status` satisfies `condition`; returns that answer's output.
    static func poll(_ fixture: Fixture, _ url: String, _ what: String, output file: String = "/dev/null",
                     until condition: @escaping (String) -> Bool) async throws -> String {
        // Bounded by time, not by a count: on a loaded two-core machine (pass 1 runs every suite at
        // once) a miss's entry once took over 15 s to be written.
        var last = ""
        do {
            try await waitUntil(timeout: 60, what) {
                last = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", file, url]).stdout
                return condition(cacheStatus(last))
            }
        } catch {
            throw HarnessError("\(error); the last answer was:\n\(last)")
        }
        return last
    }

    @Test("an expired entry is revalidated with its only validator, ETag or Last-Modified, and served from the cache on 304",
          arguments: ["etag", "lm"])
    func expiryThenRevalidation(validator: String) async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let path = "/object/5000"
            let url = "\(fixture.originURL)\(path)?cc=max-age%3D1&validators=\(validator)"
            // Stored once the miss's body is (a hit, or already stale: max-age is one second).
            _ = try await Self.poll(fixture, url, "the entry") { !$0.isEmpty && !$0.contains("uri-miss") }
            let bytesSent = fixture.origin.stats.bytesSent
            let revalidated = try await Self.poll(fixture, url, "a revalidation", output: fixture.directory + "/body") {
                $0.hasPrefix("passsage;fwd=stale;fwd-status=304")
            }
            #expect(CachingTests.status(revalidated) == "200")
            #expect(CachingTests.headers(revalidated)["age"] == "0", "the 304 made the entry new again")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/body") == OriginContent.sha256(range: 0..<5000))
            #expect(fixture.origin.stats.conditionalRequests >= 1)
            #expect(fixture.origin.stats.bytesSent == bytesSent, "revalidations fetch no body")
        }
    }

    @Test("stale-if-error serves the stored copy when the origin answers 5xx and when it is down")
    func staleIfError() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let url = "\(fixture.originURL)/object/5001?cc=max-age%3D1%2C%20stale-if-error%3D600&failFrom=2"
            let first = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", url])
            #expect(Self.cacheStatus(first.stdout) == "passsage;fwd=uri-miss;stored")
            let stale = try await Self.poll(fixture, url, "a stale answer after a 503", output: fixture.directory + "/stale") {
                $0.contains("detail=stale-if-error")
            }
            #expect(CachingTests.status(stale) == "200")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/stale") == OriginContent.sha256(range: 0..<5001))

            await fixture.origin.stop()
            let down = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/down", url])
            #expect(Self.cacheStatus(down.stdout).contains("detail=stale-if-error"), "\(down.stdout)")
            #expect(CachingTests.status(down.stdout) == "200")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/down") == OriginContent.sha256(range: 0..<5001))
        }
    }

    @Test("stale-while-revalidate answers with the stale copy at once and refreshes it exactly once")
    func staleWhileRevalidate() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            // The origin takes ten seconds to answer: the requests below all come while the refresh
            // the first stale answer started is in flight, and none of them waits for it (five
            // seconds was once too little for four requests on a loaded two-core machine; a request
            // after the refresh ended would find the entry stale again and start a second one).
            let url = "\(fixture.originURL)/object/5002?cc=max-age%3D1%2C%20stale-while-revalidate%3D600&delay=10000"
            _ = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", url])
            _ = try await Self.poll(fixture, url, "a stale-while-revalidate answer") { $0.contains("detail=stale-while-revalidate") }
            let started = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask { Self.cacheStatus(try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", url]).stdout) }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0.contains("detail=stale-while-revalidate") }, "\(statuses)")
            #expect(ContinuousClock.now - started < .seconds(10), "none waited for the origin")
            try await waitUntil(timeout: 10, "the background refresh") { fixture.origin.stats.conditionalRequests >= 1 }
            try await Task.sleep(for: .milliseconds(500))   // room for a second refresh that must not come
            #expect(fixture.origin.stats.conditionalRequests == 1, "one refresh for all of them")
        }
    }

    @Test("a 302 with explicit freshness is stored with its Location and answered without the origin")
    func redirectStored() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let url = "\(fixture.originURL)/location?to=%2Fobject%2F10&cc=max-age%3D600"
            let first = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", url])
            #expect(CachingTests.status(first.stdout) == "302" && Self.cacheStatus(first.stdout) == "passsage;fwd=uri-miss;stored")
            let hit = try await Self.poll(fixture, url, "a stored redirect") { $0.hasPrefix("passsage;hit") }
            #expect(CachingTests.status(hit) == "302" && CachingTests.headers(hit)["location"] == "/object/10")
            #expect(fixture.origin.stats.requests("/location") == 1)
        }
    }

    @Test("20 concurrent cold requests for one object cost one download upstream, and all get it whole")
    func coldRequestsCollapse() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let size = 8_000_000
            let url = "\(fixture.originURL)/object/\(size)?rate=8000000"
            let sums = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let file = fixture.directory + "/cold\(index)"
                        _ = try await fixture.proxiedCurl(["-s", "-o", file, url])
                        return try await sha256Hex(ofFile: file)
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(sums) == [OriginContent.sha256(range: 0..<Int64(size))])
            #expect(fixture.origin.stats.bytesSent < Int64(size) * 11 / 10, "sent \(fixture.origin.stats.bytesSent) bytes")
        }
    }

    @Test("a restarted passsage keeps its cache")
    func restartKeepsTheCache() async throws {
        try await Fixture.withCachingProxy { fixture, dataDirectory in
            let url = "\(fixture.originURL)/object/7000"
            _ = try await Self.poll(fixture, url, "a hit") { $0.hasPrefix("passsage;hit") }
            fixture.proxy.stop()
            let restarted = try await PasssageProcess.launch(["--upstream-ca-file", fixture.originCAFile,
                                                              "--data-dir", dataDirectory])
            defer { restarted.stop() }
            let caFile = fixture.directory + "/restarted-ca.pem"
            _ = try await curl(["-x", restarted.proxyURL, "-s", "-o", caFile, "http://mitm.it/cert/pem"])
            let requestsBefore = fixture.origin.stats.requests("/object/7000")
            let answer = try await curl(["-x", restarted.proxyURL, "--cacert", caFile, "-s", "-D", "-",
                                         "-o", fixture.directory + "/after", url])
            #expect(Self.cacheStatus(answer.stdout).hasPrefix("passsage;hit"), "\(answer.stdout)")
            #expect(fixture.origin.stats.requests("/object/7000") == requestsBefore)
            #expect(try await sha256Hex(ofFile: fixture.directory + "/after") == OriginContent.sha256(range: 0..<7000))
        }
    }

    @Test("a successful POST invalidates the cached GET of its URL and of its Location on the same origin (bug 15)")
    func unsafeRequestsInvalidate() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let target = "\(fixture.originURL)/object/4000"
            let other = "\(fixture.originURL)/object/4001"
            for url in [target, other] {
                _ = try await Self.poll(fixture, url, "a hit for \(url)") { $0.hasPrefix("passsage;hit") }
            }
            let post = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                                      "-d", "x", "\(target)?location=%2Fobject%2F4001"])
            #expect(post.stdout == "200")
            // The POST's URL has a query, so its target differs; the Location names /object/4001.
            _ = try await Self.poll(fixture, other, "the Location's entry invalidated") { $0.hasPrefix("passsage;fwd=uri-miss") }
            let plain = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", target])
            #expect(plain.stdout == "200")
            _ = try await Self.poll(fixture, target, "the target's entry invalidated") { $0.hasPrefix("passsage;fwd=uri-miss") }
            // Stored again by the miss that followed, and served as before.
            _ = try await Self.poll(fixture, target, "the new entry") { $0.hasPrefix("passsage;hit") }
        }
    }

    @Test("a hit's last_access reaches the metadata at shutdown at the latest (bug 25: the original lost the pending batch)")
    func lastAccessIsFlushedOnShutdown() async throws {
        try await Fixture.withCachingProxy { fixture, dataDirectory in
            let url = "\(fixture.originURL)/object/7100"
            _ = try await Self.poll(fixture, url, "a hit") { $0.hasPrefix("passsage;hit") }
            let stored = Int64(Date().timeIntervalSince1970)
            // last_access has one-second resolution: the next hit must be later than the store.
            try await waitUntil(timeout: 10, "the clock to pass the store") { Int64(Date().timeIntervalSince1970) >= stored + 2 }
            let hitTime = Int64(Date().timeIntervalSince1970)
            _ = try await Self.poll(fixture, url, "another hit") { $0.hasPrefix("passsage;hit") }
            // Batches are written every 30 s; only the shutdown flush can have written this one.
            fixture.proxy.signal(SIGTERM)
            #expect(try await fixture.proxy.waitForExit(timeout: 40) == 0)
            let store = try await SQLiteMetadataStore.open(path: dataDirectory + "/metadata.sqlite")
            var lastAccess: Int64?
            try await withTeardown {
                try await store.scan(fields: ["url", "last_access"], pageSize: 100) { page in
                    for document in page.values where document["url"]?.stringValue == url {
                        lastAccess = document["last_access"]?.stringValue.flatMap(Timestamps.parseISO8601)
                    }
                }
            } teardown: {
                try? await store.close()
            }
            let recorded = try #require(lastAccess)
            #expect(recorded >= hitTime, "last_access \(recorded), the hit at \(hitTime)")
        }
    }
}
