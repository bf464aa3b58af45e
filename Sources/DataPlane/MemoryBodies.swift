import ChunkManifest
import Crypto
import NIOConcurrencyHelpers
import NIOCore
import Recency

/// Small bodies kept in memory, keyed by their chunk's SHA-256: a hot small object is answered
/// without opening a file or a trip to the thread pool. Content-addressed and verified when
/// loaded, so an entry can never be stale or wrong, only absent. Bounded in bytes.
final class MemoryBodies: Sendable {
    let byteLimit: Int
    /// Bodies larger than this are never held.
    let objectLimit: Int

    private struct State: Sendable {
        var bodies = LRUCache<ChunkID, ByteBuffer>(capacity: 1 << 20)
        var bytes = 0
    }

    private let state = NIOLockedValueBox(State())

    init(byteLimit: Int, objectLimit: Int) {
        self.byteLimit = byteLimit
        self.objectLimit = min(objectLimit, byteLimit)
    }

    /// Whether a body of `size` bytes in a chunk named `id` may be held.
    func admits(_ id: ChunkID, size: Int64) -> Bool {
        id.algorithm == .sha256 && size <= Int64(objectLimit)
    }

    func body(_ id: ChunkID) -> ByteBuffer? {
        state.withLockedValue { $0.bodies.value(for: id, now: 0) }
    }

    /// Holds `body` if it is the content `id` names; returns whether it is.
    @discardableResult
    func remember(_ body: ByteBuffer, as id: ChunkID) -> Bool {
        guard admits(id, size: Int64(body.readableBytes)) else { return false }
        let digest = body.withUnsafeReadableBytes { Array(SHA256.hash(data: $0)) }
        guard digest == id.bytes else { return false }
        state.withLockedValue { state in
            if let old = state.bodies.removeValue(for: id) { state.bytes -= old.readableBytes }
            while state.bytes + body.readableBytes > byteLimit || state.bodies.count >= state.bodies.capacity,
                  let oldest = state.bodies.removeOldest() {
                state.bytes -= oldest.value.readableBytes
            }
            state.bodies.insert(body, for: id, expires: .max)
            state.bytes += body.readableBytes
        }
        return true
    }

    var heldBytes: Int { state.withLockedValue { $0.bytes } }
}

extension DataPlane {
    /// The whole body of a cached entry, if memory holds it (an empty entry always): answers a
    /// hit without waiting. nil when it must be read (`loadIntoMemory`) or streamed (`serve`).
    public func bodyInMemory(_ manifest: Manifest) -> ByteBuffer? {
        if manifest.totalSize == 0 { return ByteBuffer() }
        guard let memory, manifest.chunks.count == 1 else { return nil }
        return memory.body(manifest.chunks[0])
    }

    /// Reads a small entry's body into memory, verified, and returns it (counted as a hit); nil when the entry is
    /// too large for the memory cache, or its chunk cannot be read or does not verify (the
    /// caller then serves it through `serve`, which repairs or refetches a damaged entry).
    public func loadIntoMemory(_ manifest: Manifest) async -> ByteBuffer? {
        if let body = bodyInMemory(manifest) { return body }
        guard let memory, let chunks, manifest.chunks.count == 1,
              memory.admits(manifest.chunks[0], size: manifest.totalSize) else { return nil }
        let id = manifest.chunks[0]
        do {
            let opened = try await chunks.open(id, length: manifest.totalSize)
            var body = ByteBufferAllocator().buffer(capacity: Int(manifest.totalSize))
            for try await var piece in opened.file.stream(pieceSize: Int(manifest.totalSize)) { body.writeBuffer(&piece) }
            guard body.readableBytes == manifest.totalSize, memory.remember(body, as: id) else { return nil }
            metrics.hit()
            metrics.bytesServed(from: opened.fromDisk ? .disk : .objectStore, manifest.totalSize)
            return body
        } catch {
            return nil
        }
    }

    /// Counts a hit answered from memory (`bodyInMemory`), and marks its chunk used in the disk
    /// cache, so eviction never takes the hottest bodies' only copy first.
    public func countMemoryHit(_ manifest: Manifest) {
        metrics.hit()
        metrics.bytesServed(from: .memory, manifest.totalSize)
        if let id = manifest.chunks.first { storage?.diskCache?.noteUse(id, length: manifest.totalSize) }
    }
}
