import DownloadPlanning
import NIOCore
import StorageCore

extension ChunkedDownload {
    /// The client's bytes (`span`), read from the chunk files as soon as they are written.
    /// Each piece read moves the read-ahead window; a chunk file is released as soon as the
    /// reader has passed it. Fails with the download's failure.
    public func body() -> ByteStream {
        ByteStream(DownloadBody(download: self))
    }
}

private struct DownloadBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let download: ChunkedDownload

    func makeAsyncIterator() -> Iterator {
        Iterator(download: download, offset: download.span.lowerBound)
    }

    struct Iterator: AsyncIteratorProtocol {
        let download: ChunkedDownload
        var offset: Int64

        mutating func next() async throws -> ByteBuffer? {
            let (plan, units) = (download.plan, download.units)
            let end = download.span.upperBound + 1
            guard offset < end else { return nil }
            let unitIndex = units.chunk(containing: offset)
            let unit = units.range(of: unitIndex)
            let count = Swift.min(Int64(download.settings.pieceSize), end - offset, unit.upperBound - offset)
            let needed = offset + count - unit.lowerBound
            try await download.coordinator.wait { $0.board.slots[unitIndex].written >= needed }
            let fileIndex = plan.chunk(containing: offset)
            let chunk = plan.range(of: fileIndex)
            let piece = try await download.chunkFile(fileIndex).read(at: offset - chunk.lowerBound, count: Int(count))
            offset += count
            let passed = offset == chunk.upperBound
            let position = offset
            download.coordinator.update { state in
                state.readerOffset = position
                if passed { state.files.removeValue(forKey: fileIndex)?.close() }
            }
            return piece
        }
    }
}
