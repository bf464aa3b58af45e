import Foundation
import Testing
import TestOrigin
import TestSupport

/// The policies, the policy file and its reload, presigned keys, the policy header and per-rule
/// timeouts, through the real proxy over HTTPS.
@Suite("Policies through the proxy")
struct PolicyEndToEndTests {
    static func cacheStatus(_ output: String) -> String { CachingTests.headers(output)["cache-status"] ?? "" }

    /// A caching proxy with `policies` as its policy file (the file's path goes to `body` too).
    static func withPolicies(_ policies: String, arguments: [String] = [], environment: [String: String] = [:],
                             _ body: (Fixture, String) async throws -> Void) async throws {
        let directory = try makeTemporaryDirectory()
        let file = directory + "/policies.yaml"
        try policies.write(toFile: file, atomically: true, encoding: .utf8)
        try await withTeardown {
            try await Fixture.withCachingProxy(arguments: ["--policy-file", file] + arguments, environment: environment) { fixture, _ in
                try await body(fixture, file)
            }
        } teardown: {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// One request's headers (`-D -`), the body into `file`.
    static func get(_ fixture: Fixture, _ url: String, output file: String = "/dev/null",
                    headers: [String] = []) async throws -> String {
        try await fixture.proxiedCurl(["-s", "-D", "-", "-o", file] + headers.flatMap { ["-H", $0] } + [url]).stdout
    }

    /// Requests `url` until its `Cache-Status` satisfies `condition`.
    static func poll(_ fixture: Fixture, _ url: String, _ what: String, headers: [String] = [],
                     until condition: @escaping (String) -> Bool) async throws -> String {
        var last = ""
        try await waitUntil(timeout: 15, what) {
            last = try await get(fixture, url, headers: headers)
            return condition(cacheStatus(last))
        }
        return last
    }

    static let rules = """
        rules:
          - match: {path_prefix: /object/1, path_suffix: "01"}
            policy: NoRefresh
          - match: {path_suffix: /1102}
            policy: StaleIfError
            strip_query: [failFrom, failStatus]   # so the failing URLs name the stored entry
          - match: {path_suffix: /1103}
            policy: AlwaysUpstream
          - match: {path_suffix: /1104}
            policy: NoCache
        """

    @Test("NoRefresh: an expired entry is served without asking the origin")
    func noRefresh() async throws {
        try await Self.withPolicies(Self.rules) { fixture, _ in
            let url = "\(fixture.originURL)/object/1101?cc=max-age%3D1"
            _ = try await Self.poll(fixture, url, "the entry stored") { $0.contains("stored") || $0.hasPrefix("passsage;hit") }
            try await waitUntil(timeout: 10, "the entry to expire") {
                try await Task.sleep(for: .milliseconds(200))
                return Self.cacheStatus(try await Self.get(fixture, url)).contains("detail=no-refresh")
            }
            let requests = fixture.origin.stats.requests("/object/1101")
            let answer = try await Self.get(fixture, url, output: fixture.directory + "/body", headers: ["Cache-Control: no-cache"])
            #expect(Self.cacheStatus(answer).hasPrefix("passsage;hit") && Self.cacheStatus(answer).contains("detail=no-refresh"),
                    "\(answer)")
            #expect(fixture.origin.stats.requests("/object/1101") == requests, "not even the client's no-cache reaches it")
            #expect(fixture.origin.stats.conditionalRequests == 0)
            #expect(try await sha256Hex(ofFile: fixture.directory + "/body") == OriginContent.sha256(range: 0..<1101))
        }
    }

    @Test("StaleIfError: a 5xx, a 404 and a down origin each serve the stored copy, without any stale-if-error directive")
    func staleIfError() async throws {
        try await Self.withPolicies(Self.rules) { fixture, _ in
            for (status, from) in [(503, 2), (404, 3)] {
                let url = "\(fixture.originURL)/object/1102?cc=max-age%3D1&failFrom=\(from)&failStatus=\(status)"
                // The data plane answers for a 5xx itself; a 404 comes back to passsage, which names it.
                let answer = try await Self.poll(fixture, url, "a stale answer after a \(status)") {
                    $0.contains("detail=stale-if-error") && (status != 404 || $0.contains("fwd-status=404"))
                }
                #expect(CachingTests.status(answer) == "200", "\(answer)")
            }
            await fixture.origin.stop()
            let url = "\(fixture.originURL)/object/1102?cc=max-age%3D1"
            let down = try await Self.get(fixture, url, output: fixture.directory + "/down")
            #expect(Self.cacheStatus(down).contains("detail=stale-if-error"), "\(down)")
            #expect(CachingTests.status(down) == "200")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/down") == OriginContent.sha256(range: 0..<1102))
            // Bug 7: serving stale on an error does not make the entry fresh again.
            let again = try await Self.get(fixture, url)
            #expect(Self.cacheStatus(again).contains("detail=stale-if-error"), "bug 7: still stale, not a fresh hit: \(again)")
            #expect((Int(CachingTests.headers(again)["age"] ?? "0") ?? 0) >= 1, "bug 7: its age keeps counting: \(again)")
            let head = try await fixture.proxiedCurl(["-s", "-I", url]).stdout
            #expect(CachingTests.status(head) == "200" && Self.cacheStatus(head).contains("detail=stale-if-error"), "\(head)")
        }
    }

    @Test("AlwaysUpstream: every request asks the origin, also for a fresh entry; with the origin down the cache answers")
    func alwaysUpstream() async throws {
        try await Self.withPolicies(Self.rules) { fixture, _ in
            let url = "\(fixture.originURL)/object/1103?cc=max-age%3D600"
            let first = try await Self.get(fixture, url)
            #expect(Self.cacheStatus(first) == "passsage;fwd=uri-miss;stored", "\(first)")
            let second = try await Self.poll(fixture, url, "a revalidation of the fresh entry") { $0.contains("fwd-status=304") }
            #expect(Self.cacheStatus(second).hasPrefix("passsage;fwd=bypass;fwd-status=304"), "\(second)")
            let requests = fixture.origin.stats.requests("/object/1103")
            _ = try await Self.get(fixture, url)
            #expect(fixture.origin.stats.requests("/object/1103") == requests + 1)
            let head = try await fixture.proxiedCurl(["-s", "-I", url]).stdout
            #expect(CachingTests.status(head) == "200")
            #expect(fixture.origin.stats.requests("/object/1103") == requests + 2, "HEAD goes upstream too (bug 2)")

            await fixture.origin.stop()
            let down = try await Self.get(fixture, url, output: fixture.directory + "/down")
            #expect(CachingTests.status(down) == "200", "\(down)")
            #expect(Self.cacheStatus(down).contains("detail=stale-if-error"), "\(down)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/down") == OriginContent.sha256(range: 0..<1103))
            // A HEAD falls back too, with the stored length.
            let headDown = try await fixture.proxiedCurl(["-s", "-I", url]).stdout
            #expect(CachingTests.status(headDown) == "200", "\(headDown)")
            #expect(Self.cacheStatus(headDown).contains("detail=stale-if-error"), "\(headDown)")
            #expect(CachingTests.headers(headDown)["content-length"] == "1103", "\(headDown)")
        }
    }

    @Test("NoCache: every request reaches the origin and nothing is stored")
    func noCache() async throws {
        try await Self.withPolicies(Self.rules) { fixture, _ in
            let url = "\(fixture.originURL)/object/1104?cc=max-age%3D600"
            for _ in 0..<3 {
                let answer = try await Self.get(fixture, url)
                #expect(CachingTests.status(answer) == "200")
                #expect(Self.cacheStatus(answer).isEmpty, "the cache does not handle it: \(answer)")
            }
            #expect(fixture.origin.stats.requests("/object/1104") == 3)
        }
    }

    @Test("presigned URLs: two differently signed URLs of one object share an entry; a rule's strip_query too")
    func presignedURLs() async throws {
        let rules = """
            rules:
              - match: {path_suffix: /1106}
                policy: Standard
                strip_query: [token]
            """
        try await Self.withPolicies(rules) { fixture, _ in
            func signed(_ signature: String, date: String) -> String {
                "\(fixture.originURL)/object/1105?cc=max-age%3D600&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                    + "&X-Amz-Credential=AKIDEXAMPLE%2F\(date)%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=\(date)T000000Z"
                    + "&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=\(signature)"
            }
            _ = try await Self.poll(fixture, signed("aaaa", date: "20261201"), "the first signed URL stored") {
                $0.hasPrefix("passsage;hit")
            }
            let other = try await Self.get(fixture, signed("bbbb", date: "20261202"), output: fixture.directory + "/other")
            #expect(Self.cacheStatus(other).hasPrefix("passsage;hit"), "\(other)")
            #expect(fixture.origin.stats.requests("/object/1105") == 1)
            #expect(try await sha256Hex(ofFile: fixture.directory + "/other") == OriginContent.sha256(range: 0..<1105))

            let tokenURL = "\(fixture.originURL)/object/1106?cc=max-age%3D600&token="
            _ = try await Self.poll(fixture, tokenURL + "one", "the token URL stored") { $0.hasPrefix("passsage;hit") }
            #expect(Self.cacheStatus(try await Self.get(fixture, tokenURL + "two")).hasPrefix("passsage;hit"))
            #expect(fixture.origin.stats.requests("/object/1106") == 1)
        }
    }

    @Test("X-Passsage-Policy is refused by default (also with PASSSAGE_ALLOW_POLICY_HEADER=0, bug 3) and never reaches the origin (bug 19)")
    func policyHeaderRefused() async throws {
        try await Self.withPolicies("rules: []\n", environment: ["PASSSAGE_ALLOW_POLICY_HEADER": "0"]) { fixture, _ in
            let url = "\(fixture.originURL)/object/1107?cc=max-age%3D600"
            _ = try await Self.poll(fixture, url, "the entry stored") { $0.hasPrefix("passsage;hit") }
            let answer = try await Self.get(fixture, url, headers: ["X-Passsage-Policy: NoCache"])
            #expect(Self.cacheStatus(answer).hasPrefix("passsage;hit"), "the header changed nothing: \(answer)")
            let echoed = try await fixture.proxiedCurl(["-s", "-H", "X-Passsage-Policy: NoCache", "\(fixture.originURL)/headers"])
            #expect(echoed.stdout.contains("host:") && !echoed.stdout.contains("x-passsage"), "\(echoed.stdout)")
        }
    }

    @Test("with --allow-policy-header the header chooses the policy, and still never reaches the origin")
    func policyHeaderHonoured() async throws {
        try await Self.withPolicies("rules: []\n", arguments: ["--allow-policy-header"]) { fixture, _ in
            let url = "\(fixture.originURL)/object/1108?cc=max-age%3D600"
            _ = try await Self.poll(fixture, url, "the entry stored") { $0.hasPrefix("passsage;hit") }
            let requests = fixture.origin.stats.requests("/object/1108")
            let bypassed = try await Self.get(fixture, url, headers: ["X-Passsage-Policy: nocache"])
            #expect(Self.cacheStatus(bypassed).isEmpty, "\(bypassed)")
            #expect(fixture.origin.stats.requests("/object/1108") == requests + 1)
            let always = try await Self.get(fixture, url, headers: ["X-Passsage-Policy: AlwaysUpstream"])
            #expect(Self.cacheStatus(always).contains("fwd=bypass"), "\(always)")
            let unknown = try await Self.get(fixture, url, headers: ["X-Passsage-Policy: Sometimes"])
            #expect(Self.cacheStatus(unknown).hasPrefix("passsage;hit"), "an unknown value falls back to the rules: \(unknown)")
            let echoed = try await fixture.proxiedCurl(["-s", "-H", "X-Passsage-Policy: NoCache", "\(fixture.originURL)/headers"])
            #expect(!echoed.stdout.contains("x-passsage"), "\(echoed.stdout)")
        }
    }

    @Test("a rule's read timeout reaches the data plane: 504 on a slow origin, while another rule's longer one succeeds")
    func perRuleTimeouts() async throws {
        let rules = """
            rules:
              - match: {path_suffix: /1109}
                policy: Standard
                timeouts: {read: 1s}
              - match: {path_suffix: /1110}
                policy: Standard
                timeouts: {connect: 5s, read: 20s}
            """
        // The default read timeout is shorter than the long rule's wait: only the rule's 20 s lets
        // the 3 s origin through.
        try await Self.withPolicies(rules, arguments: ["--upstream-read-timeout", "2s"]) { fixture, _ in
            let started = ContinuousClock.now
            // The origin answers after 10 s: well past the rule's 1 s, whatever the machine's load.
            let short = try await Self.get(fixture, "\(fixture.originURL)/object/1109?delay=10000")
            #expect(CachingTests.status(short) == "504", "\(short)")
            #expect(ContinuousClock.now - started < .seconds(8), "the rule's 1 s")
            let long = try await Self.get(fixture, "\(fixture.originURL)/object/1110?delay=3000", output: fixture.directory + "/long")
            #expect(CachingTests.status(long) == "200", "\(long)")
            #expect(try await sha256Hex(ofFile: fixture.directory + "/long") == OriginContent.sha256(range: 0..<1110))
        }
    }

    @Test("SIGHUP reloads the policy file; an invalid one leaves the old rules in force and says why")
    func reload() async throws {
        let noCache = "rules:\n  - match: {path_suffix: /1111}\n    policy: NoCache\n"
        try await Self.withPolicies(noCache) { fixture, file in
            let url = "\(fixture.originURL)/object/1111?cc=max-age%3D600"
            _ = try await Self.get(fixture, url)
            _ = try await Self.get(fixture, url)
            #expect(fixture.origin.stats.requests("/object/1111") == 2, "NoCache at first")

            try "rules: []\n".write(toFile: file, atomically: true, encoding: .utf8)
            fixture.proxy.signal(SIGHUP)
            try await waitUntil(timeout: 10, "the reload") { fixture.proxy.output.contains("policies reloaded") }
            _ = try await Self.poll(fixture, url, "the new rules caching it") { $0.hasPrefix("passsage;hit") }

            try "rules:\n  - match: {path_suffix: /1111}\n    policy: Never\n".write(toFile: file, atomically: true, encoding: .utf8)
            fixture.proxy.signal(SIGHUP)
            try await waitUntil(timeout: 10, "the refused reload") { fixture.proxy.output.contains("old policies stay in force") }
            #expect(fixture.proxy.output.contains("line 3: unknown policy \"Never\""), "\(fixture.proxy.output.suffix(2000))")
            #expect(Self.cacheStatus(try await Self.get(fixture, url)).hasPrefix("passsage;hit"), "the old rules still apply")
        }
    }

    @Test("a bad policy file stops start-up with its line and what is wrong")
    func badFileAtStart() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/policies.yaml"
        try "default_policy: Standard\nrules:\n  - match: {hots: a.test}\n    policy: NoCache\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await run(PasssageProcess.executable, ["--policy-file", file, "--no-cache", "--port", "0",
                                                                "--health-port", "0", "--ca-dir", directory + "/ca"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("policy file \(file), line 3: unknown key \"hots\" in match"), "\(result.stderr)")
        let badDefault = try await run(PasssageProcess.executable, ["--default-policy", "Fast", "--no-cache"])
        #expect(badDefault.status == 2 && badDefault.stderr.contains("--default-policy"), "\(badDefault.stderr)")
    }

    @Test("bug 11: a miss answered with a 5xx is relayed once, never fetched a second time as a fallback")
    func bug11MissWith5xx() async throws {
        try await Self.withPolicies("rules: []\n") { fixture, _ in
            let answer = try await Self.get(fixture, "\(fixture.originURL)/object/1112?failFrom=1&failStatus=503")
            #expect(CachingTests.status(answer) == "503", "\(answer)")
            #expect(Self.cacheStatus(answer).contains("fwd=uri-miss") && !Self.cacheStatus(answer).contains("stored"), "\(answer)")
            #expect(fixture.origin.stats.requests("/object/1112") == 1)
        }
    }
}
