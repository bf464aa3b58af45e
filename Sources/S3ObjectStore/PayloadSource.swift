import AWSCore
import Crypto
import NIOCore
import NIOPosix
import ObjectStore
import StorageCore

/// An upload payload opened once, from which any byte range can be streamed (and hashed) again,
/// so that single PUTs, multipart parts and their retries all read the same bytes.
struct PayloadSource: Sendable {
    private enum Storage: Sendable {
        case file(ReadableFile, base: Int64)
        case buffers([ByteBuffer])
    }
    private let storage: Storage
    private let threadPool: NIOThreadPool

    static func open(_ payload: ObjectPayload, length: Int64, threadPool: NIOThreadPool, key: String) async throws -> PayloadSource {
        switch payload {
        case .buffers(let buffers):
            let total = buffers.reduce(Int64(0)) { $0 + Int64($1.readableBytes) }
            guard total == length else {
                throw ObjectStoreError(.other, operation: "PutObject", key: key, code: "IncompleteBody",
                                       message: "payload has \(total) bytes, length says \(length)")
            }
            return PayloadSource(storage: .buffers(buffers), threadPool: threadPool)
        case .file(let path, let range):
            let file: ReadableFile
            do {
                file = try await threadPool.runIfActive { try ReadableFile(path: path) }
            } catch {
                throw ObjectStoreError(.other, operation: "PutObject", key: key, code: "PayloadUnreadable", message: "\(error)")
            }
            let selected = range ?? 0..<file.size
            guard selected.lowerBound >= 0, selected.upperBound <= file.size, Int64(selected.count) == length else {
                throw ObjectStoreError(.other, operation: "PutObject", key: key, code: "IncompleteBody",
                                       message: "\(path) range \(selected) does not hold \(length) bytes (file has \(file.size))")
            }
            return PayloadSource(storage: .file(file, base: selected.lowerBound), threadPool: threadPool)
        case .openFile(let file, let range):
            guard range.lowerBound >= 0, range.upperBound <= file.size, Int64(range.count) == length else {
                throw ObjectStoreError(.other, operation: "PutObject", key: key, code: "IncompleteBody",
                                       message: "open file range \(range) does not hold \(length) bytes (file has \(file.size))")
            }
            return PayloadSource(storage: .file(file, base: range.lowerBound), threadPool: threadPool)
        }
    }

    /// The bytes `range` (relative to the payload) as a signed, replayable request body.
    func body(range: Range<Int64>) async throws -> S3Body {
        let make = streamMaker(range: range)
        var hasher = SHA256()
        for try await piece in try make() { piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
        return S3Body(length: Int64(range.count), sha256Hex: SigV4Signer.hex(hasher.finalize()), make: make)
    }

    private func streamMaker(range: Range<Int64>) -> @Sendable () throws -> ByteStream {
        switch storage {
        case .file(let file, let base):
            let pool = threadPool
            return { file.stream(range: (base + range.lowerBound)..<(base + range.upperBound), threadPool: pool) }
        case .buffers(let buffers):
            let slices = Self.slice(buffers, range: range)
            return { ByteStream(buffers: slices) }
        }
    }

    /// Views of `buffers` covering `range`, without copying.
    static func slice(_ buffers: [ByteBuffer], range: Range<Int64>) -> [ByteBuffer] {
        var result = [ByteBuffer]()
        var offset: Int64 = 0
        for buffer in buffers {
            let start = offset
            let end = offset + Int64(buffer.readableBytes)
            offset = end
            let low = max(start, range.lowerBound), high = min(end, range.upperBound)
            guard low < high else { continue }
            if let piece = buffer.getSlice(at: buffer.readerIndex + Int(low - start), length: Int(high - low)) {
                result.append(piece)
            }
        }
        return result
    }
}
