/// A small least-recently-used map with per-entry expiry. Not thread-safe: wrap it in a lock.
///
/// Eviction scans for the oldest entry, which is O(n) but happens only on inserts past capacity;
/// inserts follow a leaf minting (~0.4 ms), so a scan of a few thousand entries is noise.
public struct LRUCache<Key: Hashable, Value> {
    fileprivate struct Entry {
        var value: Value
        var lastUsed: UInt64
        var expires: UInt64
    }

    public let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var tick: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    /// Returns the value if present and not expired at `now`, marking it recently used.
    public mutating func value(for key: Key, now: UInt64) -> Value? {
        guard var entry = entries[key] else { return nil }
        if entry.expires <= now {
            entries[key] = nil
            return nil
        }
        tick &+= 1
        entry.lastUsed = tick
        entries[key] = entry
        return entry.value
    }

    public mutating func insert(_ value: Value, for key: Key, expires: UInt64) {
        tick &+= 1
        entries[key] = Entry(value: value, lastUsed: tick, expires: expires)
        while entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            entries[oldest.key] = nil
        }
    }
}

extension LRUCache: Sendable where Key: Sendable, Value: Sendable {}
extension LRUCache.Entry: Sendable where Key: Sendable, Value: Sendable {}
