import Crypto
import NIOCore

/// The deterministic bytes `/bytes/N` and `/object/N` serve: a fixed pseudo-random 1 MiB block,
/// rotated differently for every MiB of the object. Tests recompute the expected SHA-256 of any
/// range without downloading anything twice.
public enum OriginContent {
    public static let blockSize = 1 << 20

    public static let block: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes = [UInt8](repeating: 0, count: blockSize)
        for index in 0..<blockSize {
            // xorshift64*: cheap, and not compressible, so nothing on the path can shortcut it.
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            bytes[index] = UInt8(truncatingIfNeeded: (state &* 0x2545_F491_4F6C_DD1D) >> 56)
        }
        return bytes
    }()

    /// Where the bytes at object offset `offset` live in `block`, and how many follow
    /// contiguously there (at most `limit`). Each 1 MiB of the object is the block rotated by a
    /// different amount, so no two MiB of an object are equal: a range served from the wrong
    /// offset, even a whole number of MiB off, changes the hash.
    public static func slice(at offset: Int64, limit: Int64) -> (blockOffset: Int, length: Int) {
        let index = offset / Int64(blockSize)
        let inBlock = Int(offset % Int64(blockSize))
        let rotation = Int((index &* 104_729) % Int64(blockSize))
        let start = (inBlock + rotation) % blockSize
        let length = min(Int64(blockSize - inBlock), Int64(blockSize - start), limit)
        return (start, Int(length))
    }

    /// SHA-256 hex of the object bytes `range` (half-open).
    public static func sha256(range: Range<Int64>) -> String {
        var hasher = SHA256()
        var offset = range.lowerBound
        block.withUnsafeBytes { raw in
            while offset < range.upperBound {
                let (start, length) = slice(at: offset, limit: range.upperBound - offset)
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)]))
                offset += Int64(length)
            }
        }
        return hex(hasher.finalize())
    }

    /// SHA-256 hex of the first `count` bytes of the object.
    public static func sha256(count: Int) -> String {
        sha256(range: 0..<Int64(count))
    }

    /// The object bytes `range` (half-open), for tests that compare small ranges.
    public static func bytes(_ range: Range<Int64>) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(Int(range.upperBound - range.lowerBound))
        var offset = range.lowerBound
        while offset < range.upperBound {
            let (start, length) = slice(at: offset, limit: range.upperBound - offset)
            result += block[start..<(start + length)]
            offset += Int64(length)
        }
        return result
    }

    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
