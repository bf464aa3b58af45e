import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open, read-only file descriptor that closes itself when the last reference goes away,
/// so a stream that is dropped half-read leaks nothing.
public final class ReadableFile: Sendable {
    public let descriptor: CInt
    public let size: Int64

    /// Opens `path` for reading. Throws `FileError.notFound` when there is no such file.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(operation: "open", path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw FileError(operation: "stat", path: path, errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FileError(operation: "open", path: path, errno: EISDIR)
        }
        self.descriptor = fd
        self.size = Int64(info.st_size)
    }

    /// A descriptor of its own for an already open file (`dup`): an unlinked temporary file can
    /// be read this way, and the copy stays valid after the original is closed.
    public init(duplicating original: CInt) throws {
        let fd = fcntl(original, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { throw FileError(operation: "dup", path: "fd \(original)", errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw FileError(operation: "stat", path: "fd \(original)", errno: code)
        }
        self.descriptor = fd
        self.size = Int64(info.st_size)
    }

    deinit { close(descriptor) }

    /// Streams bytes `range` (default: all) in pieces of `pieceSize`, each read on `threadPool`.
    public func stream(range: Range<Int64>? = nil, pieceSize: Int = 256 * 1024,
                       threadPool: NIOThreadPool = .singleton) -> ByteStream {
        ByteStream(FileRangeSequence(file: self, range: range ?? 0..<size, pieceSize: pieceSize,
                                     threadPool: threadPool))
    }
}

/// A POSIX failure with the operation and path that caused it.
public struct FileError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: CInt

    public init(operation: String, path: String, errno: CInt) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

private struct FileRangeSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let file: ReadableFile
    let range: Range<Int64>
    let pieceSize: Int
    let threadPool: NIOThreadPool

    func makeAsyncIterator() -> Iterator {
        Iterator(file: file, offset: range.lowerBound, end: range.upperBound, pieceSize: pieceSize,
                 threadPool: threadPool)
    }

    struct Iterator: AsyncIteratorProtocol {
        let file: ReadableFile
        var offset: Int64
        let end: Int64
        let pieceSize: Int
        let threadPool: NIOThreadPool

        mutating func next() async throws -> ByteBuffer? {
            guard offset < end else { return nil }
            let want = Int(Swift.min(Int64(pieceSize), end - offset))
            let (file, at) = (self.file, self.offset)
            let piece = try await threadPool.runIfActive { () throws -> ByteBuffer in
                var buffer = ByteBufferAllocator().buffer(capacity: want)
                let count = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
                    while true {
                        let n = pread(file.descriptor, raw.baseAddress, want, off_t(at))
                        if n >= 0 { return n }
                        if errno != EINTR { throw FileError(operation: "read", path: "fd \(file.descriptor)", errno: errno) }
                    }
                }
                // The file shrank under us: a short object must not pass for a whole one.
                guard count > 0 else { throw FileError(operation: "read", path: "fd \(file.descriptor)", errno: EIO) }
                return buffer
            }
            offset += Int64(piece.readableBytes)
            return piece
        }
    }
}
