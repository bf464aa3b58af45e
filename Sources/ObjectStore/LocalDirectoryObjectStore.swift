import NIOCore
import NIOPosix
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An object store in a local directory: the object under key `a/b/c` is the file `<root>/a/b/c`.
///
/// Writes go to `<root>/.passsage-tmp/`, are fsynced, then renamed into place (and the directory
/// fsynced), so a reader or a crash never sees a partial object under its final key. Two
/// processes may share one root. Unlike S3, a key cannot be both an object and the parent of
/// another (`a` and `a/b`); chunk keys never are.
public struct LocalDirectoryObjectStore: ObjectStore {
    public let root: String
    private let threadPool: NIOThreadPool
    static let temporaryDirectoryName = ".passsage-tmp"

    /// Creates `root` (and its staging directory) if missing.
    public init(root: String, threadPool: NIOThreadPool = .singleton) throws {
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
        self.threadPool = threadPool
        try Self.makeDirectories(trimmed)
        try Self.makeDirectories(trimmed + "/" + Self.temporaryDirectoryName)
    }

    // MARK: ObjectStore

    public func get(_ key: String, range: ByteRange?) async throws -> ObjectDownload {
        let path = try self.path(for: key, operation: "GetObject")
        let file: ReadableFile
        do {
            file = try await threadPool.runIfActive { try ReadableFile(path: path) }
        } catch let error as FileError {
            throw storeError(error, operation: "GetObject", key: key)
        }
        let info = ObjectInfo(size: file.size, etag: nil)
        var span: ClosedRange<Int64>? = file.size > 0 ? 0...(file.size - 1) : nil
        if let range {
            guard let resolved = range.resolve(size: file.size) else {
                throw ObjectStoreError(.invalidRange, operation: "GetObject", key: key, code: "InvalidRange",
                                       message: "\(range) is outside an object of \(file.size) bytes")
            }
            span = resolved
        }
        let readRange = span.map { $0.lowerBound..<($0.upperBound + 1) } ?? 0..<0
        let expected = Int64(readRange.count)
        let body = file.stream(range: readRange, threadPool: threadPool).verifyingLength(expected) { received in
            ObjectStoreError(.transient, operation: "GetObject", key: key, code: "Truncated",
                             message: "file gave \(received) bytes, expected \(expected)")
        }
        return ObjectDownload(info: info, span: span, body: body)
    }

