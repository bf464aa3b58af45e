import Foundation
import Testing
import TestOrigin
import TestSupport

/// The embedded cache's memory (small bodies and metadata documents) and the size of its
/// object directory, through the real proxy.
@Suite("Embedded cache: memory and size")
struct HotCacheTests {
    /// Every chunk file under the data directory's object store.
    static func chunkFiles(_ dataDirectory: String) -> [String] {
        let root = dataDirectory + "/objects/data"
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }
            .filter { !$0.hasPrefix(".tmp") && ($0 as NSString).lastPathComponent.count == 64 }
            .map { root + "/" + $0 }
    }

    static func storedBytes(_ dataDirectory: String) -> Int64 {
        chunkFiles(dataDirectory).reduce(0) { total, path in
            total + ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0)
        }
    }

    /// Fetches `url` until it is a hit; returns the hit's headers.
    static func warm(_ fixture: Fixture, _ url: String) async throws -> [String: String] {
        _ = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", url])
        var headers: [String: String] = [:]
        try await waitUntil(timeout: 10, "a hit for \(url)") {
            let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", url])
            headers = CachingTests.headers(again.stdout)
            return headers["cache-status"]?.hasPrefix("passsage;hit") == true
        }
        return headers
    }

    @Test("a small hit is answered from memory: with its chunk file gone it is still whole, and it carries the stored headers, Via and Age")
    func smallHitsComeFromMemory() async throws {
        try await Fixture.withCachingProxy { fixture, dataDirectory in
            let url = "\(fixture.originURL)/object/1000?seed=7"
            _ = try await Self.warm(fixture, url)
            let requests = fixture.origin.stats.requests("/object/1000")
            // The hit above read the body into memory; the disk copy is no longer needed for it.
            for path in Self.chunkFiles(dataDirectory) { try FileManager.default.removeItem(atPath: path) }
            let hit = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/hit", url])
            let headers = CachingTests.headers(hit.stdout)
            #expect(CachingTests.status(hit.stdout) == "200", "\(hit.stdout)")
            #expect(headers["cache-status"]?.hasPrefix("passsage;hit") == true, "\(hit.stdout)")
            #expect(headers["etag"] == "\"obj-1000\"" && headers["content-length"] == "1000")
            #expect(headers["age"] != nil && headers["via"] != nil && headers["accept-ranges"] == "bytes", "\(hit.stdout)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/hit") == OriginContent.sha256(range: 7..<1007))
            #expect(fixture.origin.stats.requests("/object/1000") == requests, "the hit never reached the origin")
            // A range is served from the stored object (gone here): the loss is noticed and the
            // entry fetched again, whole and right.
            let range = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/range",
                                                       "-H", "Range: bytes=0-9", url])
            #expect(["200", "206"].contains(CachingTests.status(range.stdout)), "\(range.stdout)")
        }
    }

    @Test("with --memory-cache-size 0 nothing is held in memory: a lost chunk is noticed and the entry fetched again")
    func memoryCacheCanBeDisabled() async throws {
        try await Fixture.withCachingProxy(arguments: ["--memory-cache-size", "0"]) { fixture, dataDirectory in
            let url = "\(fixture.originURL)/object/1000?seed=9"
            _ = try await Self.warm(fixture, url)
            let requests = fixture.origin.stats.requests("/object/1000")
            for path in Self.chunkFiles(dataDirectory) { try FileManager.default.removeItem(atPath: path) }
            let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/again", url])
            #expect(CachingTests.status(again.stdout) == "200", "\(again.stdout)")
            #expect(CachingTests.headers(again.stdout)["cache-status"]?.contains("fwd=stale") == true, "\(again.stdout)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/again") == OriginContent.sha256(range: 9..<1009))
            #expect(fixture.origin.stats.requests("/object/1000") == requests + 1)
        }
    }

    @Test("--cache-size bounds the object directory: eviction brings it under the high watermark, and an evicted entry is fetched again whole")
    func cacheSizeIsKept() async throws {
        let size = 1_000_000
        try await Fixture.withCachingProxy(arguments: ["--cache-size", "4MiB", "--memory-cache-size", "0"]) { fixture, dataDirectory in
            for seed in 1...10 {
                _ = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", "\(fixture.originURL)/object/\(size)?seed=\(seed)"])
            }
            let limit = Int64(4 << 20) * 95 / 100
            // The cache checks its usage every 10 s.
            try await waitUntil(timeout: 40, "the object directory under \(limit) bytes") {
                Self.storedBytes(dataDirectory) < limit
            }
            #expect(Self.storedBytes(dataDirectory) > 0, "eviction stops at the low watermark, it does not empty the cache")
            let first = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/first",
                                                       "\(fixture.originURL)/object/\(size)?seed=1"])
            #expect(CachingTests.status(first.stdout) == "200", "\(first.stdout)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/first") == OriginContent.sha256(range: 1..<Int64(size + 1)))
        }
    }

    @Test("bad size options are refused with the option's name")
    func badSizeOptions() async throws {
        for (arguments, needle) in [(["--cache-size", "lots"], "--cache-size"),
                                    (["--cache-low-watermark", "96"], "--cache-low-watermark"),
                                    (["--memory-cache-size", "-1"], "--memory-cache-size")] {
            let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PASSSAGE_") }
            let result = try await run(PasssageProcess.executable,
                                       arguments + ["--data-dir", try makeTemporaryDirectory(), "--port", "0"],
                                       environment: environment, timeout: 30)
            #expect(result.status != 0)
            #expect(result.stderr.contains(needle), "\(arguments): \(result.stderr)")
        }
    }
}
