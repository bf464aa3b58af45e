#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StorageCore

/// Yields the files under a root as object keys in ascending UTF-8 byte order, the order S3 lists in.
///
/// A directory `d` sorts among its siblings as `d/`, which is exactly where all of its keys fall,
/// so a depth-first walk with each level sorted that way is globally ordered. Directories that
/// cannot contain a key after `startAfter` or under `prefix` are never opened.
struct DirectoryWalker {
    private let root: String
    private let prefix: [UInt8]
    private let startAfter: [UInt8]?
    private let skipTopLevel: String
    /// Pending entries, deepest level last; each level is sorted descending so popLast is next.
    private var stack: [[Entry]] = []
    private var started = false

    private struct Entry {
        var key: [UInt8]      // key of the file, or the directory's key followed by "/"
        var isDirectory: Bool
    }

    init(root: String, prefix: String, startAfter: String?, skipTopLevel: String) {
        self.root = root
        self.prefix = Array(prefix.utf8)
        self.startAfter = startAfter.map { Array($0.utf8) }
        self.skipTopLevel = skipTopLevel
    }

    mutating func next() throws -> ObjectSummary? {
        if !started {
            started = true
            stack.append(try entries(inDirectoryKey: []))
        }
        while !stack.isEmpty {
            guard let entry = stack[stack.count - 1].popLast() else {
                stack.removeLast()
                continue
            }
            if entry.isDirectory {
                if mayContainWanted(directoryKey: entry.key) {
                    stack.append(try entries(inDirectoryKey: entry.key))
                }
                continue
            }
            guard entry.key.starts(with: prefix) else { continue }
            if let startAfter, !startAfter.lexicographicallyPrecedes(entry.key) { continue }
            let key = String(decoding: entry.key, as: UTF8.self)
            var info = stat()
            guard stat(root + "/" + key, &info) == 0 else { continue }  // deleted meanwhile
            return ObjectSummary(key: key, size: Int64(info.st_size), lastModified: Int64(info.st_mtim.tv_sec))
        }
        return nil
    }

    /// `directoryKey` ends in "/". Its keys all start with it; prune if none can match.
    private func mayContainWanted(directoryKey: [UInt8]) -> Bool {
        let overlapsPrefix = directoryKey.starts(with: prefix) || prefix.starts(with: directoryKey)
        guard overlapsPrefix else { return false }
        if let startAfter, !startAfter.starts(with: directoryKey),
           !startAfter.lexicographicallyPrecedes(directoryKey) {
            return false  // every key in here sorts before startAfter
        }
        return true
    }

    private func entries(inDirectoryKey directoryKey: [UInt8]) throws -> [Entry] {
        let path = directoryKey.isEmpty ? root : root + "/" + String(decoding: directoryKey.dropLast(), as: UTF8.self)
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return [] }
            throw FileError(operation: "opendir", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var result = [Entry]()
        while let item = readdir(dir) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw -> [UInt8] in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name == Array(".".utf8) || name == Array("..".utf8) { continue }
            if directoryKey.isEmpty && name == Array(skipTopLevel.utf8) { continue }
            var info = stat()
            let childPath = path + "/" + String(decoding: name, as: UTF8.self)
            guard lstat(childPath, &info) == 0 else { continue }
            let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
            guard isDirectory || (info.st_mode & S_IFMT) == S_IFREG else { continue }
            result.append(Entry(key: directoryKey + name + (isDirectory ? [UInt8(ascii: "/")] : []),
                                isDirectory: isDirectory))
        }
        result.sort { $1.key.lexicographicallyPrecedes($0.key) }  // descending: popLast yields the smallest
        return result
    }
}
