import Foundation
import TestSupport
import Testing

@Suite("proxy-env.sh sourced by real shells", .serialized)
struct OnboardingScriptTests {
    @Test("sourcing the script exports the proxy and a CA bundle that curl then uses", arguments: ["sh", "bash", "zsh"])
    func sourcedScriptWorks(shell: String) async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let script = fixture.directory + "/proxy-env.sh"
            let fetched = try await curl(["-x", fixture.proxy.proxyURL, "-o", script, "http://mitm.it/proxy-env.sh"])
            #expect(fetched.status == 0)
            let home = fixture.directory + "/home-\(shell)"
            let command = """
                . \(script)
                echo "HTTPS_PROXY=$HTTPS_PROXY"
                echo "https_proxy=$https_proxy"
                echo "CURL_CA_BUNDLE=$CURL_CA_BUNDLE"
                curl -sS --max-time 30 --noproxy '' https://localhost:\(fixture.origin.port)/small
                echo "after=$?"
                """
            let result = try await run("/usr/bin/env", [
                "-i", "HOME=\(home)", "PATH=/usr/local/bin:/usr/bin:/bin", "PASSSAGE_NO_SYSTEM_TRUST=1", shell, "-c", command,
            ], timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains("HTTPS_PROXY=\(fixture.proxy.proxyURL)"), "\(lines)")
            #expect(lines.contains("https_proxy=\(fixture.proxy.proxyURL)"))
            #expect(lines.contains("CURL_CA_BUNDLE=\(home)/.passsage/ca-bundle.pem"))
            #expect(lines.contains("ok"), "curl through the proxy with the exported bundle: \(result.stderr)")
            #expect(lines.last == "after=0")
            let saved = try String(contentsOfFile: home + "/.passsage/proxy-env.sh", encoding: .utf8)
            #expect(saved.contains("export HTTPS_PROXY='\(fixture.proxy.proxyURL)'"))
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("mitm.it answers inside an intercepted tunnel and on the proxy's own address")
    func onboardingSiteReachableEverywhere() async throws {
        let fixture = try await Fixture.start()
        try await withTeardown {
            let overTLS = try await fixture.proxiedCurl(["https://mitm.it/cert/pem"])
            #expect(overTLS.status == 0, "\(overTLS.stderr)")
            #expect(overTLS.stdout == (try String(contentsOfFile: fixture.proxyCAFile, encoding: .utf8)))
            // Asked directly (no proxy), the script exports the address the client used.
            let direct = try await curl(["http://127.0.0.1:\(fixture.proxy.port)/proxy-env.sh"])
            #expect(direct.stdout.contains("_passsage_proxy_url='http://127.0.0.1:\(fixture.proxy.port)'"))
            let missing = try await curl(["-w", "%{http_code}", "-o", "/dev/null", "http://127.0.0.1:\(fixture.proxy.port)/nope"])
            #expect(missing.stdout == "404")
        } teardown: {
            await fixture.stop()
        }
    }

    @Test("sourcing never ends the caller's shell, even with set -eu and an unwritable HOME", arguments: ["sh", "bash", "zsh"])
    func sourcingNeverExits(shell: String) async throws {
        let fixture = try await Fixture.start(proxyArguments: ["--public-proxy-url", "http://proxy.example:3128"])
        try await withTeardown {
            let script = fixture.directory + "/proxy-env.sh"
            _ = try await curl(["-x", fixture.proxy.proxyURL, "-o", script, "http://mitm.it/proxy-env.sh"])
            let command = """
                set -eu
                . \(script)
                echo "still-alive HTTP_PROXY=$HTTP_PROXY"
                . \(script) --no-certificate
                echo "still-alive-2"
                """
            let result = try await run("/usr/bin/env", [
                "-i", "HOME=/proc/passsage-not-writable", "PATH=/usr/local/bin:/usr/bin:/bin", "PASSSAGE_NO_SYSTEM_TRUST=1",
                shell, "-c", command,
            ], timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("still-alive HTTP_PROXY=http://proxy.example:3128"), "\(result.stdout) \(result.stderr)")
            #expect(result.stdout.contains("still-alive-2"))
            #expect(result.stderr.contains("passsage:"), "errors are reported")
        } teardown: {
            await fixture.stop()
        }
    }
}
