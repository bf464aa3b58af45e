import Foundation
import TestOrigin
import TestSupport
import Testing

/// Whole-object downloads through the engine, against our origin.
@Suite("xs3lerator downloads", .serialized)
struct DownloadTests {
    static let gibibyte: Int64 = 1 << 30
    static let expected = OriginContent.sha256(range: 0..<gibibyte)

    /// Default sizes: 32 MiB chunks fetched in 8 MiB ranges.
    @Test(.tags(.heavy)) func oneGiBThroughParallelRanges() async throws {
        try await Xs3Fixture.with { fixture in
            let result = try await download(fixture.url("/object/\(Self.gibibyte)"))
            #expect(result.status == 200)
            #expect(result.size == Self.gibibyte)
            #expect(result.sha256 == Self.expected)
            // 128 ranges: the first stream cuts out early, range workers fetch the rest.
            #expect(fixture.origin.stats.rangeRequests > 100)
            try await waitUntil(timeout: 10, "chunk files to be released") { fixture.openChunkFiles == 0 }
        }
    }

    @Test(.tags(.heavy)) func oneGiBSequentiallyWhenRangesAreRefused() async throws {
        try await Xs3Fixture.with(["--chunk-size", "8MiB"]) { fixture in
            let result = try await download(fixture.url("/object/\(Self.gibibyte)?ranges=none"))
            #expect(result.status == 200)
            #expect(result.sha256 == Self.expected)
            #expect(fixture.origin.stats.rangeRequests == 0)
        }
    }

    /// Ranges answered with 200 and the whole object, cut short, or one byte off, in the middle
    /// of the parallel phase: each is refused, retried from the last verified byte, and the
    /// object still arrives intact, still through ranges.
    /// Fewer consecutive faults than range attempts per chunk (3): with more, one chunk may meet them
    /// all and the download rightly falls back to one stream, which is not what this test is about.
    @Test(.tags(.heavy), arguments: ["fault=ok200&faultFrom=5&faults=2", "fault=short&faultFrom=5&faults=2", "fault=wrong&faultFrom=5&faults=2"])
    func oneGiBRecoversFromBadRangeAnswers(_ faults: String) async throws {
        try await Xs3Fixture.with(["--chunk-size", "16MiB", "--range-size", "4MiB"]) { fixture in
            let result = try await download(fixture.url("/object/\(Self.gibibyte)?\(faults)"))
            #expect(result.status == 200)
            #expect(result.size == Self.gibibyte)
            #expect(result.sha256 == Self.expected)
            #expect(fixture.origin.stats.rangeRequests > 100)
        }
    }

    /// When even the probe gets a bad answer, the download falls back to one stream.
    @Test func badProbeFallsBackToOneStream() async throws {
        try await Xs3Fixture.with(["--chunk-size", "8MiB"]) { fixture in
            let size: Int64 = 200 << 20
            let result = try await download(fixture.url("/object/\(size)?fault=ok200&faults=1000"))
            #expect(result.sha256 == OriginContent.sha256(range: 0..<size))
            #expect(fixture.origin.stats.rangeRequests < 10)
        }
    }

    @Test func originWithoutRangeAdvertisementIsProbed() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            let size: Int64 = 40 << 20
            let result = try await download(fixture.url("/object/\(size)?ranges=unadvertised"))
            #expect(result.sha256 == OriginContent.sha256(range: 0..<size))
            #expect(fixture.origin.stats.rangeRequests > 10)
            let ignored = try await download(fixture.url("/object/\(size)?ranges=ignore"))
            #expect(ignored.sha256 == OriginContent.sha256(range: 0..<size))
        }
    }

    @Test func unknownLengthIsRelayedAsItComes() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            let size: Int64 = 5_000_000
            let result = try await download(fixture.url("/object/\(size)?chunked=1"))
            #expect(result.status == 200)
            #expect(result.sha256 == OriginContent.sha256(range: 0..<size))
            let empty = try await download(fixture.url("/object/0"))
            #expect(empty.status == 200)
            #expect(empty.size == 0)
        }
    }
}
