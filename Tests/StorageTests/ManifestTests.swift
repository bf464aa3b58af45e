import ChunkManifest
import Testing

@Suite("Manifest codec")
struct ManifestTests {
    static func sha(_ seed: UInt8) -> ChunkID {
        ChunkID(algorithm: .sha256, bytes: (0..<32).map { UInt8(truncatingIfNeeded: Int($0) * 7 + Int(seed)) })!
    }

    @Test func version2RoundTrips() throws {
        let manifest = try Manifest(chunkSize: 8 << 20, totalSize: (16 << 20) + 5, chunks: [Self.sha(1), Self.sha(2), Self.sha(3)])
        let bytes = ManifestCodec.encode(manifest)
        #expect(bytes.count == 26 + 3 * 32)
        #expect(Array(bytes[0..<6]) == Array("XS3M".utf8) + [2, 1])
        #expect(try ManifestCodec.decode(bytes) == manifest)
        #expect(try ManifestCodec.decodeBase64(ManifestCodec.encodeBase64(manifest)) == manifest)
    }

    @Test func emptyBodyHasNoChunks() throws {
        let manifest = try Manifest(chunkSize: 1024, totalSize: 0, chunks: [])
        #expect(try ManifestCodec.decode(ManifestCodec.encode(manifest)) == manifest)
    }

    /// The original's format, built by hand from the byte layout in xs3lerator-behaviour.md §4.2.
    @Test func readsVersion1WithUUIDs() throws {
        var bytes = Array("XS3M".utf8) + [1, 2]
        bytes += littleEndian(UInt64(100), 8) + littleEndian(UInt64(250), 8) + littleEndian(UInt64(3), 4)
        let ids = (0..<3).map { i in (0..<16).map { UInt8(i * 16 + $0) } }
        for id in ids { bytes += id }
        #expect(bytes.count == 26 + 48)
        let manifest = try ManifestCodec.decode(bytes)
        #expect(manifest.chunkSize == 100 && manifest.totalSize == 250)
        #expect(manifest.chunks.map(\.bytes) == ids)
        #expect(manifest.chunks[0].hex == "000102030405060708090a0b0c0d0e0f")
        #expect(manifest.chunks.allSatisfy { $0.algorithm == .uuid })
        #expect(manifest.byteRange(ofChunk: 2) == 200..<250)
        // Re-encoding a v1 manifest keeps its format: ids are what they are.
        #expect(ManifestCodec.encode(manifest) == bytes)
    }

    @Test func chunkRangeMath() throws {
        let manifest = try Manifest(chunkSize: 10, totalSize: 25, chunks: [Self.sha(1), Self.sha(2), Self.sha(3)])
        #expect(manifest.chunkIndices(overlapping: 0...0) == 0...0)
        #expect(manifest.chunkIndices(overlapping: 9...10) == 0...1)
        #expect(manifest.chunkIndices(overlapping: 15...1000) == 1...2)
        #expect(manifest.chunkIndices(overlapping: 25...30) == nil)
    }

