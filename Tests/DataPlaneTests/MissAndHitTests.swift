import ChunkManifest
import Crypto
import DataPlane
import Foundation
import ObjectStore
import StorageCore
import TestOrigin
import TestSupport
import Testing

@Suite("Data plane: miss, then hit")
struct MissAndHitTests {
    @Test func missStoresContentAddressedChunksThenHitsWithoutUpstream() async throws {
        try await DataPlaneFixture.with(separateDiskCache: true) { fixture in
            // The acceptance's 300 MiB, through the in-process API with no HTTP server.
            let size: Int64 = 300 << 20 + 12345
            let path = "/object/\(size)"
            let miss = await fixture.get(path, key: "k/miss-hit")
            #expect(miss.status == 200 && miss.failure == nil)
            #expect(miss.count == size && miss.sha256 == expected(0..<size))
            #expect(miss.header("X-Xs3lerator-Cache-Hit") == "false")
            #expect(miss.header("X-Xs3lerator-Full-Size") == String(size))
            #expect(miss.header("ETag") == "\"obj-\(size)\"", "the origin's headers reach the client")

            let manifest = try await fixture.waitForManifest("k/miss-hit")
            #expect(manifest.totalSize == size && manifest.chunkSize == DataPlaneFixture.chunkSize)
            #expect(manifest.chunks.allSatisfy { $0.algorithm == .sha256 })
            // The store holds exactly the manifest's chunks, each under its SHA-256.
            let keys = try await fixture.storedChunkKeys()
            #expect(keys == Set(try manifest.chunks.map(fixture.chunkKey)))
            for (index, id) in manifest.chunks.enumerated() {
                let bytes = try await fixture.objects.get(try fixture.chunkKey(id)).body.collect(upTo: 2 << 20)
                #expect(Int64(bytes.readableBytes) == manifest.byteRange(ofChunk: index).count)
                let digest = bytes.withUnsafeReadableBytes { Array(SHA256.hash(data: $0)) }
                #expect(digest == id.bytes, "chunk \(index) is stored under its own hash")
                #expect(FileManager.default.fileExists(atPath: fixture.diskPath(id)), "chunk \(index) is in the disk cache")
            }

            let before = fixture.origin.stats.requests(path)
            let hit = await fixture.get(path, key: "k/miss-hit")
            #expect(hit.status == 200 && hit.failure == nil && hit.sha256 == expected(0..<size))
            #expect(hit.header("X-Xs3lerator-Cache-Hit") == "true")
            #expect(hit.header("Content-Length") == String(size))
            #expect(fixture.origin.stats.requests(path) == before, "a hit makes no upstream request")
            let metrics = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(metrics.contains("xs3_bytes_served_total{source=\"disk\"} \(size)"), "\(metrics)")

            // Without the disk cache the hit comes from the object store and back-fills it.
            try FileManager.default.removeItem(atPath: fixture.diskCache!.root)
            try FileManager.default.createDirectory(atPath: fixture.diskCache!.stagingDirectory, withIntermediateDirectories: true)
            let fromStore = await fixture.get(path, key: "k/miss-hit")
            #expect(fromStore.status == 200 && fromStore.failure == nil && fromStore.sha256 == expected(0..<size))
            #expect(fixture.origin.stats.requests(path) == before)
            for id in manifest.chunks {
                #expect(FileManager.default.fileExists(atPath: fixture.diskPath(id)), "back-filled after verification")
            }
            let after = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(after.contains("xs3_bytes_served_total{source=\"object_store\"} \(size)"), "\(after)")
        }
    }

