import DownloadPlanning
import NIOCore
import StorageCore

/// Where a reader of a keyed download finds a chunk whose file the download has already
/// released: the sink's stored copy (disk cache or object store), verified.
public protocol StoredChunkSource: Sendable {
    /// The bytes `range` (offsets inside the chunk) of chunk `index`.
    func read(chunk index: Int, range: Range<Int64>) async throws -> ByteStream
}

extension ChunkedDownload {
    /// The bytes `span` for one reader, read from the chunk files as soon as they are written.
    /// Any number of readers may read one download, each from where its span starts. Each piece
    /// read moves the reader's position; a chunk file goes once no one needs it
    /// (`ChunkRetention`), and a reader behind a released chunk reads it from `stored`.
    /// Dropping the stream unregisters the reader. Fails with the download's failure.
    public func body(span: ClosedRange<Int64>? = nil, stored: (any StoredChunkSource)? = nil) -> ByteStream {
        let span = span ?? self.span
        let lease = ReaderLease(download: self, at: span.lowerBound)
        return ByteStream(DownloadBody(lease: lease, span: span, stored: stored))
    }
}

/// A reader's registration; unregisters when the last copy of its stream is dropped, however
/// the consumer stops.
final class ReaderLease: Sendable {
    let download: ChunkedDownload
    let id: Int

    init(download: ChunkedDownload, at offset: Int64) {
        self.download = download
        var assigned = 0
        download.updateRetention { assigned = $0.addReader(at: offset) }
        self.id = assigned
    }

    func move(to offset: Int64) {
        let id = self.id
        download.updateRetention { $0.moveReader(id, to: offset) }
    }

    deinit {
        let id = self.id
        download.updateRetention { $0.removeReader(id) }
    }
}

private struct DownloadBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let lease: ReaderLease
    let span: ClosedRange<Int64>
    let stored: (any StoredChunkSource)?

    func makeAsyncIterator() -> Iterator {
        Iterator(lease: lease, offset: span.lowerBound, end: span.upperBound + 1, stored: stored)
    }

    struct Iterator: AsyncIteratorProtocol {
        let lease: ReaderLease
        var offset: Int64
        let end: Int64
        let stored: (any StoredChunkSource)?
        /// The rest of a chunk being read from its stored copy.
        var storedPart: ByteStream.AsyncIterator?

        mutating func next() async throws -> ByteBuffer? {
            let download = lease.download
            let (plan, units) = (download.plan, download.units)
            guard offset < end else { return nil }
            if var part = storedPart {
                if let piece = try await part.next() {
                    storedPart = part
                    advance(by: piece.readableBytes)
                    return piece
                }
                storedPart = nil
                guard offset == end || offset % plan.chunkSize == 0 else {
                    throw FileError(operation: "read", path: "stored chunk ended early at \(offset)", errno: 5)
                }
                return try await next()
            }
            let fileIndex = plan.chunk(containing: offset)
            let chunk = plan.range(of: fileIndex)
            if download.coordinator.read({ $0.released.contains(fileIndex) }) {
                guard let stored else {
                    throw FileError(operation: "read", path: "chunk file \(fileIndex) (released, no stored copy)", errno: 9)
                }
                let stop = Swift.min(end, chunk.upperBound)
                storedPart = try await stored.read(chunk: fileIndex, range: (offset - chunk.lowerBound)..<(stop - chunk.lowerBound))
                    .makeAsyncIterator()
                return try await next()
            }
            let unitIndex = units.chunk(containing: offset)
            let unit = units.range(of: unitIndex)
            let count = Swift.min(Int64(download.settings.pieceSize), end - offset, unit.upperBound - offset)
            let needed = offset + count - unit.lowerBound
            try await download.coordinator.wait { $0.board.slots[unitIndex].written >= needed }
            let piece = try await download.chunkFile(fileIndex).read(at: offset - chunk.lowerBound, count: Int(count))
            advance(by: piece.readableBytes)
            return piece
        }

        private mutating func advance(by count: Int) {
            offset += Int64(count)
            lease.move(to: offset)
        }
    }
}
