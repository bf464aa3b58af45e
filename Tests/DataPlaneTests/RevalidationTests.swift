import ChunkManifest
import DataPlane
import Foundation
import TestOrigin
import TestSupport
import Testing

@Suite("Data plane: revalidation and aliases")
struct RevalidationTests {
    static let lastModified = "Sat, 21 Nov 2026 00:00:00 GMT"

    @Test(.bug(id: 23, "xs3lerator-behaviour.md §13"), arguments: ["etag", "lm"])
    func entriesWithOneValidatorRevalidateWith304(validators: String) async throws {
        // Bug 23: a Last-Modified-only entry never revalidated.
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 3 << 20 + 5
            let path = "/object/\(size)?validators=\(validators)"
            _ = await fixture.get(path, key: "k/reval")
            _ = try await fixture.waitForManifest("k/reval")
            let before = fixture.origin.stats.plainRequests("/object/\(size)")
            let answer = await fixture.get(path, key: "k/reval") { request in
                if validators == "etag" { request.ifNoneMatch = "\"obj-\(size)\"" } else { request.ifModifiedSince = Self.lastModified }
                request.headers = ["If-None-Match": "\"client-own\""]
            }
            #expect(answer.status == 200 && answer.sha256 == expected(0..<size))
            #expect(answer.header("X-Xs3lerator-Revalidated") == "true")
            #expect(answer.header("X-Xs3lerator-Cache-Hit") == "true")
            #expect(fixture.origin.stats.conditionalRequests == 1, "one conditional GET, with the contract's validator only")
            #expect(fixture.origin.stats.plainRequests("/object/\(size)") == before + 1)
        }
    }

    @Test func aChangedOriginReplacesTheEntry() async throws {
        try await DataPlaneFixture.with { fixture in
            _ = await fixture.get("/object/2000000?etag=%22v1%22", key: "k/change")
            let old = try await fixture.waitForManifest("k/change")
            // Same key, the origin now has other content under another ETag.
            let answer = await fixture.get("/object/3000000?etag=%22v2%22", key: "k/change") { $0.ifNoneMatch = "%22v1%22" }
            #expect(answer.status == 200 && answer.sha256 == expected(0..<3_000_000))
            #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false")
            try await waitUntil(timeout: 30, "the entry to be replaced") {
                try await fixture.manifest("k/change")?.totalSize == 3_000_000
            }
            let hit = await fixture.get("/object/3000000", key: "k/change")
            #expect(hit.header("X-Xs3lerator-Cache-Hit") == "true" && hit.sha256 == expected(0..<3_000_000))
            _ = old
        }
    }

    @Test func staleIfErrorServesTheCacheWhenTheOriginFailsOrIsDown() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 2 << 20
            _ = await fixture.get("/object/\(size)", key: "k/stale")
            _ = try await fixture.waitForManifest("k/stale")
            let failing = await fixture.get("/status/500", key: "k/stale") {
                $0.ifNoneMatch = "\"obj-\(size)\""
                $0.staleIfError = true
            }
            #expect(failing.status == 200 && failing.sha256 == expected(0..<size))
            #expect(failing.header("X-Xs3lerator-Revalidated") == "stale-error")
            // Nothing listens on the port any more: refused.
            let closed = try unusedPort()
            var down = fixture.request("/object/\(size)", key: "k/stale") {
                $0.ifNoneMatch = "\"obj-\(size)\""
                $0.staleIfError = true
            }
            down.url = "http://127.0.0.1:\(closed)/object/\(size)"
            let answer = await fixture.get(down)
            #expect(answer.status == 200 && answer.sha256 == expected(0..<size))
            #expect(answer.header("X-Xs3lerator-Revalidated") == "stale-error")
            // Without Stale-If-Error the failure is passed on.
            let passed = await fixture.get("/status/500", key: "k/stale") { $0.ifNoneMatch = "\"obj-\(size)\"" }
            #expect(passed.status == 500)
        }
    }

    @Test func backgroundRevalidationAnswersAtOnceAndRefreshesOnce() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 1 << 20
            // The origin takes 8 s to answer: every request below arrives while the one
            // refresh is in flight, and none of them waits for it (8 s leaves room for a machine
            // whose two cores the rest of the suite shares: 4 s was once missed there).
            let path = "/object/\(size)?delay=8000"
            _ = await fixture.get(path, key: "k/background")
            _ = try await fixture.waitForManifest("k/background")
            let started = ContinuousClock.now
            for _ in 0..<5 {
                let answer = await fixture.get(path, key: "k/background") {
                    $0.ifNoneMatch = "\"obj-\(size)\""
                    $0.backgroundRevalidate = true
                }
                #expect(answer.status == 200 && answer.sha256 == expected(0..<size))
                #expect(answer.header("X-Xs3lerator-Background-Revalidate") == "accepted")
            }
            #expect(ContinuousClock.now - started < .seconds(8), "served before the origin could answer")
            try await waitUntil(timeout: 10, "the refresh to reach the origin") { fixture.origin.stats.conditionalRequests == 1 }
            try await waitUntil(timeout: 20, "stored_at to be refreshed") {
                try await fixture.metadata.get(["k/background"])["k/background"]?["stored_at"] != nil
            }
            #expect(fixture.origin.stats.conditionalRequests == 1, "exactly one refresh")
        }
    }

    @Test func aBackgroundRefreshOfAStalledOriginEndsEvenWithoutAReadTimeout() async throws {
        // Hostile-client finding F3: "no read timeout" on a refresh nobody waits for held the
        // upstream connection for ever. A refresh gets the default read timeout (10 s here).
        try await DataPlaneFixture.with { fixture in
            _ = await fixture.get("/object/4096", key: "k/stalled")
            _ = try await fixture.waitForManifest("k/stalled")
            let answer = await fixture.get("/stall", key: "k/stalled") {
                $0.ifNoneMatch = "\"obj-4096\""
                $0.backgroundRevalidate = true
                $0.readTimeout = .some(nil)
            }
            #expect(answer.status == 200 && answer.sha256 == expected(0..<4096))
            try await waitUntil(timeout: 30, "the refresh to give up") {
                String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self).contains("outcome=\"failed\"} 1")
            }
        }
    }

    @Test(.bug(id: 24, "xs3lerator-behaviour.md §13")) func backgroundRevalidationWithNothingCachedFetchesNow() async throws {
        // Bug 24: the original answered 404 or 500.
        try await DataPlaneFixture.with { fixture in
            let answer = await fixture.get("/object/5000", key: "k/nothing") {
                $0.ifNoneMatch = "\"obj-5000\""
                $0.backgroundRevalidate = true
            }
            #expect(answer.status == 200 && answer.sha256 == expected(0..<5000))
            #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false")
            _ = try await fixture.waitForManifest("k/nothing")
        }
    }

    @Test(.bug(id: 16, "xs3lerator-behaviour.md §13"), .bug(id: 17, "xs3lerator-behaviour.md §13"), .bug(id: 18, "xs3lerator-behaviour.md §13"), .bug(id: 19, "xs3lerator-behaviour.md §13")) func anAliasSharesChunksAndSurvivesARefreshOfItsSource() async throws {
        // Bug 17: refreshing the source deleted chunks the alias still used.
        try await DataPlaneFixture.with(separateDiskCache: true) { fixture in
            let size: Int64 = 3 << 20
            _ = await fixture.get("/object/\(size)", key: "k/source")
            let linked = await fixture.dataPlane.linkManifest(source: "k/source", target: "k/alias")
            #expect(linked.status == .noContent, "waits for the source's download to finish")
            #expect(try await fixture.manifest("k/alias") == fixture.manifest("k/source"))
            // Refresh the source with other content.
            _ = await fixture.get("/object/\(size + 1)", key: "k/source") { $0.cacheSkip = true }
            try await waitUntil(timeout: 30, "the source to be replaced") {
                try await fixture.manifest("k/source")?.totalSize == size + 1
            }
            try FileManager.default.removeItem(atPath: fixture.diskCache!.root)
            try FileManager.default.createDirectory(atPath: fixture.diskCache!.stagingDirectory, withIntermediateDirectories: true)
            let alias = await fixture.get("/nothing-there", key: "k/alias")
            #expect(alias.header("X-Xs3lerator-Cache-Hit") == "true" && alias.sha256 == expected(0..<size))
            let missing = await fixture.dataPlane.linkManifest(source: "k/none", target: "k/x")
            #expect(missing.status == .notFound)
        }
    }
}
