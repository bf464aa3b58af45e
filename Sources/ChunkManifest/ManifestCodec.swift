/// The binary manifest format (little-endian), byte layout in docs/metadata.md:
///
///     0  4  magic "XS3M"
///     4  1  version: 1 (original, UUID ids) or 2 (SHA-256 ids)
///     5  1  id algorithm: 2 = UUID (16 bytes) in v1; 1 = SHA-256 (32 bytes) in v2
///     6  8  chunk size (u64)
///    14  8  total size (u64)
///    22  4  chunk count N (u32)
///    26  …  N chunk ids, in body order
///
/// We write version 2 only and read both. Decoding checks every field and never traps.
public enum ManifestCodec {
    public static let magic: [UInt8] = Array("XS3M".utf8)
    public static let headerLength = 26

    public static func encode(_ manifest: Manifest) -> [UInt8] {
        let algorithm = manifest.chunks.first?.algorithm ?? .sha256
        var out = [UInt8]()
        out.reserveCapacity(headerLength + manifest.chunks.count * algorithm.byteCount)
        out += magic
        out.append(algorithm == .sha256 ? 2 : 1)
        out.append(algorithm.rawValue)
        appendLittleEndian(UInt64(manifest.chunkSize), to: &out)
        appendLittleEndian(UInt64(manifest.totalSize), to: &out)
        appendLittleEndian(UInt32(manifest.chunks.count), to: &out)
        for chunk in manifest.chunks { out += chunk.bytes }
        return out
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(ManifestError) -> Manifest {
        let data = Array(bytes)
        guard data.count >= headerLength else { throw .truncated(length: data.count, needed: headerLength) }
        guard Array(data[0..<4]) == magic else { throw .badMagic }
        let version = data[4]
        let algorithmByte = data[5]
        let algorithm: ChunkID.Algorithm
        switch (version, algorithmByte) {
        case (1, ChunkID.Algorithm.uuid.rawValue): algorithm = .uuid
        case (2, ChunkID.Algorithm.sha256.rawValue): algorithm = .sha256
        case (1, _), (2, _): throw .unsupportedAlgorithm(version: version, algorithm: algorithmByte)
        default: throw .unsupportedVersion(version)
        }
        let chunkSize = readLittleEndian(data, at: 6, count: 8)
        let totalSize = readLittleEndian(data, at: 14, count: 8)
        let count = Int(readLittleEndian(data, at: 22, count: 4))
        guard chunkSize > 0, chunkSize <= UInt64(Manifest.maximumChunkSize) else {
            throw .invalidChunkSize(Int64(truncatingIfNeeded: chunkSize))
        }
        guard totalSize <= UInt64(Manifest.maximumTotalSize) else {
            throw .invalidTotalSize(Int64(truncatingIfNeeded: totalSize))
        }
        let expected = Manifest.chunkCount(totalSize: Int64(totalSize), chunkSize: Int64(chunkSize))
        guard Int64(count) == expected else { throw .chunkCountMismatch(expected: expected, actual: Int64(count)) }
        let needed = headerLength + count * algorithm.byteCount
        guard data.count >= needed else { throw .truncated(length: data.count, needed: needed) }
        guard data.count == needed else { throw .trailingBytes(data.count - needed) }
        var chunks = [ChunkID]()
        chunks.reserveCapacity(count)
        var offset = headerLength
        for _ in 0..<count {
            let id = ChunkID(algorithm: algorithm, bytes: Array(data[offset..<offset + algorithm.byteCount]))!
            chunks.append(id)
            offset += algorithm.byteCount
        }
        return try Manifest(chunkSize: Int64(chunkSize), totalSize: Int64(totalSize), chunks: chunks)
    }

    /// Standard base64 with padding: the form stored in `manifest_b64` and sent in headers.
    public static func encodeBase64(_ manifest: Manifest) -> String {
        Base64.encode(encode(manifest))
    }

    public static func decodeBase64(_ text: String) throws(ManifestError) -> Manifest {
        guard let bytes = Base64.decode(text) else { throw .invalidBase64 }
        return try decode(bytes)
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }

    private static func readLittleEndian(_ data: [UInt8], at offset: Int, count: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in (0..<count).reversed() { value = value << 8 | UInt64(data[offset + i]) }
        return value
    }
}
