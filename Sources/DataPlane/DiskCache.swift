import ChunkManifest
import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Chunks on local disk, in front of the object store: `<root>/<h0>/<h1>/<h2>/<h3>/<hex>`, the
/// object store's sharded layout without its prefix. Files appear by atomic rename (or link) of
/// complete, verified data, so a crash leaves at most a file in `<root>/.tmp`, which start-up
/// removes. Every read is verified against the chunk's SHA-256 unless the same file (same inode
/// and change time) was verified or written by us before; a file that fails is deleted.
public final class DiskCache: Sendable {
    public let root: String
    public let stagingDirectory: String
    private let threadPool: NIOThreadPool
    /// Files known to hold their chunk's bytes, by chunk hex.
    private let verified = NIOLockedValueBox([String: FileIdentity]())
    private let degradedSince = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    static let verifiedMemoLimit = 1 << 16

    /// Usage of the cache's file system, in percent, between which eviction runs: it starts
    /// at `high` and stops below `low`.
    public struct Watermarks: Sendable, Hashable {
        public var low: Int
        public var high: Int

        public init(low: Int, high: Int) {
            self.low = low
            self.high = high
        }
    }

    /// What the watermarks are a percentage of.
    public enum Capacity: Sendable, Hashable {
        /// The file system the cache is on (`statvfs`), as the original measured it.
        case fileSystem
        /// This many bytes of chunk files, whatever else is on the file system.
        case bytes(Int64)
    }

    /// nil: never evict (the directory is the embedded object store itself).
    public let watermarks: Watermarks?
    public let capacity: Capacity
    private let index = NIOLockedValueBox(DiskCacheIndex())

    /// Creates `root` if needed and removes staging files a previous run left behind.
    public init(root: String, watermarks: Watermarks?, capacity: Capacity = .fileSystem,
                threadPool: NIOThreadPool = .singleton) throws {
        self.watermarks = watermarks
        self.capacity = capacity
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
        self.stagingDirectory = trimmed + "/.tmp"
        self.threadPool = threadPool
        try FileSystem.makeDirectories(trimmed)
        try FileSystem.makeDirectories(stagingDirectory)
        FileSystem.removeEntries(in: stagingDirectory)
    }

    /// ENOSPC was met and not yet cleared: nothing is written to the disk cache meanwhile.
    public var isDegraded: Bool { degradedSince.withLockedValue { $0 != nil } }

    func path(for id: ChunkID) -> String {
        let hex = id.hex
        let h = Array(hex.utf8.prefix(4)).map { String(UnicodeScalar($0)) }
        return "\(root)/\(h[0])/\(h[1])/\(h[2])/\(h[3])/\(hex)"
    }

    /// The chunk's file if it is here, has `length` bytes and its bytes match `id`, with the
    /// identity it had when they were checked; a file that does not match is deleted. nil when
    /// absent or bad.
    func open(_ id: ChunkID, length: Int64) async -> (file: ReadableFile, identity: FileIdentity)? {
        let path = self.path(for: id)
        let file: ReadableFile
        do {
            file = try await threadPool.runIfActive { try ReadableFile(path: path) }
        } catch {
            return nil
        }
        guard file.size == length, let identity = FileIdentity(descriptor: file.descriptor) else {
            discard(path)
            return nil
        }
        defer { index.withLockedValue { $0.use(id.hex, size: length) } }
        if verified.withLockedValue({ $0[id.hex] }) == identity { return (file, identity) }
        guard id.algorithm == .sha256 else { return (file, identity) }
        let digest: [UInt8]
        do {
            digest = try await Self.sha256(of: file, length: length)
        } catch {
            return nil  // could not read it now; that proves nothing against the file
        }
        guard digest == id.bytes else {
            discard(path)
            return nil
        }
        remember(id, identity)
        return (file, identity)
    }

    /// Records a use of chunk `id` that did not open its file (a hit answered from memory).
    func noteUse(_ id: ChunkID, length: Int64) {
        index.withLockedValue { $0.use(id.hex, size: length) }
    }

    /// Whether the chunk is here with the right size (no hashing: a cheap presence check).
    func contains(_ id: ChunkID, length: Int64) async -> Bool {
        let path = self.path(for: id)
        return (try? await threadPool.runIfActive { FileSystem.size(of: path) == length }) ?? false
    }

    /// Puts a verified chunk in place: a hard link of `file` when the file system allows (an
    /// unlinked temporary file on the same file system), else a copy; either lands under a
    /// staging name first and is renamed over the final path. Failures are logged by the caller
    /// and never fail a request; ENOSPC turns on degraded mode.
    func install(_ file: ReadableFile, id: ChunkID, length: Int64) async throws {
        guard !isDegraded else { return }
        let final = path(for: id)
        let staging = "\(stagingDirectory)/\(id.hex).\(UInt64.random(in: 0...UInt64.max))"
        do {
            let identity = try await threadPool.runIfActive { () throws -> FileIdentity? in
                defer { unlink(staging) }
                if linkat(AT_FDCWD, "/proc/self/fd/\(file.descriptor)", AT_FDCWD, staging, AT_SYMLINK_FOLLOW) != 0 {
                    try FileSystem.copy(from: file.descriptor, length: length, to: staging)
                }
                try FileSystem.makeDirectories(FileSystem.parent(of: final))
                guard rename(staging, final) == 0 else { throw FileError(operation: "rename", path: final, errno: errno) }
                return FileIdentity(path: final)
            }
            if let identity { remember(id, identity) }
            index.withLockedValue { $0.use(id.hex, size: length) }
        } catch let error as FileError where error.errno == ENOSPC || error.errno == EDQUOT {
            enterDegradedMode()
            throw error
        }
    }

