import Foundation
import Testing
import TestOrigin
import TestSupport

/// The embedded caching proxy end to end: curl through the real proxy over HTTPS (interception),
/// our TLS origin, the data plane in-process over a local directory and SQLite.
@Suite("Caching through the embedded data plane")
struct CachingTests {
    static func headers(_ output: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in output.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// The status of the last response in curl's `-D -` output (after the CONNECT's).
    static func status(_ output: String) -> String? {
        output.split(separator: "\r\n").last { $0.hasPrefix("HTTP/") }.map { String($0.split(separator: " ")[1]) }
    }

    @Test("a miss, then a hit with no second origin request, replaying the origin's headers with Age and Cache-Status")
    func missThenHit() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let fixture = try await Fixture.start(proxyArguments: ["--data-dir", dataDirectory])
        try await withTeardown {
            let url = "\(fixture.originURL)/object/3000000"
            let first = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/first", url])
            let missHeaders = Self.headers(first.stdout)
            #expect(Self.status(first.stdout) == "200", "\(first.stdout)")
            #expect(missHeaders["cache-status"] == "passsage;fwd=uri-miss;stored")
            #expect(fixture.origin.stats.requests("/object/3000000") >= 1)
            let originRequests = fixture.origin.stats.requests("/object/3000000")

            // The document is written with the manifest once the whole body is stored.
            var hitOutput = ""
            try await waitUntil(timeout: 10, "a hit") {
                let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/second", url])
                hitOutput = again.stdout
                return Self.headers(again.stdout)["cache-status"]?.hasPrefix("passsage;hit") == true
            }
            let hit = Self.headers(hitOutput)
            #expect(hit["etag"] == "\"obj-3000000\"" && hit["last-modified"] == "Sat, 21 Nov 2026 00:00:00 GMT")
            #expect(hit["content-type"] == "application/octet-stream" && hit["content-length"] == "3000000")
            #expect(hit["age"] != nil)
            #expect(fixture.origin.stats.requests("/object/3000000") == originRequests, "the hit never reached the origin")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/second") == OriginContent.sha256(range: 0..<3_000_000))

            // HEAD from the metadata, with the real length (bug 13); a range from the stored body.
            let head = try await fixture.proxiedCurl(["-s", "-I", url])
            #expect(Self.headers(head.stdout)["content-length"] == "3000000", "\(head.stdout)")
            let range = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", "-H", "Range: bytes=10-19", url])
            #expect(Self.status(range.stdout) == "206" && Self.headers(range.stdout)["content-range"] == "bytes 10-19/3000000")
            // The client's own conditional against the fresh entry: 304 from the cache.
            let conditional = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", "-H",
                                                             "If-None-Match: \"obj-3000000\"", url])
            #expect(Self.status(conditional.stdout) == "304", "\(conditional.stdout)")
            #expect(fixture.origin.stats.requests("/object/3000000") == originRequests)
        } teardown: {
            await fixture.stop()
            try? FileManager.default.removeItem(atPath: dataDirectory)
        }
    }

    @Test("a client's X-Xs3lerator-Cache-Key and X-Passsage-* headers are ignored")
    func untrustedHeadersIgnored() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let fixture = try await Fixture.start(proxyArguments: ["--data-dir", dataDirectory])
        try await withTeardown {
            let url = "\(fixture.originURL)/object/1000"
            let other = "\(fixture.originURL)/object/2000"
            _ = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", other])
            try await waitUntil(timeout: 10, "the first entry") {
                let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", other])
                return Self.headers(again.stdout)["cache-status"]?.hasPrefix("passsage;hit") == true
            }
            // Naming the other entry's key must not make this URL a hit on it.
            let spoofed = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/spoofed",
                                                         "-H", "X-Xs3lerator-Cache-Key: https/localhost/whatever",
                                                         "-H", "X-Passsage-Policy: norefresh", url])
            #expect(Self.headers(spoofed.stdout)["cache-status"] == "passsage;fwd=uri-miss;stored", "\(spoofed.stdout)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/spoofed") == OriginContent.sha256(range: 0..<1000))
        } teardown: {
            await fixture.stop()
            try? FileManager.default.removeItem(atPath: dataDirectory)
        }
    }
}
