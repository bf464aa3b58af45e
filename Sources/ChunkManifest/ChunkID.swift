/// The identity of one stored chunk: a SHA-256 of its content (manifest v2), or the random UUID
/// the original data plane used (manifest v1, read only).
public struct ChunkID: Sendable, Hashable, CustomStringConvertible {
    public enum Algorithm: UInt8, Sendable {
        /// 32-byte SHA-256 of the chunk's bytes: content-addressed, verifiable on read.
        case sha256 = 1
        /// 16-byte random UUID (RFC 4122 byte order), from the original's v1 manifests.
        case uuid = 2

        public var byteCount: Int {
            switch self {
            case .sha256: 32
            case .uuid: 16
            }
        }
    }

    public let algorithm: Algorithm
    public let bytes: [UInt8]

    /// Nil unless `bytes` has the algorithm's length.
    public init?(algorithm: Algorithm, bytes: [UInt8]) {
        guard bytes.count == algorithm.byteCount else { return nil }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// Parses lower- or upper-case hex of the right length for `algorithm`.
    public init?(algorithm: Algorithm, hex: String) {
        guard let bytes = ChunkID.decodeHex(hex) else { return nil }
        self.init(algorithm: algorithm, bytes: bytes)
    }

    /// Lower-case hex: the form used in object keys.
    public var hex: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    static func decodeHex(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
