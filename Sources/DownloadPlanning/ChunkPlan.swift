/// How one object of known size is cut into chunks: fixed-size chunks, the last one shorter.
/// The chunk size respects S3's limits (at most 10,000 parts of at most 5 GiB) so that the same
/// chunks can later be uploaded as they are.
public struct ChunkPlan: Sendable, Hashable {
    public static let maximumChunkCount: Int64 = 10_000
    public static let maximumChunkSize: Int64 = 5 << 30

    public let totalSize: Int64
    public let chunkSize: Int64

    /// `preferredChunkSize` grows to `ceil(totalSize / 10,000)` when needed, and is capped at 5 GiB.
    public init(totalSize: Int64, preferredChunkSize: Int64) {
        precondition(totalSize >= 0 && preferredChunkSize > 0, "sizes must be positive")
        let needed = (totalSize + Self.maximumChunkCount - 1) / Self.maximumChunkCount
        self.totalSize = totalSize
        self.chunkSize = Swift.min(Swift.max(preferredChunkSize, needed), Self.maximumChunkSize)
    }

    /// A plan of exactly `unitSize`-byte pieces, without S3's limits: the range requests a
    /// download makes, which may be smaller than its chunks.
    public init(totalSize: Int64, unitSize: Int64) {
        precondition(totalSize >= 0 && unitSize > 0, "sizes must be positive")
        self.totalSize = totalSize
        self.chunkSize = unitSize
    }

    /// The largest size not above `rangeSize` that divides `chunkSize` evenly into at most
    /// twice the parts `rangeSize` asks for (so every fetch unit lies inside one chunk);
    /// `chunkSize` itself when `rangeSize` is not smaller or no such divisor exists.
    public static func fetchUnitSize(chunkSize: Int64, rangeSize: Int64) -> Int64 {
        guard rangeSize > 0, rangeSize < chunkSize else { return chunkSize }
        let fewest = (chunkSize + rangeSize - 1) / rangeSize
        for parts in fewest...(2 * fewest) where chunkSize % parts == 0 {
            return chunkSize / parts
        }
        return chunkSize
    }

    /// Chunks in the object; 0 for an empty object.
    public var count: Int { Int((totalSize + chunkSize - 1) / chunkSize) }

    /// The bytes of chunk `index`, as a half-open range of object offsets.
    public func range(of index: Int) -> Range<Int64> {
        let start = Int64(index) * chunkSize
        return start..<Swift.min(start + chunkSize, totalSize)
    }

    public func length(of index: Int) -> Int64 { range(of: index).count64 }

    /// The chunk holding object offset `offset` (which must be below `totalSize`).
    public func chunk(containing offset: Int64) -> Int { Int(offset / chunkSize) }

    /// The chunks that hold any byte of the inclusive span `span`.
    public func chunks(overlapping span: ClosedRange<Int64>) -> ClosedRange<Int> {
        chunk(containing: span.lowerBound)...chunk(containing: Swift.min(span.upperBound, totalSize - 1))
    }
}

extension Range where Bound == Int64 {
    /// The number of elements, as an Int64.
    public var count64: Int64 { upperBound - lowerBound }
}
