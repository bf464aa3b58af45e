/// Which chunk files the disk cache holds and when each was last used, for LRU eviction without
/// atime (which `noatime` and `relatime` mounts do not keep). Pure; the cache keeps it under a
/// lock. Filled from the files' modification times at start-up; every hit and install counts as
/// a use.
struct DiskCacheIndex: Sendable {
    struct Entry: Sendable, Hashable {
        var size: Int64
        var lastUse: Int64
    }

    private(set) var entries: [String: Entry] = [:]
    private(set) var totalBytes: Int64 = 0
    /// A logical clock: a use later than another always has a larger value.
    private var clock: Int64 = 0

    /// Records a use of `name` now.
    mutating func use(_ name: String, size: Int64) {
        clock += 1
        record(name, Entry(size: size, lastUse: clock))
    }

    /// Records a file found at start-up, last used at `time` (its modification time, in
    /// seconds). Start-up entries sort before anything used since.
    mutating func found(_ name: String, size: Int64, time: Int64) {
        record(name, Entry(size: size, lastUse: time - Int64.max / 2))
    }

    mutating func remove(_ name: String) {
        if let old = entries.removeValue(forKey: name) { totalBytes -= old.size }
    }

    /// Up to `count` names with their sizes, least recently used first.
    func leastRecentlyUsed(_ count: Int) -> [(name: String, size: Int64)] {
        Array(entries.sorted { $0.value.lastUse < $1.value.lastUse || ($0.value.lastUse == $1.value.lastUse && $0.key < $1.key) }
            .prefix(count).map { ($0.key, $0.value.size) })
    }

    private mutating func record(_ name: String, _ entry: Entry) {
        if let old = entries[name] { totalBytes -= old.size }
        entries[name] = entry
        totalBytes += entry.size
    }
}
