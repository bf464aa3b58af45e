import Foundation
import TestOrigin
import TestSupport
import Testing

/// What a download costs the service: cancellation, temporary space, memory.
@Suite("xs3lerator resources", .serialized)
struct ResourceTests {
    static let gibibyte: Int64 = 1 << 30

    @Test func clientDisconnectStopsTheDownloadAndFreesTemporarySpace() async throws {
        try await Xs3Fixture.with(["--chunk-size", "8MiB"]) { fixture in
            // 20 MB/s per origin connection: the client reads half the object, then hangs up.
            let url = fixture.url("/object/\(Self.gibibyte)?rate=20000000")
            let result = try await run("/bin/bash", ["-c", "curl -sS '\(url)' | head -c \(Self.gibibyte / 2) | wc -c"], timeout: 120)
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(Self.gibibyte / 2))
            try await waitUntil(timeout: 10, "the origin transfers to stop") { fixture.origin.stats.activeTransfers == 0 }
            try await waitUntil(timeout: 10, "the chunk files to be released") { fixture.openChunkFiles == 0 }
            let sent = fixture.origin.stats.bytesSent
            #expect(sent < Self.gibibyte * 9 / 10, "the origin sent \(sent) bytes: the download went on without its client")
            // Nothing more flows after the stop.
            try await Task.sleep(for: .milliseconds(500))
            #expect(fixture.origin.stats.bytesSent == sent)
        }
    }

    @Test(.tags(.heavy)) func tenClientsOfOneGiBEachStayUnder200MiB() async throws {
        try await Xs3Fixture.with(["--chunk-size", "8MiB"]) { fixture in
            let expected = OriginContent.sha256(range: 0..<Self.gibibyte)
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for client in 0..<10 {
                    group.addTask {
                        let result = try await download(fixture.url("/object/\(Self.gibibyte)?client=\(client)"), timeout: 600)
                        return (result.status, result.sha256)
                    }
                }
                for try await (status, digest) in group {
                    #expect(status == 200)
                    #expect(digest == expected)
                }
            }
            let peak = fixture.peakResidentBytes
            #expect(peak > 0)
            #expect(peak < 200 << 20, "peak RSS \(peak >> 20) MiB")
            try await waitUntil(timeout: 10, "the chunk files to be released") { fixture.openChunkFiles == 0 }
        }
    }
}
