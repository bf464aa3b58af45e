/// A least-recently-used map with per-entry expiry, O(1) for lookups, inserts and evictions: the
/// entries live in an array threaded by a doubly linked recency list (indices, not references), and
/// a dictionary maps keys to slots. Not thread-safe: wrap it in a lock.
public struct LRUCache<Key: Hashable, Value> {
    fileprivate struct Slot {
        var key: Key
        /// nil once removed: a free slot holds nothing alive.
        var value: Value?
        var expires: UInt64
        /// Towards the most recently used end.
        var newer: Int
        /// Towards the least recently used end.
        var older: Int
    }

    private static var none: Int { -1 }

    public let capacity: Int
    private var slots: [Slot] = []
    private var index: [Key: Int] = [:]
    /// Most recently used slot.
    private var newest = LRUCache.none
    /// Least recently used slot: the next to go.
    private var oldest = LRUCache.none
    /// Slots freed by expiry, reused before the array grows.
    private var free: [Int] = []

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    public var count: Int { index.count }

    /// Returns the value if present and not expired at `now`, marking it recently used.
    public mutating func value(for key: Key, now: UInt64) -> Value? {
        guard let slot = index[key] else { return nil }
        if slots[slot].expires <= now {
            remove(slot: slot)
            return nil
        }
        moveToNewest(slot)
        return slots[slot].value
    }

    public mutating func insert(_ value: Value, for key: Key, expires: UInt64) {
        if let slot = index[key] {
            slots[slot].value = value
            slots[slot].expires = expires
            moveToNewest(slot)
            return
        }
        let slot: Int
        if index.count >= capacity {
            // Reuse the least recently used slot in place.
            slot = oldest
            unlink(slot)
            index[slots[slot].key] = nil
            slots[slot] = Slot(key: key, value: value, expires: expires, newer: Self.none, older: Self.none)
        } else if let reusable = free.popLast() {
            slot = reusable
            slots[slot] = Slot(key: key, value: value, expires: expires, newer: Self.none, older: Self.none)
        } else {
            slot = slots.count
            slots.append(Slot(key: key, value: value, expires: expires, newer: Self.none, older: Self.none))
        }
        index[key] = slot
        linkAsNewest(slot)
    }

    /// Removes `key`'s entry, returning its value.
    @discardableResult
    public mutating func removeValue(for key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        let value = slots[slot].value
        remove(slot: slot)
        return value
    }

    /// Removes the least recently used entry, returning it.
    public mutating func removeOldest() -> (key: Key, value: Value)? {
        guard oldest != Self.none else { return nil }
        let slot = oldest
        let entry = (slots[slot].key, slots[slot].value!)
        remove(slot: slot)
        return entry
    }

    /// Removes every entry.
    public mutating func removeAll() {
        slots.removeAll()
        index.removeAll()
        free.removeAll()
        newest = Self.none
        oldest = Self.none
    }

    private mutating func remove(slot: Int) {
        slots[slot].value = nil
        unlink(slot)
        index[slots[slot].key] = nil
        free.append(slot)
    }

    private mutating func moveToNewest(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let newer = slots[slot].newer
        let older = slots[slot].older
        if newer != Self.none { slots[newer].older = older } else { newest = older }
        if older != Self.none { slots[older].newer = newer } else { oldest = newer }
        slots[slot].newer = Self.none
        slots[slot].older = Self.none
    }

    private mutating func linkAsNewest(_ slot: Int) {
        slots[slot].older = newest
        slots[slot].newer = Self.none
        if newest != Self.none { slots[newest].newer = slot }
        newest = slot
        if oldest == Self.none { oldest = slot }
    }
}

extension LRUCache: Sendable where Key: Sendable, Value: Sendable {}
extension LRUCache.Slot: Sendable where Key: Sendable, Value: Sendable {}
