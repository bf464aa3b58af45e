import AWSCore
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import ObjectStore
import StorageCore
import TestSupport
import Testing

/// The credential sources that fetch over HTTP: web identity against moto's STS (then used on
/// moto's S3, signature checking on), and the container and IMDSv2 endpoints against small local
/// servers that answer as AWS documents them. A movable clock stands in for expiry.
@Suite(.serialized) struct CredentialChainTests {
    @Test func webIdentityAssumesTheRoleAndRefreshesBeforeExpiry() async throws {
        let moto = try await MotoServer.start()
        let directory = try makeTemporaryDirectory()
        let tokenFile = directory + "/token"
        try "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6cGFzc3NhZ2UifQ.c2lnbmF0dXJl\n"
            .write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let clock = TestClock()
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let environment = isolatedEnvironment(directory, [
            "AWS_ROLE_ARN": moto.roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile,
            "AWS_ENDPOINT_URL_STS": moto.endpoint, "AWS_ROLE_SESSION_NAME": "ci-passsage",
        ])
        let resolved = try CredentialChain.resolve(environment: environment, httpClient: httpClient, now: clock.read)
        let store = try moto.makeStore(credentials: resolved.provider)
        try await withTeardown({
            #expect(resolved.source == "web identity (\(moto.roleARN))")
            let provider = try #require(resolved.provider as? RefreshingCredentialProvider)

            // moto checks signatures on AssumeRoleWithWebIdentity, which real STS does not sign.
            try await moto.allowUnsignedRequests(1)
            let first = try await provider.credentials()
            #expect(first.sessionToken != nil)
            let expiration = try #require(first.expiration)
            #expect(expiration > clock.read())
            try await store.put("irsa/one", payload: .buffers([ByteBuffer(string: "assumed")]), length: 7)
            #expect(try await text(store.get("irsa/one")) == "assumed")
            #expect(try await provider.credentials() == first)
            #expect(await provider.fetchCount == 1)

            // Four minutes before expiry is inside the five-minute refresh window.
            clock.set(expiration - 240)
            try await moto.allowUnsignedRequests(1)
            let second = try await provider.credentials()
            #expect(await provider.fetchCount == 2)
            #expect(second.accessKeyID != first.accessKeyID)
            try await store.put("irsa/two", payload: .buffers([ByteBuffer(string: "refreshed")]), length: 9)
            #expect(try await text(store.get("irsa/two")) == "refreshed")

            // Signature checking is on: the same key with a wrong secret is refused.
            var forged = second
            forged.secretAccessKey = "not-the-secret"
            let forger = try moto.makeStore(retry: .none, credentials: StaticCredentialProvider(forged))
            let refused = await #expect(throws: ObjectStoreError.self) { _ = try await forger.head("irsa/two") }
            try await forger.shutdown()
            #expect(refused?.kind == .accessDenied, "\(String(describing: refused))")
        }) {
            try? await store.shutdown()
            try? await httpClient.shutdown()
            await moto.stop()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func webIdentityWithoutItsTokenFileSaysWhich() async throws {
        let directory = try makeTemporaryDirectory()
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let environment = isolatedEnvironment(directory, [
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/x", "AWS_WEB_IDENTITY_TOKEN_FILE": directory + "/missing",
            "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
        ])
        let provider = try CredentialChain.resolve(environment: environment, httpClient: httpClient).provider
        await #expect { _ = try await provider.credentials() } throws: { error in
            "\(error)".contains("token file \(directory)/missing")
        }
        try await httpClient.shutdown()
    }

    @Test func containerEndpointWithRotatingTokenFile() async throws {
        let directory = try makeTemporaryDirectory()
        let tokenFile = directory + "/eks-pod-identity-token"
        try "token-one".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let clock = TestClock()
        let seen = NIOLockedValueBox([String]())
        let endpoint = try await TestHTTPServer.start { request in
            let token = request.headers.first(name: "Authorization") ?? ""
            seen.withLockedValue { $0.append("\(request.method.rawValue) \(request.path) \(token)") }
            guard token.hasPrefix("token-") else {
                return .text(.unauthorized, #"{"Code":"AccessDenied","Message":"bad token"}"#, contentType: "application/json")
            }
            let serial = token.dropFirst("token-".count)
            return .text(.ok, credentialJSON(key: "ASIACONTAINER\(serial.uppercased())", expiresAt: clock.read() + 3600),
                         contentType: "application/json")
        }
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let environment = isolatedEnvironment(directory, [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url + "/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile,
        ])
        try await withTeardown({
            let resolved = try CredentialChain.resolve(environment: environment, httpClient: httpClient, now: clock.read)
            #expect(resolved.source == "container credentials")
            let first = try await resolved.provider.credentials()
            #expect(first.accessKeyID == "ASIACONTAINERONE")
            #expect(first.sessionToken == "session-ASIACONTAINERONE")
            #expect(first.expiration == clock.read() + 3600)

            // The agent rotates the token file; the refresh reads the new one.
            try "token-two".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            clock.advance(3600 - 60)
            let second = try await resolved.provider.credentials()
            #expect(second.accessKeyID == "ASIACONTAINERTWO")
            #expect(seen.withLockedValue { $0 } == ["GET /v1/credentials token-one", "GET /v1/credentials token-two"])

            // A refused refresh while the old set is still valid keeps serving the old set.
            try "wrong".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            clock.advance(3600 - 60)
            #expect(try await resolved.provider.credentials() == second)
            clock.advance(120)
            await #expect { _ = try await resolved.provider.credentials() } throws: { error in
                "\(error)".contains("answered 401") && "\(error)".contains("AccessDenied")
            }
        }) {
            try? await httpClient.shutdown()
            await endpoint.stop()
        }

        #expect(throws: CredentialError.self) {
            try CredentialChain.resolve(environment: isolatedEnvironment(directory, [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://credentials.example.com/v1/credentials",
            ]), httpClient: httpClient)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func instanceMetadataVersion2() async throws {
        let directory = try makeTemporaryDirectory()
        let clock = TestClock()
        let tokens = NIOLockedValueBox(0)
        let log = NIOLockedValueBox([String]())
        let imds = try await TestHTTPServer.start { request in
            log.withLockedValue { $0.append("\(request.method.rawValue) \(request.path)") }
            let issued = "imds-token-\(tokens.withLockedValue { $0 })"
            switch (request.method, request.path) {
            case (.PUT, "/latest/api/token"):
                guard let ttl = request.headers.first(name: "X-aws-ec2-metadata-token-ttl-seconds"), Int(ttl) != nil else {
                    return .text(.badRequest, "")
                }
                let token = tokens.withLockedValue { $0 += 1; return "imds-token-\($0)" }
                return .text(.ok, token)
            case (.GET, _) where request.headers.first(name: "X-aws-ec2-metadata-token") != issued:
                return .text(.unauthorized, "")
            case (.GET, "/latest/meta-data/iam/security-credentials/"):
                return .text(.ok, "passsage-node-role")
            case (.GET, "/latest/meta-data/iam/security-credentials/passsage-node-role"):
                return .text(.ok, credentialJSON(key: "ASIAINSTANCE\(tokens.withLockedValue { $0 })", expiresAt: clock.read() + 21600))
            default:
                return .text(.notFound, "")
            }
        }
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        try await withTeardown({
            let environment = isolatedEnvironment(directory, ["AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url + "/"],
                                                  allowInstanceMetadata: true)
            let resolved = try CredentialChain.resolve(environment: environment, httpClient: httpClient, now: clock.read)
            #expect(resolved.source == "EC2 instance metadata")
            let first = try await resolved.provider.credentials()
            #expect(first.accessKeyID == "ASIAINSTANCE1")
            #expect(first.sessionToken == "session-ASIAINSTANCE1")
            #expect(try await resolved.provider.credentials() == first)
            clock.advance(21600 - 10)
            #expect(try await resolved.provider.credentials().accessKeyID == "ASIAINSTANCE2")
            let round = ["PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                         "GET /latest/meta-data/iam/security-credentials/passsage-node-role"]
            #expect(log.withLockedValue { $0 } == round + round)
        }) {
            try? await httpClient.shutdown()
            await imds.stop()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Epoch seconds that tests move by hand.
final class TestClock: Sendable {
    private let value = NIOLockedValueBox(Int64(Date().timeIntervalSince1970))
    var read: @Sendable () -> Int64 { { [value] in value.withLockedValue { $0 } } }
    func set(_ seconds: Int64) { value.withLockedValue { $0 = seconds } }
    func advance(_ seconds: Int64) { value.withLockedValue { $0 += seconds } }
}

/// An environment with nothing from this machine's AWS set-up in it: no keys, a HOME without
/// `.aws`, and instance metadata off unless asked for.
func isolatedEnvironment(_ home: String, _ values: [String: String], allowInstanceMetadata: Bool = false) -> [String: String] {
    var environment = values
    environment["HOME"] = home
    if !allowInstanceMetadata { environment["AWS_EC2_METADATA_DISABLED"] = "true" }
    return environment
}

/// The JSON the container endpoint and IMDS answer with.
func credentialJSON(key: String, expiresAt: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    let expiration = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(expiresAt)))
    return """
        {"Code":"Success","LastUpdated":"2026-11-21T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"\(key)",
         "SecretAccessKey":"secret-\(key)","Token":"session-\(key)","Expiration":"\(expiration)"}
        """
}