    @Test func rejectsMalformedInput() throws {
        let valid = ManifestCodec.encode(try Manifest(chunkSize: 10, totalSize: 25, chunks: [Self.sha(1), Self.sha(2), Self.sha(3)]))
        func header(version: UInt8 = 2, algorithm: UInt8 = 1, chunk: UInt64 = 10, total: UInt64 = 25, count: UInt32 = 3) -> [UInt8] {
            Array("XS3M".utf8) + [version, algorithm] + littleEndian(chunk, 8) + littleEndian(total, 8) + littleEndian(UInt64(count), 4)
        }
        let ids = Array(valid[26...])
        let cases: [(String, [UInt8], ManifestError)] = [
            ("empty", [], .truncated(length: 0, needed: 26)),
            ("short header", Array(valid[0..<25]), .truncated(length: 25, needed: 26)),
            ("bad magic", Array("XS3N".utf8) + Array(valid[4...]), .badMagic),
            ("version 3", header(version: 3) + ids, .unsupportedVersion(3)),
            ("v2 with uuid ids", header(algorithm: 2) + ids, .unsupportedAlgorithm(version: 2, algorithm: 2)),
            ("v1 with sha ids (old, rejected like the original)", header(version: 1, algorithm: 1) + ids, .unsupportedAlgorithm(version: 1, algorithm: 1)),
            ("zero chunk size", header(chunk: 0) + ids, .invalidChunkSize(0)),
            ("absurd chunk size", header(chunk: 1 << 41) + ids, .invalidChunkSize(1 << 41)),
            ("absurd total", header(total: UInt64.max) + ids, .invalidTotalSize(-1)),
            ("count too small", header(count: 2) + Array(ids[0..<64]), .chunkCountMismatch(expected: 3, actual: 2)),
            ("count too large", header(count: 4) + ids + ids[0..<32], .chunkCountMismatch(expected: 3, actual: 4)),
            ("truncated ids", Array(valid.dropLast()), .truncated(length: valid.count - 1, needed: valid.count)),
            ("trailing bytes", valid + [0], .trailingBytes(1)),
            ("huge count, few bytes", header(chunk: 1, total: UInt64(UInt32.max), count: UInt32.max), .truncated(length: 26, needed: 26 + Int(UInt32.max) * 32)),
        ]
        for (name, bytes, expected) in cases {
            #expect(throws: expected, "\(name)") { try ManifestCodec.decode(bytes) }
        }
        #expect(throws: ManifestError.invalidBase64) { try ManifestCodec.decodeBase64("not base64!") }
        #expect(throws: ManifestError.invalidBase64) { try ManifestCodec.decodeBase64("QUJD=") }
        #expect(throws: ManifestError.invalidChunkSize(0)) { try Manifest(chunkSize: 0, totalSize: 0, chunks: []) }
        #expect(throws: ManifestError.mixedAlgorithms) {
            try Manifest(chunkSize: 10, totalSize: 20, chunks: [Self.sha(1), ChunkID(algorithm: .uuid, bytes: Array(repeating: 0, count: 16))!])
        }
    }

    /// Random and mutated inputs: decoding must never trap, and whatever it accepts must be a
    /// manifest that satisfies every invariant and re-encodes to the same bytes.
    @Test func fuzzNeverCrashes() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let seeds: [[UInt8]] = try [
            ManifestCodec.encode(Manifest(chunkSize: 10, totalSize: 25, chunks: [Self.sha(1), Self.sha(2), Self.sha(3)])),
            ManifestCodec.encode(Manifest(chunkSize: 1 << 20, totalSize: 0, chunks: [])),
            ManifestCodec.encode(Manifest(chunkSize: 7, totalSize: 7, chunks: [ChunkID(algorithm: .uuid, bytes: Array(repeating: 9, count: 16))!])),
        ]
        var accepted = 0
        for iteration in 0..<20_000 {
            var bytes: [UInt8]
            if iteration % 4 == 0 {
                bytes = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if rng.next() % 2 == 0 && bytes.count >= 6 { bytes.replaceSubrange(0..<6, with: Array("XS3M".utf8) + [2, 1]) }
            } else {
                bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0...(rng.next() % 4) {
                    switch rng.next() % 4 {
                    case 0 where !bytes.isEmpty: bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8))
                    case 1 where !bytes.isEmpty: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
                    case 2: bytes += (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    default: if bytes.count > 14 { bytes.replaceSubrange(6..<14, with: littleEndian(rng.next(), 8)) }
                    }
                }
            }
            if let manifest = try? ManifestCodec.decode(bytes) {
                accepted += 1
                #expect(manifest.chunkSize > 0)
                #expect(Int64(manifest.chunks.count) == Manifest.chunkCount(totalSize: manifest.totalSize, chunkSize: manifest.chunkSize))
                #expect(ManifestCodec.encode(manifest) == bytes)
            }
        }
        #expect(accepted > 0, "the fuzzer should also produce some valid manifests")
    }
}

func littleEndian(_ value: UInt64, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

/// Deterministic random numbers, so a fuzz failure can be reproduced.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
