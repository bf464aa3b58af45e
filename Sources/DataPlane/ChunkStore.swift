import ChunkManifest
import Crypto
import DownloadEngine
import Logging
import NIOCore
import NIOPosix
import ObjectStore
import StorageCore

/// A chunk the manifest names could not be read as it should be.
public struct ChunkUnavailable: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not in the disk cache, and the object store has no such key.
        case missing
        /// The bytes (or their number) do not match the chunk id.
        case corrupt
        /// The object store failed otherwise (denied, unreachable, ...).
        case unreachable
    }

    public let kind: Kind
    public let chunk: String
    public let detail: String

    public var description: String { "chunk \(chunk) \(kind.rawValue): \(detail)" }
}

/// A chunk opened for reading, its bytes verified against its id.
struct OpenedChunk: Sendable {
    let id: ChunkID
    let file: ReadableFile
    let fromDisk: Bool
    /// The disk cache file's identity (inode, change time) when its bytes were verified; nil for
    /// a private staging copy fetched from the object store.
    let identity: FileIdentity?

    /// Bytes `range` of the chunk. A disk file is checked after each piece is read: if anything
    /// wrote to it since it was verified (its size or modification time changed), the piece is
    /// never handed out and the stream fails as corrupt (the client's connection is aborted, never
    /// given other bytes as the chunk's). Eviction only unlinks the file: the read goes on.
    func stream(range: Range<Int64>, pieceSize: Int = 256 * 1024) -> ByteStream {
        let pieces = file.stream(range: range, pieceSize: pieceSize)
        guard let identity else { return pieces }
        let (file, id) = (self.file, self.id)
        return ByteStream(pieces.map { piece -> ByteBuffer in
            guard let now = FileIdentity(descriptor: file.descriptor), identity.sameContent(as: now) else {
                throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "the disk cache file changed after it was verified")
            }
            return piece
        })
    }
}

/// Reads and writes content-addressed chunks: the disk cache first, the object store behind it.
/// Everything it hands out is verified against the chunk id; everything it stores is a complete
/// chunk whose id is its SHA-256.
final class ChunkStore: Sendable {
    let objects: any ObjectStore
    let layout: ChunkKeyLayout
    let diskCache: DiskCache?
    /// Where chunks fetched from the object store are staged (the disk cache's staging
    /// directory when there is one, so that installing them is a link).
    let stagingDirectory: String
    let uploads: AsyncLimiter
    /// Stored chunks older than this are uploaded again when a download needs them.
    let refreshAge: Duration
    let metrics: DataPlaneMetrics
    let logger: Logger

    init(storage: DataPlaneStorage, temporaryDirectory: String, uploadConcurrency: Int, refreshAge: Duration,
         metrics: DataPlaneMetrics, logger: Logger) {
        self.refreshAge = refreshAge
        self.objects = storage.objects
        self.layout = storage.layout
        self.diskCache = storage.diskCache
        self.stagingDirectory = storage.diskCache?.stagingDirectory ?? temporaryDirectory
        self.uploads = AsyncLimiter(capacity: uploadConcurrency)
        self.metrics = metrics
        self.logger = logger
    }

    func key(for id: ChunkID) throws -> String {
        try layout.key(forHex: id.hex)
    }

    // MARK: Writing

    /// Stores a completed chunk under its SHA-256: into the disk cache (best effort) and into
    /// the object store unless the key is already there (content addressing makes that a
    /// no-op). Returns the id; throws if the object store did not take it.
    func store(_ chunk: CompletedChunk) async throws -> ChunkID {
        let id = ChunkID(algorithm: .sha256, bytes: chunk.sha256)!
        if let diskCache {
            do {
                try await diskCache.install(chunk.file, id: id, length: chunk.length)
            } catch {
                logger.warning("disk cache: could not install chunk", metadata: ["chunk": "\(id.hex)", "error": "\(error)"])
            }
        }
        let key = try self.key(for: id)
        try await uploads.withSlot {
            // Present already (content addressing): nothing to upload, unless it is old enough
            // that a concurrent `sweep` could take it; uploading it again renews it.
            if let existing = try? await objects.head(key), existing.size == chunk.length,
               let modified = existing.lastModified, Timestamp.now() - modified < refreshAge.components.seconds {
                return
            }
            do {
                try await objects.put(key, payload: .openFile(chunk.file, range: 0..<chunk.length), length: chunk.length)
            } catch {
                metrics.uploadFailed()
                throw error
            }
        }
        return id
    }

