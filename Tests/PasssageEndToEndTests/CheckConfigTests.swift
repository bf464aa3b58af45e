import Foundation
import Testing
import TestSupport

/// `check-config` of both binaries: the options and environment `serve` takes, resolved and
/// printed; errors exit 2; nothing is written.
@Suite("check-config")
struct CheckConfigTests {
    static func passsage(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
        let base = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PASSSAGE_") }
        return try await run(PasssageProcess.executable, ["check-config"] + arguments, environment: base.merging(environment) { $1 })
    }

    static func xs3lerator(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
        let base = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("XS3_") }
        return try await run(builtExecutable("xs3lerator"), ["check-config"] + arguments,
                             environment: base.merging(environment) { $1 })
    }

    static func value(_ key: String, in output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix(key + ": ") }.map { String($0.dropFirst(key.count + 2)) }
    }

    @Test("passsage: flags, environment and the policy file's timeouts, reported; no CA or data directory written")
    func passsageReports() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policyFile = directory + "/policies.yaml"
        try """
            rules:
              - match: {host: files.example}
                policy: NoRefresh
                timeouts: {connect: 3s, read: 2m}
            """.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let result = try await Self.passsage(
            ["--ca-dir", directory + "/ca", "--data-dir", directory + "/data", "--policy-file", policyFile,
             "--upstream-connect-timeout", "4s", "--upstream-read-timeout", "0"],
            environment: ["PASSSAGE_CLIENT_IDLE_TIMEOUT": "300s", "PASSSAGE_SHUTDOWN_GRACE_PERIOD": "45s"])
        #expect(result.status == 0, "\(result.stderr)")
        let output = result.stdout
        #expect(Self.value("upstream-connect-timeout", in: output) == "4s")
        #expect(Self.value("upstream-read-timeout", in: output) == "0 (off)")
        #expect(Self.value("client-idle-timeout", in: output) == "300s")
        #expect(Self.value("shutdown-grace-period", in: output) == "45s")
        #expect(Self.value("client-header-timeout", in: output) == "30s", "a default")
        #expect(output.contains("rule 1 (line 2): NoRefresh, connect timeout 3s, read timeout 120s"), "\(output)")
        #expect(Self.value("ca", in: output)?.hasPrefix("none yet") == true)
        #expect(!FileManager.default.fileExists(atPath: directory + "/ca"), "no CA generated")
        #expect(!FileManager.default.fileExists(atPath: directory + "/data"), "no store opened")
    }

    @Test("passsage: a bad value, a bad policy file or a bad CA exits 2 naming it")
    func passsageRejects() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let badDuration = try await Self.passsage(["--no-cache"], environment: ["PASSSAGE_UPSTREAM_READ_TIMEOUT": "soon"])
        #expect(badDuration.status == 2 && badDuration.stderr.contains("PASSSAGE_UPSTREAM_READ_TIMEOUT"), "\(badDuration.stderr)")
        try "rules:\n  - match: {host: a}\n    policy: Sometimes\n".write(toFile: directory + "/p.yaml", atomically: true, encoding: .utf8)
        let badPolicy = try await Self.passsage(["--no-cache", "--policy-file", directory + "/p.yaml"])
        #expect(badPolicy.status == 2 && badPolicy.stderr.contains("line 3"), "\(badPolicy.stderr)")
        let split = try await Self.passsage(["--xs3lerator-url", "http://xs3:8090"])
        #expect(split.status == 2 && split.stderr.contains("--elasticsearch-url"), "\(split.stderr)")
        try "not a certificate\n".write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        let badCA = try await Self.passsage(["--no-cache", "--mitm-ca", directory + "/ca.pem"])
        #expect(badCA.status == 2 && badCA.stderr.contains("CA"), "\(badCA.stderr)")
    }

    @Test("xs3lerator: flags and environment reported, a bad value exits 2")
    func xs3leratorReports() async throws {
        let result = try await Self.xs3lerator(["--upstream-read-timeout", "10m", "--s3-bucket", "chunks"],
                                               environment: ["XS3_UPSTREAM_CONNECT_TIMEOUT": "7s", "XS3_AUTH_TOKEN": "t0ken",
                                                             "XS3_ELASTICSEARCH_URL": "http://es:9200"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Self.value("upstream-read-timeout", in: result.stdout) == "600s")
        #expect(Self.value("upstream-connect-timeout", in: result.stdout) == "7s")
        #expect(Self.value("auth", in: result.stdout) == "token")
        #expect(Self.value("chunks", in: result.stdout)?.hasPrefix("S3 bucket chunks") == true)
        let bad = try await Self.xs3lerator([], environment: ["XS3_CLIENT_HEAD_TIMEOUT": "0"])
        #expect(bad.status == 2 && bad.stderr.contains("--client-head-timeout"), "\(bad.stderr)")
    }

    @Test("Elasticsearch credentials in the URL become Basic authentication and are never printed; an API key instead; not both")
    func elasticsearchCredentials() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let url = "https://elastic:p%40ss-w0rd@search.example:9200/"
        let proxy = try await Self.passsage(["--ca-dir", directory + "/ca", "--data-dir", directory + "/data"],
                                            environment: ["PASSSAGE_ELASTICSEARCH_URL": url])
        #expect(proxy.status == 0, "\(proxy.stderr)")
        #expect(Self.value("metadata", in: proxy.stdout)
                == "Elasticsearch https://search.example:9200, index passsage_meta, Basic authentication as elastic", "\(proxy.stdout)")
        let dataPlane = try await Self.xs3lerator(["--data-dir", directory + "/store"],
                                                  environment: ["XS3_ELASTICSEARCH_URL": url])
        #expect(dataPlane.status == 0, "\(dataPlane.stderr)")
        #expect(Self.value("metadata", in: dataPlane.stdout)
                == "Elasticsearch https://search.example:9200, index passsage_meta, Basic authentication as elastic", "\(dataPlane.stdout)")
        for output in [proxy.stdout, proxy.stderr, dataPlane.stdout, dataPlane.stderr] {
            #expect(!output.contains("p%40ss") && !output.contains("p@ss"), "the password is printed: \(output)")
        }
        let apiKey = try await Self.xs3lerator(["--data-dir", directory + "/store"],
                                               environment: ["XS3_ELASTICSEARCH_URL": "https://search.example:9200",
                                                             "XS3_ELASTICSEARCH_API_KEY": "aWQ6a2V5"])
        #expect(Self.value("metadata", in: apiKey.stdout) == "Elasticsearch https://search.example:9200, index passsage_meta, an API key")
        #expect(!apiKey.stdout.contains("aWQ6a2V5"))
        let both = try await Self.passsage(["--ca-dir", directory + "/ca", "--data-dir", directory + "/data"],
                                           environment: ["PASSSAGE_ELASTICSEARCH_URL": url, "PASSSAGE_ELASTICSEARCH_API_KEY": "aWQ6a2V5"])
        #expect(both.status == 2 && both.stderr.contains("--elasticsearch-api-key"), "\(both.stderr)")
        #expect(!both.stderr.contains("p%40ss"))
        // Malformed URLs with credentials are refused without printing them.
        for bad in ["elastic:s3cret@search.example:9200", "https://elastic:s3/cret@search.example:9200"] {
            let proxyRefusal = try await Self.passsage(["--ca-dir", directory + "/ca", "--data-dir", directory + "/data"],
                                                       environment: ["PASSSAGE_ELASTICSEARCH_URL": bad])
            let dataPlaneRefusal = try await Self.xs3lerator(["--data-dir", directory + "/store"], environment: ["XS3_ELASTICSEARCH_URL": bad])
            for refusal in [proxyRefusal, dataPlaneRefusal] {
                #expect(refusal.status == 2 && refusal.stderr.contains("--elasticsearch-url"), "\(bad): \(refusal.stderr)")
                #expect(!(refusal.stdout + refusal.stderr).contains("s3cret") && !(refusal.stdout + refusal.stderr).contains("s3/cret"),
                        "\(bad): \(refusal.stderr)")
            }
        }
    }
}
