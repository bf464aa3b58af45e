/// Content-addressed object keys for chunks: `<prefix><h0>/<h1>/<h2>/<h3>/<hex>`, where h0–h3 are
/// the first four hex digits. Sixteen-way fan-out at four levels spreads writes across S3 key
/// partitions and keeps local directories small.
public struct ChunkKeyLayout: Sendable, Hashable {
    /// Normalised: empty, or segments joined by single `/` and ending in `/`.
    public let prefix: String

    /// `prefix` as the user typed it: `data`, `/data/`, `a//b` all become `data/` or `a/b/`.
    /// Throws for characters outside `[a-z0-9._-]` in a segment, or `.`/`..` segments.
    public init(prefix: String = "data/") throws(ObjectKeyError) {
        let segments = prefix.split(separator: "/", omittingEmptySubsequences: true)
        for segment in segments {
            guard segment != ".", segment != "..", segment.utf8.allSatisfy(ChunkKeyLayout.isKeyByte) else {
                throw ObjectKeyError(key: prefix, reason: "prefix segments may only use a-z 0-9 . _ -")
            }
        }
        self.prefix = segments.isEmpty ? "" : segments.joined(separator: "/") + "/"
    }

    /// The key for the chunk whose id is `hex` (lower-case hex, at least four digits).
    public func key(forHex hex: String) throws(ObjectKeyError) -> String {
        let utf8 = Array(hex.utf8)
        guard utf8.count >= 4, utf8.allSatisfy({ ChunkKeyLayout.isHexDigit($0) }) else {
            throw ObjectKeyError(key: hex, reason: "chunk ids are lower-case hex, at least four digits")
        }
        let h = utf8.prefix(4).map { String(UnicodeScalar($0)) }
        return "\(prefix)\(h[0])/\(h[1])/\(h[2])/\(h[3])/\(hex)"
    }

    static func isKeyByte(_ c: UInt8) -> Bool {
        isHexDigit(c) || (c >= UInt8(ascii: "g") && c <= UInt8(ascii: "z"))
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }
}

public struct ObjectKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    public let key: String
    public let reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "invalid object key \"\(key)\": \(reason)" }
}
