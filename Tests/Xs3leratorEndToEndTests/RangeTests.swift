import Foundation
import TestOrigin
import TestSupport
import Testing

/// Client ranges on cold downloads (every request a fresh download), 1 MiB chunks.
@Suite("xs3lerator client ranges", .serialized)
struct RangeTests {
    static let size: Int64 = 20 << 20

    @Test func everyRangeFormIsExact() async throws {
        let size = Self.size
        let boundary: Int64 = 1 << 20
        let cases: [(header: String, first: Int64, last: Int64)] = [
            ("bytes=0-0", 0, 0),
            ("bytes=\(size - 1)-\(size - 1)", size - 1, size - 1),
            ("bytes=-1000", size - 1000, size - 1),
            ("bytes=\(size - 5000)-", size - 5000, size - 1),
            ("bytes=\(size - 10)-\(size + 1000)", size - 10, size - 1),
            ("bytes=\(boundary - 5)-\(boundary + 4)", boundary - 5, boundary + 4),
            ("bytes=\(3 * boundary + 7)-\(11 * boundary + 3)", 3 * boundary + 7, 11 * boundary + 3),
        ]
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            for (index, item) in cases.enumerated() {
                let directory = fixture.temporaryDirectory
                let headersFile = "\(directory)/headers-\(index)"
                let result = try await download(fixture.url("/object/\(size)?n=\(index)"),
                                                headers: ["Range: \(item.header)"], extraCurl: ["-D", headersFile])
                #expect(result.status == 206, "\(item.header)")
                #expect(result.size == item.last - item.first + 1, "\(item.header)")
                #expect(result.sha256 == OriginContent.sha256(range: item.first..<(item.last + 1)), "\(item.header)")
                let headers = try String(contentsOfFile: headersFile, encoding: .utf8).lowercased()
                #expect(headers.contains("content-range: bytes \(item.first)-\(item.last)/\(size)"), "\(item.header)")
                #expect(headers.contains("accept-ranges: bytes"))
            }
            let whole = try await download(fixture.url("/object/\(size)?n=whole"), headers: ["Range: bytes=0-"])
            #expect(whole.status == 200)
            #expect(whole.size == size)
        }
    }

    @Test func unsatisfiableRangeIs416() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            let result = try await curl(["-D", "-", "-o", "/dev/null", "-H", "Range: bytes=\(Self.size)-", fixture.url("/object/\(Self.size)")])
            #expect(result.stdout.hasPrefix("HTTP/1.1 416"), "\(result.stdout)")
            #expect(result.stdout.lowercased().contains("content-range: bytes */\(Self.size)"))
        }
    }
}
