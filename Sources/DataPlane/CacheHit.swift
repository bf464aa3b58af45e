import ChunkManifest
import DownloadPlanning
import Logging
import MetadataStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import StorageCore

/// Serving a cached entry from its manifest.
extension DataPlane {
    enum HitResult: Sendable {
        case served(DataPlaneResponse)
        /// Nothing usable is cached; the caller goes upstream.
        case miss
    }

    /// The entry's manifest (the request's, else the metadata store's) served with the
    /// client's range. Damage found before the headers go out (a missing, short or corrupt
    /// first chunk, a missing or short later chunk) clears the manifest and is a miss, so the
    /// same request refetches and repairs it; damage found later aborts the body.
    func hit(_ request: DataPlaneRequest, key: String, extraHeaders: HTTPHeaders = [:]) async -> HitResult {
        guard let chunks else { return .miss }
        let manifest: Manifest
        if let given = request.manifest {
            manifest = given
        } else {
            do {
                guard let stored = try await loadManifest(key) else { return .miss }
                manifest = stored
            } catch {
                logger.warning("manifest lookup failed; going upstream", metadata: ["key": "\(key)", "error": "\(error)"])
                return .miss
            }
        }
        let answer = Self.answer(range: request.range, size: manifest.totalSize, headers: extraHeaders, keyed: true, hit: true)
        guard case .body(let status, let span, let headers) = answer else {
            metrics.hit()
            return .served(answer.response)
        }
        let reader = HitReader(manifest: manifest, span: span, chunks: chunks, readAhead: configuration.hitReadAhead,
                               pieceSize: max(4096, request.hitPieceSize), metrics: metrics)
        do {
            try await reader.prepare()
        } catch {
            reader.cancel()
            if let unavailable = error as? ChunkUnavailable, unavailable.kind != .unreachable {
                logger.warning("cached entry is damaged; clearing it and refetching", metadata: ["key": "\(key)", "error": "\(error)"])
                await clearManifest(key, ifStill: manifest)
            } else {
                logger.warning("cached entry cannot be read now; going upstream", metadata: ["key": "\(key)", "error": "\(error)"])
            }
            return .miss
        }
        metrics.hit()
        let body = reader.body().mappingErrors { [self] error in
            if let unavailable = error as? ChunkUnavailable, unavailable.kind != .unreachable {
                logger.error("cached entry damaged mid-response; aborting it and clearing the entry",
                             metadata: ["key": "\(key)", "error": "\(error)"])
                background.run { await self.clearManifest(key, ifStill: manifest) }
            } else {
                logger.warning("reading a cached entry failed mid-response; aborting it", metadata: ["key": "\(key)", "error": "\(error)"])
            }
            return error
        }
        return .served(DataPlaneResponse(status: status, headers: headers, body: body))
    }

    func loadManifest(_ key: String) async throws -> Manifest? {
        guard let storage else { return nil }
        guard case .string(let encoded)? = try await storage.metadata.get([key])[key]?["manifest_b64"], !encoded.isEmpty else {
            return nil
        }
        return try ManifestCodec.decodeBase64(encoded)
    }