    public func put(_ key: String, payload: ObjectPayload, length: Int64) async throws {
        let path = try self.path(for: key, operation: "PutObject")
        let temporary = "\(root)/\(Self.temporaryDirectoryName)/\(UInt64.random(in: 0...UInt64.max))-\(getpid()).part"
        let fd = try await threadPool.runIfActive { () throws -> CInt in
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FileError(operation: "create", path: temporary, errno: errno) }
            return fd
        }
        var installed = false
        defer {
            if !installed { unlink(temporary) }
        }
        do {
            var written: Int64 = 0
            do {
                for try await buffer in try payloadStream(payload) {
                    written += Int64(buffer.readableBytes)
                    guard written <= length else { break }
                    try await threadPool.runIfActive { try Self.writeAll(buffer, to: fd, path: temporary) }
                }
            } catch let error as FileError {
                close(fd)
                throw storeError(error, operation: "PutObject", key: key)
            }
            guard written == length else {
                close(fd)
                throw ObjectStoreError(.other, operation: "PutObject", key: key, code: "IncompleteBody",
                                       message: "payload has \(written)\(written > length ? "+" : "") bytes, length says \(length)")
            }
            try await threadPool.runIfActive {
                defer { close(fd) }
                guard fsync(fd) == 0 else { throw FileError(operation: "fsync", path: temporary, errno: errno) }
                try Self.makeDirectories(Self.parent(of: path))
                guard rename(temporary, path) == 0 else { throw FileError(operation: "rename", path: path, errno: errno) }
                Self.syncDirectory(Self.parent(of: path))
            }
            installed = true
        } catch let error as FileError {
            throw storeError(error, operation: "PutObject", key: key)
        }
    }

    public func head(_ key: String) async throws -> ObjectInfo {
        let path = try self.path(for: key, operation: "HeadObject")
        do {
            return try await threadPool.runIfActive { () throws -> ObjectInfo in
                var info = stat()
                guard stat(path, &info) == 0 else { throw FileError(operation: "stat", path: path, errno: errno) }
                guard (info.st_mode & S_IFMT) == S_IFREG else { throw FileError(operation: "stat", path: path, errno: EISDIR) }
                return ObjectInfo(size: Int64(info.st_size), etag: nil, lastModified: Int64(info.st_mtim.tv_sec))
            }
        } catch let error as FileError {
            throw storeError(error, operation: "HeadObject", key: key)
        }
    }

    public func delete(_ keys: [String]) async throws -> [ObjectDeleteFailure] {
        var failures = [ObjectDeleteFailure]()
        for key in keys {
            let path: String
            do {
                path = try self.path(for: key, operation: "DeleteObjects")
            } catch let error as ObjectStoreError {
                failures.append(ObjectDeleteFailure(key: key, code: error.code, message: error.message))
                continue
            }
            let code = await threadPool.runIfActiveOrZero { unlink(path) == 0 || errno == ENOENT ? 0 : errno }
            if code != 0 {
                failures.append(ObjectDeleteFailure(key: key, code: "Errno\(code)",
                                                    message: String(cString: strerror(code))))
            }
        }
        return failures
    }

    public func list(prefix: String, continuation: String?, maxKeys: Int) async throws -> ObjectListPage {
        let root = self.root
        let limit = max(1, min(maxKeys, 1000))
        return try await threadPool.runIfActive {
            var walker = DirectoryWalker(root: root, prefix: prefix, startAfter: continuation,
                                         skipTopLevel: Self.temporaryDirectoryName)
            var objects = [ObjectSummary]()
            while objects.count < limit, let next = try walker.next() { objects.append(next) }
            let more = try walker.next() != nil
            return ObjectListPage(objects: objects, continuation: more ? objects.last?.key : nil)
        }
    }

    public func checkHealth() async throws {
        let probe = "\(root)/\(Self.temporaryDirectoryName)/health-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try await threadPool.runIfActive {
            let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw ObjectStoreError(.other, operation: "HealthCheck", code: "Errno\(errno)",
                                       message: "cannot write in \(root): \(String(cString: strerror(errno)))")
            }
            close(fd)
            unlink(probe)
        }
    }

    // MARK: Helpers

    /// Maps a key to its file, refusing keys that would escape the root or clash with staging.
    func path(for key: String, operation: String) throws -> String {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        let valid = !key.isEmpty && !key.utf8.contains(0)
            && segments.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.count <= 255 }
            && segments.first != Substring(Self.temporaryDirectoryName)
        guard valid else {
            throw ObjectStoreError(.other, operation: operation, key: key, code: "InvalidKey",
                                   message: "a local object key needs non-empty segments other than . and .., and must not start with \(Self.temporaryDirectoryName)/")
        }
        return root + "/" + key
    }

    private func payloadStream(_ payload: ObjectPayload) throws -> ByteStream {
        switch payload {
        case .buffers(let buffers):
            return ByteStream(buffers: buffers)
        case .file(let path, let range):
            let file = try ReadableFile(path: path)
            return file.stream(range: range, threadPool: threadPool)
        case .openFile(let file, let range):
            return file.stream(range: range, threadPool: threadPool)
        }
    }

    private func storeError(_ error: FileError, operation: String, key: String) -> ObjectStoreError {
        if error.isNotFound && (operation != "PutObject") {
            return ObjectStoreError(.notFound, operation: operation, key: key, code: "NoSuchKey",
                                    message: "no object under this key", httpStatus: 404)
        }
        let kind: ObjectStoreError.Kind = error.errno == EACCES || error.errno == EPERM ? .accessDenied : .other
        return ObjectStoreError(kind, operation: operation, key: key, code: "Errno\(error.errno)",
                                message: error.description)
    }

    static func writeAll(_ buffer: ByteBuffer, to fd: CInt, path: String) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError(operation: "write", path: path, errno: errno)
                }
                offset += n
            }
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return String(path[..<slash])
    }

    static func makeDirectories(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw FileError(operation: "mkdir", path: path, errno: ENOTDIR) }
            return
        }
        let parent = parent(of: path)
        if !parent.isEmpty && parent != path { try makeDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw FileError(operation: "mkdir", path: path, errno: errno) }
    }

    /// Makes a rename durable; best effort, as some filesystems refuse fsync on directories.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}

extension NIOThreadPool {
    /// Runs a non-throwing job; if the pool is shutting down, returns zero rather than throwing.
    func runIfActiveOrZero(_ body: @escaping @Sendable () -> CInt) async -> CInt {
        (try? await runIfActive(body)) ?? 0
    }
}
