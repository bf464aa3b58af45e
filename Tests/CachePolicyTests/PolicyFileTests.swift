import CachePolicy
import HTTPRules
import PolicyFile
import Testing
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite("Policy file")
struct PolicyFileTests {
    static let example = """
        default_policy: Standard          # one of the five
        include_defaults: true
        rules:
          - match:
              host: "*.pythonhosted.org"
              path_prefix: /packages/
              method: GET
            policy: NoRefresh
            timeouts: {connect: 5s, read: 30s}
            stale_while_revalidate: 60s
            strip_query: [token]
          - match: {header: {User-Agent: "^pip/"}, path_regex: "/simple/"}
            policy: StaleIfError
          - match: {content_type: [text/html, "image/*"]}
            policy: NoCache
          - match: {url_regex: "\\\\.csv$", method: [GET, HEAD]}
            policy: AlwaysUpstream
            timeouts: {read: 0}
          - match: {path_regex: "^/v2/.+/blobs/"}
            policy: NoRefresh
            redirect_fallback: true
        """

    @Test("the documented shape parses into rules, in order, with their timeouts, window and key parameters")
    func example() throws {
        let rules = try PolicyFile.parse(Self.example)
        #expect(rules.defaultPolicy == .standard && rules.includeDefaults)
        #expect(rules.rules.count == 5)
        let first = rules.rules[0]
        #expect(first.outcome.policy == .noRefresh)
        #expect(first.outcome.timeouts == UpstreamTimeouts(connect: .seconds(5), read: .seconds(30)))
        #expect(first.outcome.staleWhileRevalidate == 60)
        #expect(first.outcome.stripQuery == ["token"])
        #expect(first.outcome.origin == "rule 1 (line 4)")
        #expect(first.match.host == .subdomains("pythonhosted.org") && first.match.methods == ["GET"])
        #expect(rules.rules[1].match.headers.map(\.name) == ["User-Agent"])
        #expect(rules.rules[2].match.contentTypes == ["text/html", "image/*"])
        #expect(rules.rules[3].outcome.timeouts?.read == .zero && rules.rules[3].match.methods == ["GET", "HEAD"])
        #expect(rules.rules[4].outcome.redirectFallback && !first.outcome.redirectFallback)

        func resolve(_ url: String, _ headers: [(String, String)] = []) -> PolicyResolution {
            var request = PolicyRequest(method: "GET", url: url)!
            request.headers = .init(headers)
            return rules.resolve(request)
        }
        #expect(resolve("https://files.pythonhosted.org/packages/x.whl").resolved.policy == .noRefresh)
        #expect(resolve("https://pypi.org/simple/x/", [("User-Agent", "pip/24")]).resolved.policy == .staleIfError)
        #expect(resolve("https://a.test/page").resolved(contentType: "text/html").policy == .noCache)
        #expect(resolve("https://a.test/t.csv").resolved.policy == .alwaysUpstream)
        #expect(try PolicyFile.parse("").rules.isEmpty, "an empty file is the defaults")
        #expect(try PolicyFile.parse("default_policy: nocache\ninclude_defaults: false\n").defaultPolicy == .noCache)
    }

    @Test("errors name the line and what is wrong", arguments: [
        ("default_policy: Sometimes\n", 1, "unknown policy \"Sometimes\""),
        ("rules:\n  - match: {host: a.test}\n    policy: Fast\n", 3, "unknown policy \"Fast\""),
        ("rules:\n  - match: {host: a.test}\n", 2, "rule 1 has no policy"),
        ("rules:\n  - policy: NoCache\n", 2, "rule 1 has no match"),
        ("rules:\n  - match: {}\n    policy: NoCache\n", 2, "match needs at least one of"),
        ("rules:\n  - match: {hots: a.test}\n    policy: NoCache\n", 2, "unknown key \"hots\" in match"),
        ("defaults: true\n", 1, "unknown key \"defaults\" in the file"),
        ("rules:\n  - match: {host: a.test}\n    policy: NoCache\n    timeouts: {read: soon}\n", 4, "read: \"soon\" is not a duration"),
        ("rules:\n  - match: {host: a.test}\n    policy: NoCache\n    timeouts: {connect: 0}\n", 4, "timeouts.connect must be above zero"),
        ("rules:\n\n  - match: {path_regex: \"(unclosed\"}\n    policy: NoCache\n", 3, "invalid regular expression"),
        ("rules:\n  - match: {host: \"bad host\"}\n    policy: NoCache\n", 2, "invalid host pattern"),
        ("rules:\n  - match: {content_type: html}\n    policy: NoCache\n", 2, "is not a media type"),
        ("rules:\n  - match: {content_type: text/html}\n    policy: NoCache\n    strip_query: [a]\n", 2, "can only choose a policy"),
        ("rules:\n  - match: {method: \"G T\"}\n    policy: NoCache\n", 2, "is not an HTTP method"),
        ("include_defaults: maybe\n", 1, "include_defaults must be true or false"),
        ("rules: {a: 1}\n", 1, "rules must be a list"),
        ("rules:\n  - match: {host: a.test\n    policy: NoCache\n", 3, "not valid YAML"),
        ("rules:\n  - match: {host: a.test}\n    policy: NoCache\n    policy: NoRefresh\n", 3, "duplicate key 'policy'"),
    ])
    func errors(text: String, line: Int, message: String) {
        do {
            _ = try PolicyFile.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix("policy file, line \(line): "), "\(error)")
        }
    }

    @Test("loading names the file; a missing file says so")
    func load() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("policies.yaml").path
        try "default_policy: NoRefresh\nrules: []\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try PolicyFile.load(path: path).defaultPolicy == .noRefresh)
        try "rules:\n  - match: {host: a}\n    policy: Nope\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: PolicyFileError(file: path, line: 3, message: "unknown policy \"Nope\" (expected one of NoRefresh, Standard, StaleIfError, AlwaysUpstream, NoCache)")) {
            try PolicyFile.load(path: path)
        }
        do {
            _ = try PolicyFile.load(path: path + ".missing")
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.description.hasPrefix("policy file \(path).missing: cannot read the file"))
        }
    }

    @Test("bug 4: the file's default_policy holds for every unmatched request, request after request")
    func bug4FileDefaultHolds() throws {
        let resolver = ReloadablePolicyResolver(try PolicyFile.parse("default_policy: StaleIfError\ninclude_defaults: false\nrules: []\n"))
        for _ in 0..<3 {
            let request = PolicyRequest(method: "GET", url: "https://example.org/anything")!
            #expect(resolver.resolve(request).resolved.policy == .staleIfError)
        }
    }
}
