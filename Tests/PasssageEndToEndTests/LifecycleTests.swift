import Foundation
import TestSupport
import Testing
import TestOrigin

@Suite("Health, shutdown and CLI errors", .serialized)
struct LifecycleTests {
    @Test("SIGTERM during a slow download lets it finish, then passsage exits 0")
    func gracefulShutdown() async throws {
        let fixture = try await Fixture.start(proxyArguments: ["--shutdown-grace-period", "30s"])
        try await withTeardown {
            let output = fixture.directory + "/slow.bin"
            let size = 4_000_000
            let download = Task {
                try await fixture.proxiedCurl(["-o", output, "\(fixture.originURL)/bytes/\(size)?rate=1000000"], timeout: 60)
            }
            try await waitUntil(timeout: 20, "the download to start") {
                ((try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0) > 0
            }
            fixture.proxy.signal(SIGTERM)
            // New connections are refused once shutdown begins.
            try await waitUntil(timeout: 10, "the listener to close") {
                (try? await rawExchange(port: fixture.proxy.port, send: [], timeout: 1)) == nil
            }
            let result = try await download.value
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try await sha256Hex(ofFile: output) == OriginContent.sha256(count: size))
            let status = try await fixture.proxy.waitForExit(timeout: 20)
            #expect(status == 0, "\(fixture.proxy.output)")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("/health answers 200 once the proxy listens")
    func health() async throws {
        let healthPort = try unusedPort()
        let proxy = try await PasssageProcess.launch(["--health-port", String(healthPort), "--health-host", "127.0.0.1"])
        defer { proxy.stop() }
        let result = try await curl(["-w", " %{http_code}", "http://127.0.0.1:\(healthPort)/health"])
        #expect(result.stdout == "ok\n 200")
    }

    @Test("invalid option values give a one-line error naming the option and exit code 2", arguments: [
        (["--port", "abc"], "port"),
        (["--port", "70000"], "--port"),
        (["--upstream-read-timeout", "soon"], "upstream-read-timeout"),
        (["--no-intercept", "bad host!"], "--no-intercept"),
        (["--public-proxy-url", "not a url"], "--public-proxy-url"),
        (["--mitm-ca-cert", "/nonexistent"], "--mitm-ca"),
    ])
    func invalidOptions(arguments: [String], option: String) async throws {
        let result = try await run(PasssageProcess.executable, arguments + ["--health-port", "0"], timeout: 30)
        #expect(result.status == 2, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(option), "\(result.stderr)")
    }

    @Test("a port that is already in use gives a clear error and exit code 1, not a crash")
    func portInUse() async throws {
        let first = try await PasssageProcess.launch()
        defer { first.stop() }
        let caDirectory = try makeTemporaryDirectory()
        let result = try await run(PasssageProcess.executable, [
            "--bind", "127.0.0.1", "--port", String(first.port), "--health-port", "0", "--ca-dir", caDirectory,
        ], timeout: 30)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot listen for proxy connections on 127.0.0.1:\(first.port)"), "\(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test("an invalid environment value names the option and the variable")
    func invalidEnvironment() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["PASSSAGE_PORT"] = "eighty"
        let result = try await run(PasssageProcess.executable, ["--health-port", "0"], environment: environment, timeout: 30)
        #expect(result.status == 2)
        #expect(result.stderr.contains("--port") && result.stderr.contains("PASSSAGE_PORT"), "\(result.stderr)")
    }
}
