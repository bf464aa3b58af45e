import Crypto
import NIOCore

/// The deterministic bytes `/bytes/N` serves: a fixed pseudo-random 1 MiB block, repeated. Tests
/// recompute the expected SHA-256 without downloading anything twice.
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

    /// SHA-256 hex of the first `count` bytes of the stream.
    public static func sha256(count: Int) -> String {
        var hasher = SHA256()
        var remaining = count
        block.withUnsafeBytes { raw in
            while remaining > 0 {
                let n = min(remaining, blockSize)
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                remaining -= n
            }
        }
        return hex(hasher.finalize())
    }

    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