    /// Removes the key's manifest (the rest of its document stays) if it is still `damaged`,
    /// the one found broken (a newer one, or a stale copy the caller sent, is left alone): the
    /// next request misses. Chunks are never deleted here; they may be shared (`sweep` removes
    /// unreferenced ones).
    func clearManifest(_ key: String, ifStill damaged: Manifest) async {
        guard let storage else { return }
        do {
            guard try await loadManifest(key) == damaged else { return }
            _ = try await storage.metadata.bulkUpdate([MetadataUpdate(id: key, fields: ["manifest_b64": .null])])
        } catch {
            logger.warning("clearing a damaged manifest failed", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }
}

/// Reads the chunks a span needs, verified, with up to `readAhead` chunks opened ahead of the
/// client (disk cache hits are hashed ahead, object-store chunks are fetched ahead into staging
/// files), and streams the span from them in order.
final class HitReader: Sendable {
    let manifest: Manifest
    let span: ClosedRange<Int64>
    let chunks: ChunkStore
    let readAhead: Int
    let pieceSize: Int
    let metrics: DataPlaneMetrics
    let indices: ClosedRange<Int>
    private let opening = NIOLockedValueBox([Int: Task<OpenedChunk, any Error>]())
    /// Later chunks are only checked for presence before the headers; past this many, not at all.
    static let presenceCheckLimit = 256

    init(manifest: Manifest, span: ClosedRange<Int64>, chunks: ChunkStore, readAhead: Int, pieceSize: Int,
         metrics: DataPlaneMetrics) {
        self.manifest = manifest
        self.pieceSize = pieceSize
        self.span = span
        self.chunks = chunks
        self.readAhead = max(1, readAhead)
        self.metrics = metrics
        self.indices = manifest.chunkIndices(overlapping: span)!
    }

    deinit { cancel() }

    func cancel() {
        let tasks = opening.withLockedValue { opening in
            defer { opening.removeAll() }
            return Array(opening.values)
        }
        for task in tasks { task.cancel() }
    }

    /// Before the headers: the first chunk opened and verified, the others present with their
    /// sizes.
    func prepare() async throws {
        _ = try await file(for: indices.lowerBound)
        let rest = Array(indices.dropFirst().prefix(Self.presenceCheckLimit))
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(16, rest.count) {
                let index = rest[next]
                next += 1
                group.addTask { try await self.chunks.check(self.manifest.chunks[index], length: self.manifest.byteRange(ofChunk: index).count64) }
            }
            while try await group.next() != nil, next < rest.count {
                let index = rest[next]
                next += 1
                group.addTask { try await self.chunks.check(self.manifest.chunks[index], length: self.manifest.byteRange(ofChunk: index).count64) }
            }
            // Children left when the body returns are awaited with their errors dropped.
            try await group.waitForAll()
        }
    }

    /// Chunk `index` opened, starting the opening of the chunks after it up to the read-ahead.
    func file(for index: Int) async throws -> OpenedChunk {
        let task = opening.withLockedValue { opening in
            for ahead in index..<min(indices.upperBound + 1, index + readAhead) where opening[ahead] == nil {
                let (id, length, chunks) = (manifest.chunks[ahead], manifest.byteRange(ofChunk: ahead).count64, self.chunks)
                opening[ahead] = Task { try await chunks.open(id, length: length) }
            }
            return opening[index]!
        }
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    /// Done with chunk `index`: its file may close.
    func release(_ index: Int) {
        _ = opening.withLockedValue { $0.removeValue(forKey: index) }
    }

    func body() -> ByteStream {
        ByteStream(HitBody(reader: self))
    }
}

private struct HitBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let reader: HitReader

    func makeAsyncIterator() -> Iterator { Iterator(reader: reader, index: reader.indices.lowerBound) }

    struct Iterator: AsyncIteratorProtocol {
        let reader: HitReader
        var index: Int
        var current: ByteStream.AsyncIterator?

        mutating func next() async throws -> ByteBuffer? {
            while true {
                if var part = current {
                    if let piece = try await part.next() {
                        current = part
                        return piece
                    }
                    current = nil
                    reader.release(index)
                    index += 1
                }
                guard index <= reader.indices.upperBound else { return nil }
                let chunk = reader.manifest.byteRange(ofChunk: index)
                let opened = try await reader.file(for: index)
                let start = Swift.max(reader.span.lowerBound, chunk.lowerBound) - chunk.lowerBound
                let end = Swift.min(reader.span.upperBound + 1, chunk.upperBound) - chunk.lowerBound
                reader.metrics.bytesServed(from: opened.fromDisk ? .disk : .objectStore, end - start)
                current = opened.stream(range: start..<end, pieceSize: reader.pieceSize).makeAsyncIterator()
            }
        }
    }
}
