import ChunkManifest
import Crypto
import DataPlane
import Foundation
import NIOCore
import Testing
import TestOrigin

/// Small bodies held in memory for the embedding (passsage answers hot hits from them).
@Suite("Data plane: bodies in memory")
struct MemoryBodyTests {
    static func hex(_ buffer: ByteBuffer) -> String {
        buffer.withUnsafeReadableBytes { SHA256.hash(data: $0) }.map { String(format: "%02x", $0) }.joined()
    }

    @Test("a small stored body is loaded verified, then answered from memory; empty bodies always are")
    func smallBodiesLoadAndStay() async throws {
        var options = DataPlaneFixture.Options()
        options.memoryCacheBytes = 1 << 20
        options.memoryCacheObjectLimit = 64 << 10
        try await DataPlaneFixture.with(options) { fixture in
            _ = await fixture.get("/object/5000", key: "k/small")
            let manifest = try await fixture.waitForManifest("k/small")
            #expect(fixture.dataPlane.bodyInMemory(manifest) == nil, "nothing is held before a hit loads it")
            let loaded = try #require(await fixture.dataPlane.loadIntoMemory(manifest))
            #expect(Self.hex(loaded) == expected(0..<5000))
            // Memory answers now, even with the disk copy gone.
            try FileManager.default.removeItem(atPath: fixture.diskPath(manifest.chunks[0]))
            let held = try #require(fixture.dataPlane.bodyInMemory(manifest))
            #expect(Self.hex(held) == expected(0..<5000))

            _ = await fixture.get("/object/0", key: "k/empty")
            let empty = try await fixture.waitForManifest("k/empty")
            #expect(fixture.dataPlane.bodyInMemory(empty)?.readableBytes == 0)
        }
    }

    @Test("damaged, too large or many-chunk bodies are never held: the caller serves them the usual way")
    func onlyVerifiedSmallSingleChunkBodies() async throws {
        var options = DataPlaneFixture.Options()
        options.memoryCacheBytes = 4 << 20
        options.memoryCacheObjectLimit = 8 << 10
        try await DataPlaneFixture.with(options) { fixture in
            _ = await fixture.get("/object/6000?seed=3", key: "k/damaged")
            let damaged = try await fixture.waitForManifest("k/damaged")
            // Same length, other bytes: the chunk no longer matches its name.
            let path = fixture.diskPath(damaged.chunks[0])
            try Data(repeating: 0x41, count: 6000).write(to: URL(fileURLWithPath: path))
            #expect(await fixture.dataPlane.loadIntoMemory(damaged) == nil)
            #expect(fixture.dataPlane.bodyInMemory(damaged) == nil)

            _ = await fixture.get("/object/9000", key: "k/large")
            let large = try await fixture.waitForManifest("k/large")
            #expect(await fixture.dataPlane.loadIntoMemory(large) == nil, "larger than the object limit")

            _ = await fixture.get("/object/\(DataPlaneFixture.chunkSize + 10)", key: "k/two-chunks")
            let twoChunks = try await fixture.waitForManifest("k/two-chunks")
            #expect(twoChunks.chunks.count == 2)
            #expect(await fixture.dataPlane.loadIntoMemory(twoChunks) == nil)
        }
    }

    @Test("without a memory budget nothing is held")
    func disabledByDefault() async throws {
        try await DataPlaneFixture.with { fixture in
            _ = await fixture.get("/object/5000", key: "k/small")
            let manifest = try await fixture.waitForManifest("k/small")
            #expect(await fixture.dataPlane.loadIntoMemory(manifest) == nil)
        }
    }
}