    @Test(.bug(id: 22, "xs3lerator-behaviour.md §13")) func hitsAnswerEveryRangeAndRefuseUnsatisfiableOnesWithoutUpstream() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 5 << 20 + 7
            let path = "/object/\(size)"
            _ = await fixture.get(path, key: "k/ranges")
            _ = try await fixture.waitForManifest("k/ranges")
            let before = fixture.origin.stats.requests(path)
            let cases: [(String, Range<Int64>)] = [
                ("bytes=0-0", 0..<1), ("bytes=1048575-1048576", (1 << 20 - 1)..<(1 << 20 + 1)), ("bytes=-10", (size - 10)..<size),
                ("bytes=3000000-", 3_000_000..<size), ("bytes=100-99999999", 100..<size), ("bytes=4194304-5242879", (4 << 20)..<(5 << 20)),
            ]
            for (range, span) in cases {
                let answer = await fixture.get(path, key: "k/ranges", range: range)
                #expect(answer.status == 206, "\(range)")
                #expect(answer.sha256 == expected(span) && answer.count == Int64(span.count), "\(range)")
                #expect(answer.header("Content-Range") == "bytes \(span.lowerBound)-\(span.upperBound - 1)/\(size)", "\(range)")
                #expect(answer.header("X-Xs3lerator-Cache-Hit") == "true")
            }
            let unsatisfiable = await fixture.get(path, key: "k/ranges", range: "bytes=\(size)-")
            #expect(unsatisfiable.status == 416)
            #expect(unsatisfiable.header("Content-Range") == "bytes */\(size)")
            #expect(fixture.origin.stats.requests(path) == before, "bug 22: no upstream download before a 416")
        }
    }

    @Test(.bug(id: 11, "xs3lerator-behaviour.md §13")) func zeroLengthBodiesCacheAndHit() async throws {
        // Bug 11: an empty body never finished and stuck its key.
        try await DataPlaneFixture.with { fixture in
            let miss = await fixture.get("/object/0", key: "k/empty")
            #expect(miss.status == 200 && miss.count == 0 && miss.header("Content-Length") == "0")
            let manifest = try await fixture.waitForManifest("k/empty")
            #expect(manifest.totalSize == 0 && manifest.chunks.isEmpty)
            let before = fixture.origin.stats.requests("/object/0")
            let hit = await fixture.get("/object/0", key: "k/empty")
            #expect(hit.status == 200 && hit.count == 0 && hit.header("X-Xs3lerator-Cache-Hit") == "true")
            #expect(fixture.origin.stats.requests("/object/0") == before)
            #expect(fixture.dataPlane.downloadsInFlight == 0)
        }
    }

    @Test(.bug(id: 8, "xs3lerator-behaviour.md §13"), .bug(id: 28, "xs3lerator-behaviour.md §13"), .bug(id: 32, "xs3lerator-behaviour.md §13")) func onlyWhole200sAreStored() async throws {
        // Bug 28: other 2xx were cached as full bodies. Errors and redirects pass through uncached.
        try await DataPlaneFixture.with { fixture in
            for (path, status) in [("/status/404", 404), ("/status/204", 204), ("/status/206?body=partial", 206), ("/redirect/1/small", 302)] {
                let answer = await fixture.get(path, key: "k/status\(status)")
                #expect(answer.status == UInt(status), "\(path)")
                #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false", "\(path)")
                try await fixture.waitForQuiet()
                #expect(try await fixture.manifest("k/status\(status)") == nil, "\(path) is not cached")
            }
            let chunked = await fixture.get("/object/5000?chunked=1", key: "k/chunked")
            #expect(chunked.status == 200 && chunked.sha256 == expected(0..<5000), "unknown lengths are relayed exactly")
            #expect(try await fixture.manifest("k/chunked") == nil)
        }
    }

    @Test func clientConditionalsNeverReachUpstreamOnKeyedRequests() async throws {
        try await DataPlaneFixture.with { fixture in
            let answer = await fixture.get("/object/1000", key: "k/cond") { request in
                request.headers = ["If-None-Match": "\"obj-1000\"", "If-Modified-Since": "Sat, 21 Nov 2026 00:00:00 GMT"]
            }
            #expect(answer.status == 200 && answer.count == 1000, "upstream could have said 304 for something we do not have")
            #expect(fixture.origin.stats.conditionalRequests == 0)
        }
    }
}
