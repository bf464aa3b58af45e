import ChunkManifest
import Crypto
import DataPlane
import Foundation
import ObjectStore
import TestOrigin
import TestSupport
import Testing

@Suite("Data plane: failures and damaged chunks")
struct DamageTests {
    @Test(.bug(id: 7, "xs3lerator-behaviour.md §13")) func refusedUploadsServeTheClientButWriteNoManifest() async throws {
        // Bug 7: a failed upload still committed, so the manifest named a missing chunk.
        try await DataPlaneFixture.with(separateDiskCache: true, wrapObjects: { RefusingUploads(base: $0) }) { fixture in
            let size: Int64 = 5 << 20 + 3
            let answer = await fixture.get("/object/\(size)", key: "k/refused")
            #expect(answer.status == 200 && answer.failure == nil && answer.sha256 == expected(0..<size),
                    "the client still gets every byte")
            try await fixture.waitForQuiet()
            #expect(try await fixture.manifest("k/refused") == nil)
            let metrics = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(!metrics.contains("xs3_upload_failures_total 0"), "\(metrics)")
        }
    }

    @Test(.bug(id: 2, "xs3lerator-behaviour.md §13")) func originDroppingMidDownloadLeavesNoManifest() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 4 << 20
            let answer = await fixture.get("/object/\(size)?ranges=none&drop=\(size / 3)", key: "k/drop")
            #expect(answer.failure != nil && answer.count < size, "bug 2: never a body with holes passed off as whole")
            try await fixture.waitForQuiet()
            #expect(try await fixture.manifest("k/drop") == nil)
        }
    }

    @Test(.bug(id: 5, "xs3lerator-behaviour.md §13"), .bug(id: 6, "xs3lerator-behaviour.md §13")) func aDamagedFirstChunkFoundBeforeTheHeadersIsRefetchedAndRepaired() async throws {
        try await DataPlaneFixture.with(separateDiskCache: true) { fixture in
            let size: Int64 = 4 << 20 + 100
            let path = "/object/\(size)"
            _ = await fixture.get(path, key: "k/corrupt")
            let manifest = try await fixture.waitForManifest("k/corrupt")
            let first = manifest.chunks[0]
            // Same length, other bytes, on disk and in the store.
            for file in [fixture.diskPath(first), try fixture.objectPath(first)] {
                let handle = try #require(FileHandle(forWritingAtPath: file))
                try handle.seek(toOffset: 1000)
                try handle.write(contentsOf: Data([0xde, 0xad]))
                try handle.close()
            }
            let before = fixture.origin.stats.plainRequests(path)
            let answer = await fixture.get(path, key: "k/corrupt")
            #expect(answer.status == 200 && answer.failure == nil && answer.sha256 == expected(0..<size))
            #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false", "served from upstream in the same request")
            #expect(fixture.origin.stats.plainRequests(path) == before + 1)
            try await fixture.waitForQuiet()
            let repaired = try #require(try await fixture.manifest("k/corrupt"))
            #expect(repaired.chunks == manifest.chunks, "content addressing: the same chunks, rewritten whole")
            let hit = await fixture.get(path, key: "k/corrupt")
            #expect(hit.header("X-Xs3lerator-Cache-Hit") == "true" && hit.sha256 == expected(0..<size))
            // The store's copy was repaired too: a hit with no disk cache works.
            try FileManager.default.removeItem(atPath: fixture.diskPath(first))
            let fromStore = await fixture.get(path, key: "k/corrupt")
            #expect(fromStore.header("X-Xs3lerator-Cache-Hit") == "true" && fromStore.sha256 == expected(0..<size))
        }
    }

    @Test(.bug(id: 9, "xs3lerator-behaviour.md §13")) func aMissingLaterChunkIsFoundBeforeTheHeaders() async throws {
        // Bug 9: a missing chunk truncated a body that had already been promised.
        try await DataPlaneFixture.with(separateDiskCache: true) { fixture in
            let size: Int64 = 6 << 20
            let path = "/object/\(size)"
            _ = await fixture.get(path, key: "k/missing")
            let manifest = try await fixture.waitForManifest("k/missing")
            let victim = manifest.chunks[4]
            try FileManager.default.removeItem(atPath: fixture.diskPath(victim))
            try FileManager.default.removeItem(atPath: try fixture.objectPath(victim))
            let answer = await fixture.get(path, key: "k/missing")
            #expect(answer.status == 200 && answer.failure == nil && answer.sha256 == expected(0..<size))
            #expect(answer.header("X-Xs3lerator-Cache-Hit") == "false")
            try await fixture.waitForQuiet()
            #expect(FileManager.default.fileExists(atPath: try fixture.objectPath(victim)), "the refetch stored it again")
        }
    }

    @Test(.bug(id: 5, "xs3lerator-behaviour.md §13"), .bug(id: 6, "xs3lerator-behaviour.md §13")) func corruptionFoundMidStreamAbortsInsteadOfSendingWrongBytes() async throws {
        try await DataPlaneFixture.with(separateDiskCache: true, hitReadAhead: 1) { fixture in
            let size: Int64 = 6 << 20
            let path = "/object/\(size)"
            _ = await fixture.get(path, key: "k/midstream")
            let manifest = try await fixture.waitForManifest("k/midstream")
            let victim = manifest.chunks[3]
            for file in [fixture.diskPath(victim), try fixture.objectPath(victim)] {
                let handle = try #require(FileHandle(forWritingAtPath: file))
                try handle.seek(toOffset: 5)
                try handle.write(contentsOf: Data([1, 2, 3]))
                try handle.close()
            }
            let answer = await fixture.get(path, key: "k/midstream")
            #expect(answer.status == 200 && answer.header("X-Xs3lerator-Cache-Hit") == "true")
            #expect(answer.failure != nil, "the body throws: the connection is aborted")
            #expect(answer.count == 3 << 20, "every byte before the bad chunk was right, none of it was sent")
            try await waitUntil(timeout: 10, "the damaged manifest to be cleared") {
                try await fixture.manifest("k/midstream") == nil
            }
        }
    }

    @Test("a chunk file changed on disk after a hit verified it (and opened it ahead) is never sent as the chunk: the body fails")
    func aChunkChangedAfterItWasVerifiedIsNotSent() async throws {
        try await DataPlaneFixture.with(hitReadAhead: 4) { fixture in
            let size: Int64 = 6 << 20
            let path = "/object/\(size)"
            _ = await fixture.get(path, key: "k/tampered")
            let manifest = try await fixture.waitForManifest("k/tampered")
            let response = await fixture.dataPlane.serve(fixture.request(path, key: "k/tampered"))
            #expect(response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true")
            var iterator = response.body.makeAsyncIterator()
            var received = 0
            // The first chunk streams; the ones after it are opened (and checked) meanwhile.
            while received < DataPlaneFixture.chunkSize, let piece = try await iterator.next() { received += piece.readableBytes }
            for victim in manifest.chunks[1...2] {
                let handle = try #require(FileHandle(forWritingAtPath: fixture.diskPath(victim)))
                try handle.seek(toOffset: 100)
                try handle.write(contentsOf: Data([1, 2, 3]))
                try handle.close()
            }
            var failure: (any Error)?
            do {
                while let piece = try await iterator.next() { received += piece.readableBytes }
            } catch {
                failure = error
            }
            #expect(failure != nil, "the body throws: the connection is aborted")
            #expect(Int64(received) == DataPlaneFixture.chunkSize, "nothing of the changed chunks went out")
        }
    }

    /// Whether this process holds `path` open.
    static func isOpen(_ path: String) -> Bool {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == path }
    }

    @Test("a chunk evicted (unlinked) while a hit reads it is still sent whole: eviction is not damage")
    func aChunkEvictedDuringAHitIsStillSentWhole() async throws {
        try await DataPlaneFixture.with(hitReadAhead: 4) { fixture in
            let size = 2 * DataPlaneFixture.chunkSize
            let path = "/object/\(size)?seed=11"
            _ = await fixture.get(path, key: "k/evicted")
            let manifest = try await fixture.waitForManifest("k/evicted")
            let response = await fixture.dataPlane.serve(fixture.request(path, key: "k/evicted"))
            #expect(response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true")
            var iterator = response.body.makeAsyncIterator()
            var hasher = SHA256()
            var received = 0
            let first = try #require(try await iterator.next())
            received += first.readableBytes
            first.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            // The second chunk is opened ahead of the reader; then eviction unlinks it.
            let second = fixture.diskPath(manifest.chunks[1])
            try await waitUntil(timeout: 10, "the hit to open the second chunk") { Self.isOpen(second) }
            try FileManager.default.removeItem(atPath: second)
            while let piece = try await iterator.next() {
                received += piece.readableBytes
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            #expect(Int64(received) == size)
            #expect(OriginContent.hex(hasher.finalize()) == expected(11..<(11 + size)))
        }
    }
}
