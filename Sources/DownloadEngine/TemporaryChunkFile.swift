import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One chunk's bytes in an unlinked temporary file: no name ever points at it, so the space
/// returns to the file system when it is closed, and a crash leaves nothing behind. Positional
/// reads and writes run on `NIOThreadPool`, never on an event loop or the cooperative pool.
public final class TemporaryChunkFile: Sendable {
    /// The descriptor is closed only once no read or write is using it: a positional call that
    /// waits on the thread pool must never find its number reused by another file.
    private struct State {
        var descriptor: CInt?
        var users = 0
        var closeRequested = false
    }

    private let state: NIOLockedValueBox<State>
    private let threadPool: NIOThreadPool

    public init(directory: String, threadPool: NIOThreadPool = .singleton) throws {
        self.state = NIOLockedValueBox(State(descriptor: try Self.openUnlinked(in: directory)))
        self.threadPool = threadPool
    }

    deinit {
        if let fd = state.withLockedValue({ $0.descriptor }) { closeDescriptor(fd) }
    }

    /// Releases the space (once reads and writes in progress are done); later ones fail.
    public func close() {
        let closeNow: CInt? = state.withLockedValue { state in
            guard !state.closeRequested else { return nil }
            state.closeRequested = true
            guard state.users == 0, let fd = state.descriptor else { return nil }
            state.descriptor = nil
            return fd
        }
        if let closeNow { closeDescriptor(closeNow) }
    }

    /// Writes all of `buffer` at `offset`.
    public func write(_ buffer: ByteBuffer, at offset: Int64) async throws {
        let fd = try acquire("write")
        try await threadPool.runIfActive { [self] in
            defer { release() }
            try buffer.withUnsafeReadableBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + Int64(done)))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw FileError(operation: "write", path: "temporary chunk file", errno: errno)
                    }
                    done += n
                }
            }
        }
    }

    /// Reads exactly `count` bytes at `offset`; a short read is an error (the bytes were
    /// recorded as written, so they must be there).
    public func read(at offset: Int64, count: Int) async throws -> ByteBuffer {
        let fd = try acquire("read")
        return try await threadPool.runIfActive { [self] in
            defer { release() }
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                var done = 0
                while done < count {
                    let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + Int64(done)))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw FileError(operation: "read", path: "temporary chunk file", errno: errno)
                    }
                    guard n > 0 else { throw FileError(operation: "read", path: "temporary chunk file", errno: EIO) }
                    done += n
                }
                return done
            }
            return buffer
        }
    }

    /// The descriptor, counted as in use until `release`.
    private func acquire(_ operation: String) throws -> CInt {
        let fd: CInt? = state.withLockedValue { state in
            guard !state.closeRequested, let fd = state.descriptor else { return nil }
            state.users += 1
            return fd
        }
        guard let fd else { throw FileError(operation: operation, path: "temporary chunk file (released)", errno: EBADF) }
        return fd
    }

    private func release() {
        let closeNow: CInt? = state.withLockedValue { state in
            state.users -= 1
            guard state.users == 0, state.closeRequested, let fd = state.descriptor else { return nil }
            state.descriptor = nil
            return fd
        }
        if let closeNow { closeDescriptor(closeNow) }
    }

    /// A read-only handle of its own on the same file, valid after this one is closed.
    public func duplicate() throws -> ReadableFile {
        let fd = try acquire("duplicate")
        defer { release() }
        return try ReadableFile(duplicating: fd)
    }


    /// `O_TMPFILE` where the file system has it; otherwise an exclusive `mkstemp` name,
    /// unlinked at once.
    private static func openUnlinked(in directory: String) throws -> CInt {
        #if os(Linux)
        // O_TMPFILE is a macro Swift does not import: __O_TMPFILE (0o20000000 on Linux) | O_DIRECTORY.
        let fd = open(directory, 0o20000000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        if fd >= 0 { return fd }
        guard errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL else {
            throw FileError(operation: "create temporary file in", path: directory, errno: errno)
        }
        #endif
        var template = Array((directory + "/.xs3.XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard made >= 0 else { throw FileError(operation: "create temporary file in", path: directory, errno: errno) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(made, F_SETFD, FD_CLOEXEC)
        return made
    }
}

/// The C `close`, which `TemporaryChunkFile.close()` hides inside the class.
private func closeDescriptor(_ fd: CInt) {
    _ = close(fd)
}
