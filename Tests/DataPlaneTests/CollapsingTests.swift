import ChunkManifest
import DataPlane
import Foundation
import TestOrigin
import TestSupport
import Testing

@Suite("Data plane: request collapsing")
struct CollapsingTests {
    @Test(.bug(id: 12, "xs3lerator-behaviour.md §13"), .bug(id: 13, "xs3lerator-behaviour.md §13")) func concurrentRequestsShareOneDownloadEachWithItsOwnRange() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 24 << 20
            // Slow enough that every request arrives while the download is in flight.
            let path = "/object/\(size)"
            let query = "?rate=\(16 << 20)"
            let ranges: [(String?, Range<Int64>)] = (0..<20).map { i in
                switch i % 4 {
                case 0: (nil, 0..<size)
                case 1: ("bytes=\(Int64(i) << 20)-\(Int64(i) << 20 + 99_999)", (Int64(i) << 20)..<(Int64(i) << 20 + 100_000))
                case 2: ("bytes=-\(i * 1000 + 1)", (size - Int64(i * 1000 + 1))..<size)
                default: ("bytes=\(size / 2)-", (size / 2)..<size)
                }
            }
            let answers = await withTaskGroup(of: (Int, DataPlaneFixture.Answer).self) { group in
                for (index, (range, _)) in ranges.enumerated() {
                    group.addTask { (index, await fixture.get(path + query, key: "k/collapse", range: range)) }
                }
                var all = [Int: DataPlaneFixture.Answer]()
                for await (index, answer) in group { all[index] = answer }
                return all
            }
            #expect(fixture.origin.stats.plainRequests(path) == 1, "bug 12: one upstream download for all")
            for (index, (range, span)) in ranges.enumerated() {
                let answer = answers[index]!
                #expect(answer.failure == nil, "\(index): \(answer.failure ?? "")")
                #expect(answer.status == (range == nil ? 200 : 206), "\(index)")
                #expect(answer.count == Int64(span.count) && answer.sha256 == expected(span), "\(index) \(range ?? "whole")")
                // Bug 13: joiners get the upstream's headers too.
                #expect(answer.header("ETag") == "\"obj-\(size)\"", "\(index)")
                #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false")
            }
            let metrics = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(metrics.contains("xs3_collapsed_joins_total 19"), "\(metrics)")
            _ = try await fixture.waitForManifest("k/collapse")
            try await fixture.waitForQuiet()
        }
    }

    @Test func aLateJoinerStillGetsEverythingAndTheDownloadOutlivesItsClient() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 16 << 20
            let path = "/object/\(size)?rate=\(8 << 20)"
            // The creator reads one piece and leaves: the keyed download goes on for the cache.
            let first = await fixture.dataPlane.serve(fixture.request(path, key: "k/late"))
            var iterator = first.body.makeAsyncIterator()
            _ = try await iterator.next()
            try await waitUntil(timeout: 30, "half of the object to be downloaded") {
                fixture.origin.stats.bytesSent >= size / 2
            }
            let late = await fixture.get(path, key: "k/late")
            #expect(late.status == 200 && late.failure == nil && late.sha256 == expected(0..<size))
            #expect(fixture.origin.stats.plainRequests("/object/\(size)") == 1)
            _ = try await fixture.waitForManifest("k/late")
            _ = iterator
        }
    }

    @Test func aDownloadWhoseClientLeftStillFillsTheCache() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 6 << 20
            let response = await fixture.dataPlane.serve(fixture.request("/object/\(size)", key: "k/left"))
            #expect(response.status == .ok)
            // The response is dropped unread.
            _ = response.status
            let manifest = try await fixture.waitForManifest("k/left")
            #expect(manifest.totalSize == size)
            let hit = await fixture.get("/object/\(size)", key: "k/left")
            #expect(hit.header("X-Xs3lerator-Cache-Hit") == "true" && hit.sha256 == expected(0..<size))
        }
    }

    @Test(.bug(id: 2, "xs3lerator-behaviour.md §13")) func joinersOfAFailedDownloadNeverSeeAWholeBody() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 8 << 20
            // No ranges, and the only stream drops half-way: the download fails for everyone.
            let path = "/object/\(size)?ranges=none&drop=\(size / 2)&rate=\(16 << 20)"
            let answers = await withTaskGroup(of: DataPlaneFixture.Answer.self) { group in
                for _ in 0..<5 { group.addTask { await fixture.get(path, key: "k/failed") } }
                var all = [DataPlaneFixture.Answer]()
                for await answer in group { all.append(answer) }
                return all
            }
            for answer in answers {
                if answer.status == 200 {
                    #expect(answer.failure != nil && answer.count < size, "a truncated body must end in an error, not look complete")
                }
            }
            try await fixture.waitForQuiet()
            #expect(try await fixture.manifest("k/failed") == nil, "nothing partial is marked complete")
            #expect(fixture.dataPlane.downloadsInFlight == 0, "registration released on failure")
        }
    }
}
