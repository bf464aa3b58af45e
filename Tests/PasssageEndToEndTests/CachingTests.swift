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
        try await Fixture.withCachingProxy { fixture, _ in
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
            let unsatisfiable = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", "-H", "Range: bytes=5000000-", url])
            #expect(Self.status(unsatisfiable.stdout) == "416" && Self.headers(unsatisfiable.stdout)["cache-status"]?.hasPrefix("passsage;hit") == true,
                    "\(unsatisfiable.stdout)")
            // The client's own conditional against the fresh entry: 304 from the cache.
            let conditional = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", "-H",
                                                             "If-None-Match: \"obj-3000000\"", url])
            #expect(Self.status(conditional.stdout) == "304", "\(conditional.stdout)")
            #expect(fixture.origin.stats.requests("/object/3000000") == originRequests)
        }
    }

    @Test("a client's X-Xs3lerator-Cache-Key and X-Passsage-* headers are ignored")
    func untrustedHeadersIgnored() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
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
        }
    }

    static func cacheStatus(_ output: String) -> String { headers(output)["cache-status"] ?? "" }

    @Test("gzip and identity variants under Vary: Accept-Encoding are stored apart and each served to its own clients")
    func varyAcceptEncoding() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let url = "\(fixture.originURL)/object/200000?vary=ae"
            let gzip = ["-H", "Accept-Encoding: gzip"]
            let identity = ["-H", "Accept-Encoding: identity"]
            let first = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/g1"] + gzip + [url])
            #expect(Self.cacheStatus(first.stdout) == "passsage;fwd=uri-miss;stored", "\(first.stdout)")
            try await waitUntil(timeout: 10, "the gzip variant to be a hit") {
                let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/g2"] + gzip + [url])
                return Self.cacheStatus(again.stdout).hasPrefix("passsage;hit")
            }
            let other = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/i1"] + identity + [url])
            #expect(Self.cacheStatus(other.stdout) == "passsage;fwd=vary-miss;stored", "the gzip entry is not this client's")
            try await waitUntil(timeout: 10, "the identity variant to be a hit") {
                let again = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/i2"] + identity + [url])
                return Self.cacheStatus(again.stdout).hasPrefix("passsage;hit")
            }
            let gzipBytes = OriginContent.sha256(range: 1_000_000..<1_200_000)
            let identityBytes = OriginContent.sha256(range: 0..<200_000)
            #expect(try await sha256Hex(ofFile: fixture.directory + "/g2") == gzipBytes)
            #expect(try await sha256Hex(ofFile: fixture.directory + "/i2") == identityBytes)
            let gzipAgain = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", fixture.directory + "/g3"] + gzip + [url])
            #expect(Self.cacheStatus(gzipAgain.stdout).hasPrefix("passsage;hit") && Self.headers(gzipAgain.stdout)["content-encoding"] == "gzip")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/g3") == gzipBytes)
            #expect(fixture.origin.stats.requests("/object/200000") == 2, "one download per variant")
        }
    }

    @Test("no-store, private and Authorization responses are never shared (bug 15)")
    func privateResponsesNotShared() async throws {
        try await Fixture.withCachingProxy { fixture, _ in
            let cases: [(String, [String])] = [
                ("/object/1001?cc=no-store", []),
                ("/object/1002?cc=private%2C%20max-age%3D600", []),
                ("/object/1003?cc=max-age%3D600", ["-H", "Authorization: Bearer secret"]),
            ]
            for (path, extra) in cases {
                for round in 0..<2 {
                    let answer = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null"] + extra + [fixture.originURL + path])
                    #expect(Self.cacheStatus(answer.stdout) == "passsage;fwd=uri-miss", "\(path) round \(round): \(answer.stdout)")
                }
                let name = String(path.split(separator: "?")[0])
                #expect(fixture.origin.stats.requests(name) == 2, "\(path): both requests reached the origin")
            }
            // The authorised response is not replayed to an anonymous client either.
            let anonymous = try await fixture.proxiedCurl(["-s", "-D", "-", "-o", "/dev/null", fixture.originURL + "/object/1003?cc=max-age%3D600"])
            #expect(Self.cacheStatus(anonymous.stdout) == "passsage;fwd=uri-miss;stored")
        }
    }
}
