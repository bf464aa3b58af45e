import Foundation
import Testing
import TestOrigin
import TestSupport

/// The README's cache walkthrough, run as written: only the proxy address, the CA file and the URL
/// are swapped for the test's own (no network beyond 127.0.0.1 here).
@Suite("README walkthrough")
struct ReadmeWalkthroughTests {
    /// The `curl` lines of the README's "The cache at work" block, in order.
    static func walkthroughCommands() throws -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "The cache at work") else { throw HarnessError("README: no cache walkthrough") }
        let rest = readme[start.upperBound...]
        guard let open = rest.range(of: "```sh\n"), let close = rest[open.upperBound...].range(of: "```") else {
            throw HarnessError("README: the walkthrough has no sh block")
        }
        return rest[open.upperBound..<close.lowerBound].split(separator: "\n").map(String.init).filter { $0.hasPrefix("curl ") }
    }

    @Test("the README's commands show a miss that is stored, then a hit")
    func walkthrough() async throws {
        let commands = try Self.walkthroughCommands()
        #expect(commands.count == 2, "\(commands)")
        try await Fixture.withCachingProxy { fixture, _ in
            func run(_ command: String) async throws -> String {
                let local = command
                    .replacingOccurrences(of: "http://localhost:8080", with: fixture.proxy.proxyURL)
                    .replacingOccurrences(of: "passsage-ca.pem", with: fixture.proxyCAFile)
                    .replacingOccurrences(of: "https://www.python.org/static/img/python-logo.png",
                                          with: fixture.originURL + "/object/15000")
                return try await TestSupport.run("/bin/sh", ["-c", local]).stdout.lowercased()
            }
            let miss = try await run(commands[0])
            #expect(miss.contains("cache-status: passsage;fwd=uri-miss;stored"), "\(miss)")
            var hit = ""
            try await waitUntil(timeout: 10, "the walkthrough's hit") {
                hit = try await run(commands[1])
                return hit.contains("cache-status: passsage;hit")
            }
            #expect(hit.contains("age: "), "\(hit)")
            let requests = fixture.origin.stats.requests("/object/15000")
            #expect(try await run(commands[1]).contains("cache-status: passsage;hit"))
            #expect(fixture.origin.stats.requests("/object/15000") == requests, "a hit never reaches the origin")
        }
    }
}
