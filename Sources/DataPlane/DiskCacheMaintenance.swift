import Logging
import NIOCore
import NIOPosix
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeping the disk cache between its watermarks, and leaving degraded mode once space is back.
extension DiskCache {
    /// Indexes what is on disk, then checks usage every `interval` until cancelled.
    func maintain(interval: Duration, metrics: DataPlaneMetrics, logger: Logger) async {
        guard watermarks != nil else { return }
        let found = (try? await NIOThreadPool.singleton.runIfActive { [root] in Self.scan(root) }) ?? []
        indexFound(found)
        logger.info("disk cache indexed", metadata: ["root": "\(root)", "chunks": "\(found.count)"])
        while !Task.isCancelled {
            await checkUsage(metrics: metrics, logger: logger)
            try? await Task.sleep(for: interval)
        }
    }

    /// One round: at or above the high watermark, evicts least recently used chunks, sorted
    /// once, until the bytes freed bring usage below the low one; below the low one, leaves
    /// degraded mode. Returns the evictions.
    @discardableResult
    func checkUsage(metrics: DataPlaneMetrics, logger: Logger) async -> Int {
        guard let watermarks, let usage = usagePercent(), let total = capacityBytes() else { return 0 }
        var evicted = 0
        if usage >= watermarks.high {
            let toFree = Int64(usage - watermarks.low + 1) * total / 100
            let order = leastRecentlyUsed(Int.max)
            evicted = (try? await NIOThreadPool.singleton.runIfActive { [self] () -> Int in
                var freed: Int64 = 0
                var count = 0
                for (name, size) in order where freed < toFree {
                    evict(name)
                    freed += size
                    count += 1
                }
                return count
            }) ?? 0
            metrics.evicted(evicted)
            logger.info("disk cache eviction", metadata: ["from-percent": "\(usage)", "to-percent": "\(usagePercent() ?? -1)",
                                                          "evicted": "\(evicted)"])
        }
        if let now = usagePercent(), now < watermarks.low, let lasted = leaveDegradedMode() {
            metrics.degraded(for: lasted)
            logger.notice("disk cache: space is back; caching to disk again", metadata: ["degraded-for": "\(lasted)"])
        }
        return evicted
    }

    /// What the watermarks are a percentage of, in bytes.
    func capacityBytes() -> Int64? {
        switch capacity {
        case .bytes(let limit): return limit
        case .fileSystem:
            var info = statvfs()
            guard statvfs(root, &info) == 0 else { return nil }
            return Int64(info.f_blocks) * Int64(info.f_frsize)
        }
    }

    /// Usage in percent of the capacity; nil when it cannot be measured.
    func usagePercent() -> Int? {
        switch capacity {
        case .bytes(let limit):
            guard limit > 0 else { return nil }
            return Int(indexedBytes * 100 / limit)
        case .fileSystem:
            var info = statvfs()
            guard statvfs(root, &info) == 0, info.f_blocks > 0 else { return nil }
            let used = UInt64(info.f_blocks) - UInt64(info.f_bavail)
            return Int(used * 100 / UInt64(info.f_blocks))
        }
    }

    /// The chunk files below `root` (four levels of one hex digit), with size and mtime.
    static func scan(_ root: String) -> [(name: String, size: Int64, time: Int64)] {
        var found: [(String, Int64, Int64)] = []
        func walk(_ directory: String, depth: Int) {
            guard let dir = opendir(directory) else { return }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasPrefix(".") { continue }
                let path = directory + "/" + name
                if depth < 4 {
                    if name.utf8.count == 1 { walk(path, depth: depth + 1) }
                    continue
                }
                var info = stat()
                guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                found.append((name, Int64(info.st_size), Int64(info.st_mtim.tv_sec)))
            }
        }
        walk(root, depth: 0)
        return found
    }
}
