import Foundation
import Testing
import TestOrigin
import TestSupport

/// SIGTERM while 50 keep-alive clients are being served, hits and misses: what Kubernetes does
/// to a pod on every rollout.
@Suite("Draining under load", .serialized)
struct DrainTests {
    static let clients = 50
    static let requestsPerClient = 6
    static let hitSize: Int64 = 100_000
    static let missSize: Int64 = 300_000

    static func hitPath(_ index: Int) -> String { "/object/\(hitSize)?seed=\(index)&cc=max-age%3D3600" }
    /// A miss the origin sends at 200 kB/s: about 1.5 s, so that many are in flight at SIGTERM.
    static func missPath(_ client: Int, _ request: Int) -> String {
        "/object/\(missSize)?seed=\(10_000 + client * 100 + request)&cc=max-age%3D3600&rate=200000"
    }

    struct Transfer {
        let path: String
        let file: String
        let exitCode: Int
        let status: Int
        let size: Int64
        /// Connections curl opened for this transfer: 0 when it went on the kept-alive one.
        let newConnections: Int
    }

    /// Run by scripts/test in the last pass, apart from the heavy tests (see there).
    @Test("SIGTERM under 50 keep-alive clients: every response complete, refusals only for new connections, no entry half-written")
    func sigtermUnderLoad() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let fixture = try await Fixture.start(proxyArguments: ["--data-dir", dataDirectory, "--shutdown-grace-period", "20s"])
        var restarted: PasssageProcess?
        try await withTeardown {
            // Hits: ten objects stored before the load starts.
            for index in 0..<10 {
                try await waitUntil(timeout: 60, "hit \(index) stored") {
                    let warm = try await fixture.proxiedCurl(["-s", "-o", "/dev/null", "-w", "%{http_code}",
                                                             fixture.originURL + Self.hitPath(index)])
                    return warm.stdout == "200"
                }
            }
            // Each client: one curl, six requests on one keep-alive connection, hits and misses alternating.
            let transfers = try await withThrowingTaskGroup(of: [Transfer].self) { group in
                for client in 0..<Self.clients {
                    group.addTask { try await Self.runClient(client, fixture: fixture) }
                }
                try await waitUntil(timeout: 30, "misses in flight") { fixture.origin.stats.activeTransfers >= 20 }
                fixture.proxy.signal(SIGTERM)
                var all: [Transfer] = []
                for try await done in group { all += done }
                return all
            }
            let exit = try await fixture.proxy.waitForExit(timeout: 40)
            #expect(exit == 0, "passsage exits 0 after draining: \(fixture.proxy.output.suffix(2000))")

            var complete = 0
            for transfer in transfers {
                if transfer.exitCode == 0 {
                    // A response that arrived arrived whole: status, length and bytes.
                    let expected = transfer.path.contains("rate=") ? Self.missSize : Self.hitSize
                    #expect(transfer.status == 200 && transfer.size == expected, "\(transfer)")
                    let seed = Int64(transfer.path.split(separator: "seed=")[1].prefix { $0.isNumber })!
                    #expect(try await sha256Hex(ofFile: transfer.file) == OriginContent.sha256(range: seed..<(seed + expected)),
                            "\(transfer.path)")
                    complete += 1
                } else {
                    // The only failure allowed: a new connection refused (curl reconnects when the
                    // kept-alive one was closed between responses): not accepted (curl 7), or
                    // accepted and closed with nothing sent on it; never a response cut short,
                    // nor a request dropped on an open connection.
                    #expect(transfer.size == 0 && transfer.status == 0 && (transfer.exitCode == 7 || transfer.newConnections > 0),
                            "\(transfer)")
                }
            }
            #expect(complete >= Self.clients, "most clients got at least their first response: \(complete)")

            // No entry is half-written: a new passsage on the same data, the origin gone, serves
            // each miss whole from the cache or not at all.
            await fixture.origin.stop()
            let again = try await PasssageProcess.launch(["--data-dir", dataDirectory, "--upstream-ca-file", fixture.originCAFile])
            restarted = again
            let caFile = try await SplitStack.fetchCA(again, into: fixture.directory + "/restarted-ca.pem")
            var served = 0
            for transfer in transfers where transfer.path.contains("rate=") {
                let file = fixture.directory + "/cached-\(served)-\(transfer.file.split(separator: "/").last!)"
                let result = try await curl(["-x", again.proxyURL, "--cacert", caFile, "-s", "-o", file, "-w", "%{http_code}",
                                             "-H", "Cache-Control: only-if-cached", fixture.originURL + transfer.path])
                #expect(result.stdout == "200" || result.stdout == "504", "\(transfer.path): \(result.stdout)")
                if result.stdout == "200" {
                    let seed = Int64(transfer.path.split(separator: "seed=")[1].prefix { $0.isNumber })!
                    #expect(try await sha256Hex(ofFile: file) == OriginContent.sha256(range: seed..<(seed + Self.missSize)))
                    served += 1
                }
                if transfer.exitCode == 0 {
                    #expect(result.stdout == "200", "a miss completed before the shutdown was stored: \(transfer.path)")
                }
            }
        } teardown: {
            restarted?.stop()
            await fixture.stop()
            try? FileManager.default.removeItem(atPath: dataDirectory)
        }
    }

    /// One client: one curl, its requests in turn on one connection; a line per transfer.
    static func runClient(_ client: Int, fixture: Fixture) async throws -> [Transfer] {
        var arguments = ["-s", "--max-time", "60", "-w", "%{exitcode} %{http_code} %{size_download} %{num_connects}\\n"]
        var planned: [(String, String)] = []
        for request in 0..<requestsPerClient {
            let path = request % 2 == 0 ? hitPath((client + request) % 10) : missPath(client, request)
            let file = fixture.directory + "/client-\(client)-\(request)"
            planned.append((path, file))
            arguments += ["-o", file, fixture.originURL + path]
        }
        let result = try await fixture.proxiedCurl(arguments, timeout: 90)
        let lines = result.stdout.split(separator: "\n")
        return planned.enumerated().map { index, plan in
            let fields = index < lines.count ? lines[index].split(separator: " ").map(String.init) : []
            guard fields.count == 4 else {
                return Transfer(path: plan.0, file: plan.1, exitCode: -1, status: 0, size: 0, newConnections: 0)
            }
            return Transfer(path: plan.0, file: plan.1, exitCode: Int(fields[0]) ?? -1, status: Int(fields[1]) ?? 0,
                            size: Int64(fields[2]) ?? 0, newConnections: Int(fields[3]) ?? 0)
        }
    }
}
