/// Who writes which chunk of one download, and how far each has got. Every chunk has at most
/// one writer at a time, so no byte is written twice and progress is never double-counted (the
/// original let the first stream and a range worker overlap). Bytes recorded are always a
/// verified prefix of the chunk, so a writer that fails can hand its chunk on and the next one
/// resumes where it stopped. Pure; the engine keeps it under a lock.
public struct ChunkBoard: Sendable {
    public enum Writer: Sendable, Hashable {
        /// The first, plain GET, streaming the object in order.
        case stream
        /// A range worker.
        case worker(Int)
    }

    public struct Slot: Sendable, Hashable {
        public let range: Range<Int64>
        public var written: Int64 = 0
        public var writer: Writer?
        /// Outside the download's scope (a passthrough range request needs only some chunks).
        public let isNeeded: Bool

        public var length: Int64 { range.count64 }
        public var isDone: Bool { written == length }
        /// The object offset where writing continues.
        public var resumeOffset: Int64 { range.lowerBound + written }
    }

    public enum Claim: Sendable, Hashable {
        case chunk(Int)
        /// Nothing can be claimed until the reader moves on (read-ahead window) or a writer
        /// releases a chunk.
        case wait
        /// Every needed chunk is done or being written.
        case none
    }

    public let plan: ChunkPlan
    public private(set) var slots: [Slot]
    /// The order in which workers claim chunks: the needed span first, then the rest.
    public let order: [Int]

    /// `needed` limits the download to some chunks (nil: all); `priority` goes first.
    public init(plan: ChunkPlan, needed: ClosedRange<Int>? = nil, priority: ClosedRange<Int>? = nil) {
        self.plan = plan
        self.slots = (0..<plan.count).map { Slot(range: plan.range(of: $0), isNeeded: needed?.contains($0) ?? true) }
        let all = Array(0..<plan.count).filter { needed?.contains($0) ?? true }
        if let priority {
            order = all.filter { priority.contains($0) } + all.filter { !priority.contains($0) }
        } else {
            order = all
        }
    }

    public var isComplete: Bool { slots.allSatisfy { !$0.isNeeded || $0.isDone } }

    /// Whether `claimNext` would find a chunk below `limit`.
    public func canClaim(startingBelow limit: Int64) -> Bool {
        order.contains { !slots[$0].isDone && slots[$0].writer == nil && slots[$0].range.lowerBound < limit }
    }

    /// Claims chunk `index` for `writer` if it is needed, unfinished and free.
    public mutating func claim(_ index: Int, by writer: Writer) -> Bool {
        guard slots.indices.contains(index), slots[index].isNeeded, !slots[index].isDone, slots[index].writer == nil else {
            return false
        }
        slots[index].writer = writer
        return true
    }

    /// Claims the next free chunk in `order` that starts below `limit` (the read-ahead window).
    public mutating func claimNext(by writer: Writer, startingBelow limit: Int64) -> Claim {
        var blocked = false
        for index in order where !slots[index].isDone && slots[index].writer == nil {
            guard slots[index].range.lowerBound < limit else {
                blocked = true
                continue
            }
            slots[index].writer = writer
            return .chunk(index)
        }
        return blocked ? .wait : .none
    }

    /// Records `count` more verified bytes of chunk `index` from its writer; returns whether the
    /// chunk is now done (which also frees it).
    @discardableResult
    public mutating func record(_ count: Int64, of index: Int, by writer: Writer) -> Bool {
        precondition(slots[index].writer == writer, "chunk \(index) written by a writer that does not hold it")
        precondition(slots[index].written + count <= slots[index].length, "chunk \(index) overfilled")
        slots[index].written += count
        if slots[index].isDone { slots[index].writer = nil }
        return slots[index].isDone
    }

    /// Gives chunk `index` up (its writer stopped or failed); the bytes written so far stay.
    public mutating func release(_ index: Int, by writer: Writer) {
        if slots[index].writer == writer { slots[index].writer = nil }
    }

    /// Gives up every chunk `writer` holds.
    public mutating func releaseAll(by writer: Writer) {
        for index in slots.indices where slots[index].writer == writer { slots[index].writer = nil }
    }
}
