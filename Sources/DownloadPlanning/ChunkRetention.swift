/// Which chunk files of one download must stay, and where its fetch window starts, given its
/// readers and its sink (the cache writer). Pure; the engine keeps it under its lock.
///
/// - Without a sink (accelerator), a chunk file lives until every reader has passed it, and the
///   window follows the slowest reader: nothing is fetched that no one will read.
/// - With an active sink (a keyed download that is being cached), a chunk file lives until the
///   sink has stored it, and the window follows the sink, not the readers: the download goes on
///   at the origin's pace when its client is slow or has left, and temporary space stays bounded
///   by the window. A reader that falls behind a stored chunk reads the stored copy; a reader
///   inside a chunk pins that chunk's file, so it is never pulled from under it.
/// - An abandoned sink (storing failed) stores nothing more; the download then serves its
///   readers as an accelerator would and stops when the last one leaves.
public struct ChunkRetention: Sendable {
    public enum Sink: Sendable, Hashable {
        case none
        case active
        case abandoned
    }

    public let plan: ChunkPlan
    public private(set) var sink: Sink
    /// Reader id → the next object offset it will read.
    public private(set) var readers: [Int: Int64] = [:]
    private var stored: [Bool]
    private var nextReaderID = 0

    public init(plan: ChunkPlan, sink: Bool) {
        self.plan = plan
        self.sink = sink ? .active : .none
        self.stored = Array(repeating: false, count: plan.count)
    }

    public mutating func addReader(at offset: Int64) -> Int {
        nextReaderID += 1
        readers[nextReaderID] = offset
        return nextReaderID
    }

    public mutating func moveReader(_ id: Int, to offset: Int64) {
        if readers[id] != nil { readers[id] = offset }
    }

    public mutating func removeReader(_ id: Int) {
        readers[id] = nil
    }

    /// The sink stored chunk `index`: its file is no longer needed for the cache.
    public mutating func markStored(_ index: Int) {
        stored[index] = true
    }

    /// Storing failed: nothing more is kept for the sink.
    public mutating func abandonSink() {
        if sink == .active { sink = .abandoned }
    }

    public func isStored(_ index: Int) -> Bool { stored[index] }

    /// The first chunk the sink has not stored; `plan.count` when all are.
    public var sinkFrontier: Int { stored.firstIndex(of: false) ?? plan.count }

    /// Where the fetch window starts; nil when nothing holds the download any more (no readers,
    /// no active sink), so it may stop.
    public var windowStart: Int64? {
        if sink == .active {
            let frontier = sinkFrontier
            return frontier < plan.count ? plan.range(of: frontier).lowerBound : plan.totalSize
        }
        return readers.values.min()
    }

    /// Nothing holds the download: no reader and no active sink.
    public var isUnwanted: Bool { sink != .active && readers.isEmpty }

    /// Whether chunk `index`'s file must stay open.
    public func mustKeep(_ index: Int) -> Bool {
        if sink == .active && !stored[index] { return true }
        let range = plan.range(of: index)
        return readers.values.contains { offset in
            offset < range.upperBound && (!stored[index] || range.contains(offset))
        }
    }

    /// Whether a reader at `offset` reads chunk `index` from the stored copy rather than the
    /// download's file (which may be gone).
    public func readsStoredCopy(_ index: Int) -> Bool { stored[index] }
}
