import ChunkManifest
import DataPlane
import Foundation
import TestOrigin
import TestSupport
import Testing

/// A tmpfs of `megabytes` MiB mounted for one test (root only), unmounted after.
struct SmallFileSystem {
    let path: String

    static func mount(megabytes: Int) throws -> SmallFileSystem? {
        let path = try makeTemporaryDirectory()
        let status = try runBlocking("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return SmallFileSystem(path: path)
    }

    func unmount() {
        _ = try? runBlocking("/bin/umount", [path])
        try? FileManager.default.removeItem(atPath: path)
    }

    var usagePercent: Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return -1 }
        return Int((UInt64(info.f_blocks) - UInt64(info.f_bavail)) * 100 / UInt64(info.f_blocks))
    }
}

private func runBlocking(_ executable: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// Whether this process may mount a tmpfs (the tests below need a real small file system).
let canMount: Bool = {
    guard let probe = try? SmallFileSystem.mount(megabytes: 1) else { return false }
    probe.unmount()
    return true
}()

@Suite("Data plane: disk cache", .serialized)
struct DiskCacheTests {
    @Test(.bug(id: 33, "xs3lerator-behaviour.md §13")) func startUpRemovesStagingFilesACrashLeftBehind() throws {
        // Bug 33: the original never cleaned its staging directory.
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/.tmp", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/.tmp/abc.123", contents: Data(repeating: 1, count: 100))
        let cache = try DiskCache(root: root, watermarks: .init(low: 50, high: 60))
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.stagingDirectory).isEmpty)
    }

    @Test(.bug(id: 33, "xs3lerator-behaviour.md §13"), .enabled(if: canMount, "needs to mount a tmpfs"))
    func evictionKeepsUsageBetweenTheWatermarksLeastRecentlyUsedFirst() async throws {
        let small = try #require(try SmallFileSystem.mount(megabytes: 40))
        defer { small.unmount() }
        var options = DataPlaneFixture.Options()
        options.separateDiskCache = true
        options.diskCacheRoot = small.path + "/cache"
        options.watermarks = .init(low: 50, high: 70)
        options.temporaryDirectory = NSTemporaryDirectory()
        options.checkInterval = .milliseconds(100)
        try await DataPlaneFixture.with(options) { fixture in
            let size: Int64 = 4 << 20
            var keys: [String] = []
            for index in 0..<9 {
                let key = "k/evict\(index)"
                keys.append(key)
                // Other seeds, other bytes: content addressing would share equal chunks.
                let seed = Int64(index) * 7_919
                let answer = await fixture.get("/object/\(size)?seed=\(seed)", key: key)
                #expect(answer.failure == nil && answer.sha256 == expected(seed..<(seed + size)),
                        "status \(answer.status), \(answer.count) bytes, headers \(answer.headers)")
                _ = try await fixture.waitForManifest(key)
                if index >= 1 {
                    // Keep the first object in use: it must outlive the ones after it.
                    let hit = await fixture.get("/object/\(size)?seed=0", key: keys[0])
                    #expect(hit.header("X-Xs3lerator-Cache-Hit") == "true")
                }
                try await waitUntil(timeout: 10, "usage below the high watermark") { small.usagePercent < 70 }
            }
            let usage = small.usagePercent
            #expect(usage < 70, "usage \(usage) %")
            #expect(usage >= 50 - 12, "no more evicted than needed: usage \(usage) %")
            let metrics = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(!metrics.contains("xs3_disk_cache_evictions_total 0"), "\(metrics)")
            let first = try #require(try await fixture.manifest(keys[0]))
            for id in first.chunks {
                #expect(FileManager.default.fileExists(atPath: fixture.diskPath(id)), "the most used object stays")
            }
            let second = try #require(try await fixture.manifest(keys[1]))
            #expect(second.chunks.contains { !FileManager.default.fileExists(atPath: fixture.diskPath($0)) },
                    "the least recently used object went first")
            // Evicted from disk is still cached: the object store has it.
            let again = await fixture.get("/object/\(size)?seed=7919", key: keys[1])
            #expect(again.header("X-Xs3lerator-Cache-Hit") == "true" && again.sha256 == expected(7_919..<(7_919 + size)))
        }
    }

    @Test(.bug(id: 29, "xs3lerator-behaviour.md §13"), .enabled(if: canMount, "needs to mount a tmpfs"))
    func aFullDiskServesInDegradedModeUntilSpaceReturns() async throws {
        let small = try #require(try SmallFileSystem.mount(megabytes: 24))
        defer { small.unmount() }
        var options = DataPlaneFixture.Options()
        options.separateDiskCache = true
        options.diskCacheRoot = small.path + "/cache"
        options.watermarks = .init(low: 80, high: 99)
        options.checkInterval = .milliseconds(100)
        try await DataPlaneFixture.with(options) { fixture in
            // Fill the file system with something that is not the cache's to evict.
            let filler = small.path + "/filler"
            FileManager.default.createFile(atPath: filler, contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: filler))
            let block = Data(repeating: 7, count: 1 << 20)
            do { while true { try handle.write(contentsOf: block) } } catch {}
            try handle.close()
            let size: Int64 = 3 << 20
            let answer = await fixture.get("/object/\(size)", key: "k/full")
            #expect(answer.status == 200 && answer.failure == nil && answer.sha256 == expected(0..<size), "the client never fails")
            #expect(answer.header("X-Xs3lerator-Degraded") == "enospc")
            try await fixture.waitForQuiet()
            #expect(try await fixture.manifest("k/full") == nil)
            try FileManager.default.removeItem(atPath: filler)
            try await waitUntil(timeout: 10, "degraded mode to end") {
                await fixture.get("/object/1", key: "k/probe\(UInt32.random(in: 0...UInt32.max))").header("X-Xs3lerator-Degraded") == nil
            }
            let cached = await fixture.get("/object/\(size)", key: "k/full")
            #expect(cached.header("X-Xs3lerator-Degraded") == nil && cached.sha256 == expected(0..<size))
            _ = try await fixture.waitForManifest("k/full")
            let metrics = String(decoding: fixture.dataPlane.metrics.render(), as: UTF8.self)
            #expect(!metrics.contains("xs3_disk_cache_degraded_seconds_total 0\n"), "\(metrics)")
        }
    }
}
