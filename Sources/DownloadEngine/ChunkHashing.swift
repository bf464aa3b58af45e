import Crypto
import DownloadPlanning
import NIOCore
import NIOPosix
import StorageCore

/// A finished chunk of a keyed download, handed to the sink: its SHA-256 and a descriptor of
/// its own on the chunk's file, so storing it reads the file (never memory) and the download
/// may close its copy meanwhile.
public struct CompletedChunk: Sendable {
    public let index: Int
    public let sha256: [UInt8]
    public let file: ReadableFile
    /// The chunk's bytes in `file`: always from 0.
    public let length: Int64
}

/// The sink gave up on this download.
public struct SinkAbandoned: Error, Sendable, CustomStringConvertible {
    public var description: String { "storing this download was abandoned" }
}

extension ChunkedDownload {
    /// Feeds `piece` (written at chunk offset `at`) to the chunk's hasher when it continues the
    /// hashed prefix and no other writer holds the hasher; otherwise the bytes are read back
    /// when the chunk completes.
    func hashInOrder(_ piece: ByteBuffer, chunk index: Int, at offset: Int64) {
        let taken: SHA256? = coordinator.update { state in
            var digest = state.digests[index] ?? ChunkDigest()
            guard !digest.busy, digest.hashed == offset else { return nil }
            digest.busy = true
            state.digests[index] = digest
            return digest.hasher
        }
        guard var hasher = taken else { return }
        piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        let count = Int64(piece.readableBytes)
        coordinator.update { state in
            state.digests[index] = ChunkDigest(hasher: hasher, hashed: offset + count, busy: false)
        }
    }

    /// Waits until chunk `index` is complete, finishes its hash (reading back what was not
    /// hashed in order), and hands it over. Throws the download's failure, or `SinkAbandoned`
    /// once `abandonSink` was called.
    public func completedChunk(_ index: Int) async throws -> CompletedChunk {
        try await coordinator.wait { [self] state in
            isChunkDone(index, state.board) || state.retention.sink != .active
        }
        guard coordinator.read({ $0.retention.sink == .active }) else { throw SinkAbandoned() }
        let length = plan.length(of: index)
        let (digest, file): (ChunkDigest, ReadableFile) = try coordinator.update { state in
            let digest = state.digests.removeValue(forKey: index) ?? ChunkDigest()
            guard let chunk = state.files[index] else {
                throw FileError(operation: "hash", path: "chunk file \(index) (released)", errno: 9)
            }
            return (digest, try chunk.duplicate())
        }
        var hasher = digest.hasher
        if digest.hashed < length {
            for try await piece in file.stream(range: digest.hashed..<length, pieceSize: 1 << 20) {
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
        }
        return CompletedChunk(index: index, sha256: Array(hasher.finalize()), file: file, length: length)
    }

    /// The sink stored chunk `index`: its file may go once no reader is inside it.
    public func markStored(_ index: Int) {
        updateRetention { $0.markStored(index) }
    }

    /// Storing failed: keep nothing more for the sink; stop when no reader is left.
    public func abandonSink() {
        updateRetention { $0.abandonSink() }
    }
}
