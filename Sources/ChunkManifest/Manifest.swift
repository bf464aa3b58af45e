/// The ordered chunks of one cached body. Chunk `i` holds bytes
/// `[i·chunkSize, min((i+1)·chunkSize, totalSize))`; only the last chunk may be shorter.
public struct Manifest: Sendable, Hashable {
    public let chunkSize: Int64
    public let totalSize: Int64
    public let chunks: [ChunkID]

    /// Largest chunk size accepted (1 TiB) and largest body (1 PiB): anything bigger is corrupt
    /// input, not a real cache entry, and would only overflow range arithmetic downstream.
    public static let maximumChunkSize: Int64 = 1 << 40
    public static let maximumTotalSize: Int64 = 1 << 50

    /// Checks the invariants every reader relies on; the codec refuses to decode anything else.
    public init(chunkSize: Int64, totalSize: Int64, chunks: [ChunkID]) throws(ManifestError) {
        guard chunkSize > 0, chunkSize <= Manifest.maximumChunkSize else {
            throw .invalidChunkSize(chunkSize)
        }
        guard totalSize >= 0, totalSize <= Manifest.maximumTotalSize else {
            throw .invalidTotalSize(totalSize)
        }
        let expected = Manifest.chunkCount(totalSize: totalSize, chunkSize: chunkSize)
        guard Int64(chunks.count) == expected else {
            throw .chunkCountMismatch(expected: expected, actual: Int64(chunks.count))
        }
        if let first = chunks.first, chunks.contains(where: { $0.algorithm != first.algorithm }) {
            throw .mixedAlgorithms
        }
        self.chunkSize = chunkSize
        self.totalSize = totalSize
        self.chunks = chunks
    }

    /// ceil(total / chunk); zero for an empty body.
    public static func chunkCount(totalSize: Int64, chunkSize: Int64) -> Int64 {
        totalSize == 0 ? 0 : (totalSize - 1) / chunkSize + 1
    }

    /// The bytes chunk `index` covers, as a half-open range of body offsets.
    public func byteRange(ofChunk index: Int) -> Range<Int64> {
        let start = Int64(index) * chunkSize
        return start..<min(start + chunkSize, totalSize)
    }

    /// Indices of the chunks that overlap the inclusive body span `span`.
    public func chunkIndices(overlapping span: ClosedRange<Int64>) -> ClosedRange<Int>? {
        guard !chunks.isEmpty, span.lowerBound >= 0, span.lowerBound < totalSize else { return nil }
        let first = Int(span.lowerBound / chunkSize)
        let last = Int(min(span.upperBound, totalSize - 1) / chunkSize)
        return first...last
    }
}

/// Why bytes are not a usable manifest.
public enum ManifestError: Error, Sendable, Hashable, CustomStringConvertible {
    case truncated(length: Int, needed: Int)
    case badMagic
    case unsupportedVersion(UInt8)
    case unsupportedAlgorithm(version: UInt8, algorithm: UInt8)
    case invalidChunkSize(Int64)
    case invalidTotalSize(Int64)
    case chunkCountMismatch(expected: Int64, actual: Int64)
    case trailingBytes(Int)
    case mixedAlgorithms
    case invalidBase64

    public var description: String {
        switch self {
        case .truncated(let length, let needed): "manifest truncated: \(length) bytes, need \(needed)"
        case .badMagic: "not a manifest: magic is not XS3M"
        case .unsupportedVersion(let v): "unsupported manifest version \(v)"
        case .unsupportedAlgorithm(let v, let a): "manifest version \(v) does not allow chunk id algorithm \(a)"
        case .invalidChunkSize(let s): "invalid chunk size \(s)"
        case .invalidTotalSize(let s): "invalid total size \(s)"
        case .chunkCountMismatch(let e, let a): "manifest lists \(a) chunks, its sizes imply \(e)"
        case .trailingBytes(let n): "\(n) unexpected bytes after the last chunk id"
        case .mixedAlgorithms: "chunk ids use more than one algorithm"
        case .invalidBase64: "manifest is not valid base64"
        }
    }
}
