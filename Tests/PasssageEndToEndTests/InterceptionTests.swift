import Foundation
import TestSupport
import Testing
import TestOrigin

@Suite("Interception (real curl and openssl through a passsage process)", .serialized)
struct InterceptionTests {
    @Test("curl trusts the CA from mitm.it, the chain validates, bodies match, and two requests share one tunnel")
    func interceptedRequestsShareATunnel() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let first = fixture.directory + "/first"
            let second = fixture.directory + "/second"
            let result = try await fixture.proxiedCurl([
                "-w", "%{http_code} %{num_connects} %{ssl_verify_result}\n",
                "-o", first, "\(fixture.originURL)/bytes/300000",
                "-o", second, "\(fixture.originURL)/bytes/5000",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines == ["200 1 0", "200 0 0"], "second request must reuse the tunnel: \(lines)")
            #expect(try await sha256Hex(ofFile: first) == OriginContent.sha256(count: 300_000))
            #expect(try await sha256Hex(ofFile: second) == OriginContent.sha256(count: 5000))
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("an IP-literal CONNECT target gets a leaf with an IP SAN")
    func ipLiteralTarget() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let result = try await fixture.proxiedCurl(["-w", "%{http_code} %{ssl_verify_result}",
                                                        "-o", "/dev/null", "https://127.0.0.1:\(fixture.origin.port)/small"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "200 0")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("a client that sends no SNI gets a valid leaf for the CONNECT host")
    func clientWithoutSNI() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let result = try await run("/usr/bin/env", [
                "sh", "-c",
                "openssl s_client -proxy 127.0.0.1:\(fixture.proxy.port) -connect localhost:\(fixture.origin.port) " +
                    "-noservername -CAfile \(fixture.proxyCAFile) -verify_hostname localhost -verify_return_error " +
                    "-brief </dev/null 2>&1",
            ], timeout: 30)
            #expect(result.status == 0, "\(result.stdout)")
            #expect(result.stdout.contains("Verification: OK"), "\(result.stdout)")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("a --no-intercept host gets a blind tunnel and the origin's own certificate")
    func noInterceptHost() async throws {
        let fixture = try await Fixture.start(proxyArguments: ["--no-intercept", "example.invalid,localhost"])
        try await withTeardown {
            let withOriginCA = try await curl(["-x", fixture.proxy.proxyURL, "--cacert", fixture.originCAFile,
                                               "-w", "%{http_code}", "-o", "/dev/null", "\(fixture.originURL)/small"])
            #expect(withOriginCA.status == 0, "\(withOriginCA.stderr)")
            #expect(withOriginCA.stdout == "200")
            let withProxyCA = try await fixture.proxiedCurl(["-o", "/dev/null", "\(fixture.originURL)/small"])
            #expect(withProxyCA.status == 60, "the proxy's CA must not validate the origin's certificate")
        } teardown: {
            await fixture.stop()
        }
    }
}