    // MARK: Reading

    /// Whether chunk `id` of `length` bytes can be read: present in the disk cache with its
    /// size, or present in the object store with its size. Cheap; no bytes are read.
    func check(_ id: ChunkID, length: Int64) async throws {
        if let diskCache, await diskCache.contains(id, length: length) { return }
        let key = try self.key(for: id)
        let info: ObjectInfo
        do {
            info = try await objects.head(key)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            throw ChunkUnavailable(kind: .missing, chunk: id.hex, detail: "not in the disk cache nor the object store")
        } catch {
            throw ChunkUnavailable(kind: .unreachable, chunk: id.hex, detail: "\(error)")
        }
        guard info.size == length else {
            throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "stored object has \(info.size) bytes, expected \(length)")
        }
    }

    /// Chunk `id`, verified, as an open file: from the disk cache when it is there and
    /// verifies, else fetched from the object store into a staging file (hashed as it arrives,
    /// never held in memory) and, once verified, installed in the disk cache.
    func open(_ id: ChunkID, length: Int64) async throws -> OpenedChunk {
        if let diskCache, let found = await diskCache.open(id, length: length) {
            return OpenedChunk(id: id, file: found.file, fromDisk: true, identity: found.identity)
        }
        let key = try self.key(for: id)
        let download: ObjectDownload
        do {
            download = try await objects.get(key)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            throw ChunkUnavailable(kind: .missing, chunk: id.hex, detail: "not in the disk cache nor the object store")
        } catch {
            throw ChunkUnavailable(kind: .unreachable, chunk: id.hex, detail: "\(error)")
        }
        guard download.info.size == length else {
            // The length is the manifest's claim; the content decides whether the object is bad.
            throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "stored object has \(download.info.size) bytes, the manifest says \(length)")
        }
        let staged = try TemporaryChunkFile(directory: stagingDirectory)
        defer { staged.close() }
        var hasher = SHA256()
        var written: Int64 = 0
        var pending = ByteBuffer()
        do {
            for try await var piece in download.body {
                guard written + Int64(pending.readableBytes) + Int64(piece.readableBytes) <= length else {
                    throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "stored object is longer than \(length) bytes")
                }
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                pending.writeBuffer(&piece)
                if pending.readableBytes >= 1 << 20 {
                    try await staged.write(pending, at: written)
                    written += Int64(pending.readableBytes)
                    pending.clear()
                }
            }
            if pending.readableBytes > 0 {
                try await staged.write(pending, at: written)
                written += Int64(pending.readableBytes)
            }
        } catch let error as ChunkUnavailable {
            throw error
        } catch {
            throw ChunkUnavailable(kind: .unreachable, chunk: id.hex, detail: "reading the stored object failed: \(error)")
        }
        guard written == length else {
            throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "stored object gave \(written) bytes, expected \(length)")
        }
        if id.algorithm == .sha256, Array(hasher.finalize()) != id.bytes {
            // Content that does not match its name is of no use to anyone: deleting it lets the
            // next download of these bytes store them again (uploads skip keys that exist).
            _ = try? await objects.delete([key])
            throw ChunkUnavailable(kind: .corrupt, chunk: id.hex, detail: "content does not match its SHA-256; the stored object was deleted")
        }
        let file = try staged.duplicate()
        if let diskCache {
            do {
                try await diskCache.install(file, id: id, length: length)
            } catch {
                logger.warning("disk cache: could not back-fill chunk", metadata: ["chunk": "\(id.hex)", "error": "\(error)"])
            }
        }
        return OpenedChunk(id: id, file: file, fromDisk: false, identity: nil)
    }
}

/// At most `capacity` bodies run at once; the rest wait in order.
final class AsyncLimiter: Sendable {
    private let budget: WorkerBudget

    init(capacity: Int) {
        self.budget = WorkerBudget(capacity: capacity)
    }

    func withSlot<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await budget.acquire()
        defer { budget.release() }
        return try await body()
    }
}