    // MARK: Index (see DiskCacheMaintenance.swift)

    var indexedBytes: Int64 { index.withLockedValue { $0.totalBytes } }

    func indexFound(_ files: [(name: String, size: Int64, time: Int64)]) {
        index.withLockedValue { index in
            for file in files where index.entries[file.name] == nil { index.found(file.name, size: file.size, time: file.time) }
        }
    }

    func leastRecentlyUsed(_ count: Int) -> [(name: String, size: Int64)] {
        index.withLockedValue { $0.leastRecentlyUsed(count) }
    }

    /// Deletes chunk file `name` (its hex). A reader that has it open keeps reading it.
    func evict(_ name: String) {
        guard let id = ChunkID(algorithm: name.utf8.count == 64 ? .sha256 : .uuid, hex: name) else {
            index.withLockedValue { $0.remove(name) }
            return
        }
        discard(path(for: id))
        verified.withLockedValue { _ = $0.removeValue(forKey: name) }
    }

    private func remember(_ id: ChunkID, _ identity: FileIdentity) {
        verified.withLockedValue { memo in
            if memo.count >= Self.verifiedMemoLimit { memo.removeAll(keepingCapacity: true) }
            memo[id.hex] = identity
        }
    }

    private func discard(_ path: String) {
        unlink(path)
        let name = String(path.split(separator: "/").last ?? "")
        index.withLockedValue { $0.remove(name) }
    }

    func enterDegradedMode() {
        degradedSince.withLockedValue { if $0 == nil { $0 = .now } }
    }

    /// Leaves degraded mode (space came back); returns how long it lasted.
    @discardableResult
    func leaveDegradedMode() -> Duration? {
        degradedSince.withLockedValue { since in
            defer { since = nil }
            return since.map { .now - $0 }
        }
    }

    /// SHA-256 of the first `length` bytes of `file`, read in 1 MiB pieces off the event loops.
    static func sha256(of file: ReadableFile, length: Int64) async throws -> [UInt8] {
        var hasher = SHA256()
        var received: Int64 = 0
        for try await piece in file.stream(range: 0..<length, pieceSize: 1 << 20) {
            received += Int64(piece.readableBytes)
            piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }
        guard received == length else { throw FileError(operation: "read", path: "chunk", errno: EIO) }
        return Array(hasher.finalize())
    }
}

/// What identifies a file's content without reading it: the same inode with the same change
/// time has not been written since (any write, truncate or rename updates ctime).
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let changeSeconds: Int
    let changeNanoseconds: Int
    /// Modification time: changed by writes and truncation, not by unlinking (eviction) or
    /// linking, which change only ctime.
    let modificationSeconds: Int
    let modificationNanoseconds: Int

    /// Whether the bytes can have changed between `self` and `later`, ignoring what unlinking or
    /// linking the file does (a reader keeps reading an evicted file's open descriptor).
    func sameContent(as later: FileIdentity) -> Bool {
        device == later.device && inode == later.inode && size == later.size
            && modificationSeconds == later.modificationSeconds && modificationNanoseconds == later.modificationNanoseconds
    }

    init?(descriptor: CInt) {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        self.init(info)
    }

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.init(info)
    }

    private init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        changeSeconds = Int(info.st_ctim.tv_sec)
        changeNanoseconds = Int(info.st_ctim.tv_nsec)
        modificationSeconds = Int(info.st_mtim.tv_sec)
        modificationNanoseconds = Int(info.st_mtim.tv_nsec)
    }
}

/// Small blocking file-system helpers; callers run them on a thread pool.
enum FileSystem {
    static func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw FileError(operation: "mkdir", path: current, errno: errno)
            }
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    static func size(of path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    /// Unlinks every entry of `directory` (not recursive).
    static func removeEntries(in directory: String) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            unlink(directory + "/" + name)
        }
    }

    /// Copies `length` bytes from the start of `source` into a new file at `path`.
    static func copy(from source: CInt, length: Int64, to path: String) throws {
        let target = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard target >= 0 else { throw FileError(operation: "create", path: path, errno: errno) }
        defer { close(target) }
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        while offset < length {
            let want = Int(min(Int64(size), length - offset))
            let n = pread(source, buffer, want, off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileError(operation: "read", path: "chunk file", errno: n < 0 ? errno : EIO) }
            var done = 0
            while done < n {
                let w = pwrite(target, buffer + done, n - done, off_t(offset) + off_t(done))
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { throw FileError(operation: "write", path: path, errno: w < 0 ? errno : EIO) }
                done += w
            }
            offset += Int64(n)
        }
    }
}
