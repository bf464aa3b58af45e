import Foundation
import TestSupport
import TestOrigin

/// A TLS origin signed by a test CA, and a passsage that trusts that CA for upstream TLS.
struct Fixture {
    let directory: String
    let pki: TestPKI
    let originCAFile: String
    let origin: TestOriginServer
    let proxy: PasssageProcess
    /// passsage's CA as fetched from `http://mitm.it/cert/pem` through the proxy.
    let proxyCAFile: String

    static func start(proxyArguments: [String] = [], environment: [String: String] = [:],
                      trustOrigin: Bool = true) async throws -> Fixture {
        let directory = try makeTemporaryDirectory()
        let pki = try TestPKI()
        let originCAFile = directory + "/origin-ca.pem"
        try pki.caPEM.write(toFile: originCAFile, atomically: true, encoding: .utf8)
        let origin = try await TestOriginServer.start(tls: try pki.serverConfiguration())
        let trust = trustOrigin ? ["--upstream-ca-file", originCAFile] : []
        let proxy = try await PasssageProcess.launch(trust + proxyArguments, environment: environment)
        let proxyCAFile = directory + "/proxy-ca.pem"
        let fetched = try await curl(["-x", proxy.proxyURL, "-o", proxyCAFile, "-w", "%{http_code}",
                                      "http://mitm.it/cert/pem"])
        guard fetched.stdout == "200" else {
            throw HarnessError("fetching the CA failed: \(fetched.stdout) \(fetched.stderr)")
        }
        return Fixture(directory: directory, pki: pki, originCAFile: originCAFile, origin: origin, proxy: proxy,
                       proxyCAFile: proxyCAFile)
    }

    var originURL: String { "https://localhost:\(origin.port)" }

    /// curl through the proxy, trusting the proxy CA.
    func proxiedCurl(_ arguments: [String], timeout: Double = 120) async throws -> ProcessResult {
        try await curl(["-x", proxy.proxyURL, "--cacert", proxyCAFile] + arguments, timeout: timeout)
    }

    func stop() async {
        proxy.stop()
        await origin.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension Fixture {
    /// A caching proxy (over a fresh data directory) in front of the TLS origin, for `body`; torn
    /// down whatever `body` does. `body` gets the fixture and the data directory.
    static func withCachingProxy(arguments: [String] = [], environment: [String: String] = [:],
                                 _ body: (Fixture, String) async throws -> Void) async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let fixture = try await Fixture.start(proxyArguments: ["--data-dir", dataDirectory] + arguments, environment: environment)
        try await withTeardown {
            try await body(fixture, dataDirectory)
        } teardown: {
            await fixture.stop()
            try? FileManager.default.removeItem(atPath: dataDirectory)
        }
    }
}

func sha256Hex(ofFile path: String) async throws -> String {
    let result = try await run("/usr/bin/env", ["sha256sum", path])
    return String(result.stdout.prefix(64))
}
