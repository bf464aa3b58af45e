import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1

/// STS AssumeRoleWithWebIdentity with the token Kubernetes projects into the pod (IRSA). The
/// token file is re-read on every fetch because the kubelet rotates it.
struct WebIdentityCredentialSource: Sendable {
    let roleARN: String
    let tokenFile: String
    let sessionName: String
    let endpoint: String
    let httpClient: HTTPClient
    let timeouts: CredentialTimeouts

    init?(environment: [String: String], httpClient: HTTPClient, timeouts: CredentialTimeouts) {
        guard let role = environment["AWS_ROLE_ARN"], !role.isEmpty,
              let file = environment["AWS_WEB_IDENTITY_TOKEN_FILE"], !file.isEmpty else { return nil }
        self.roleARN = role
        self.tokenFile = file
        self.sessionName = environment["AWS_ROLE_SESSION_NAME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "passsage-\(Int64(epochSeconds()))"
        let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"]
        self.endpoint = environment["AWS_ENDPOINT_URL_STS"] ?? environment["AWS_ENDPOINT_URL"]
            ?? region.map { "https://sts.\($0).amazonaws.com" } ?? "https://sts.amazonaws.com"
        self.httpClient = httpClient
        self.timeouts = timeouts
    }

    func fetch() async throws -> AWSCredentials {
        let token: String
        do {
            token = try readTextFile(tokenFile).trimmingXMLSpace()
        } catch {
            throw CredentialError(source: "web identity", message: "cannot read token file \(tokenFile): \(error)")
        }
        let form = [("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
                    ("RoleSessionName", sessionName), ("WebIdentityToken", token)]
            .map { "\($0.0)=\(SigV4Signer.uriEncode($0.1, keepSlash: false))" }.joined(separator: "&")
        var request = HTTPClientRequest(url: endpoint.hasSuffix("/") ? endpoint : endpoint + "/")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")
        request.headers.add(name: "Accept", value: "application/xml")
        request.body = .bytes(ByteBuffer(string: form))
        let (status, body) = try await fetchText(request, source: "web identity", httpClient: httpClient, timeout: timeouts.request)
        guard let document = XMLElement.parse(body) else {
            throw CredentialError(source: "web identity", message: "STS answered \(status) with unreadable XML")
        }
        guard status == 200 else {
            let code = document.text(at: ["Error", "Code"]) ?? "HTTP \(status)"
            let message = document.text(at: ["Error", "Message"]) ?? body.prefix(200).description
            throw CredentialError(source: "web identity", message: "STS refused AssumeRoleWithWebIdentity: \(code): \(message)")
        }
        guard let credentials = document.child("AssumeRoleWithWebIdentityResult")?.child("Credentials"),
              let key = credentials.child("AccessKeyId")?.text, let secret = credentials.child("SecretAccessKey")?.text,
              let expiration = credentials.child("Expiration").flatMap({ AWSTimestamp.parseISO8601($0.text) }) else {
            throw CredentialError(source: "web identity", message: "STS answer lacks credentials or their expiry")
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret,
                              sessionToken: credentials.child("SessionToken")?.text, expiration: expiration)
    }
}

/// ECS task roles and EKS Pod Identity: a local HTTP endpoint that returns JSON credentials,
/// authorised with a token from a file (re-read each time) or the environment.
struct ContainerCredentialSource: Sendable {
    let url: String
    let tokenFile: String?
    let token: String?
    let httpClient: HTTPClient
    let timeouts: CredentialTimeouts

    init?(environment: [String: String], httpClient: HTTPClient, timeouts: CredentialTimeouts) throws {
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
            url = "http://169.254.170.2" + relative
        } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty {
            guard full.hasPrefix("http://") || full.hasPrefix("https://") else {
                throw CredentialError(source: "container", message: "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http(s) URL")
            }
            // As the AWS SDKs do: the token travels in clear over http, so only to the hosts
            // the container agents use.
            if full.hasPrefix("http://"), !Self.isAllowedPlainHTTPHost(full) {
                throw CredentialError(source: "container", message: "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must point at a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23, not \(full)")
            }
            url = full
        } else {
            return nil
        }
        tokenFile = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        self.httpClient = httpClient
        self.timeouts = timeouts
    }

    static func isAllowedPlainHTTPHost(_ url: String) -> Bool {
        let authority = url.dropFirst("http://".count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let host: Substring
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<close]
        } else {
            host = authority.prefix { $0 != ":" }
        }
        let lowered = host.lowercased()
        let octets = lowered.split(separator: ".", omittingEmptySubsequences: false)
        let isLoopbackV4 = octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
        if isLoopbackV4 || lowered == "localhost" || lowered == "::1" { return true }
        return ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].contains(lowered)
    }

    func fetch() async throws -> AWSCredentials {
        var request = HTTPClientRequest(url: url)
        if let tokenFile {
            do {
                request.headers.add(name: "Authorization", value: try readTextFile(tokenFile).trimmingXMLSpace())
            } catch {
                throw CredentialError(source: "container", message: "cannot read token file \(tokenFile): \(error)")
            }
        } else if let token {
            request.headers.add(name: "Authorization", value: token)
        }
        let (status, body) = try await fetchText(request, source: "container", httpClient: httpClient, timeout: timeouts.request)
        guard status == 200 else {
            throw CredentialError(source: "container", message: "\(url) answered \(status): \(body.prefix(200))")
        }
        return try JSONCredentials.decode(body, source: "container")
    }
}

/// EC2 instance metadata, version 2 only: a session token first, then the role's credentials.
struct InstanceMetadataCredentialSource: Sendable {
    let endpoint: String
    let httpClient: HTTPClient
    let timeouts: CredentialTimeouts

    init(environment: [String: String], httpClient: HTTPClient, timeouts: CredentialTimeouts) {
        var endpoint = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? "http://169.254.169.254"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.endpoint = endpoint
        self.httpClient = httpClient
        self.timeouts = timeouts
    }

    func fetch() async throws -> AWSCredentials {
        var tokenRequest = HTTPClientRequest(url: "\(endpoint)/latest/api/token")
        tokenRequest.method = .PUT
        tokenRequest.headers.add(name: "X-aws-ec2-metadata-token-ttl-seconds", value: "21600")
        let (tokenStatus, token) = try await fetchText(tokenRequest, source: "instance metadata", httpClient: httpClient, timeout: timeouts.request)
        guard tokenStatus == 200, !token.isEmpty else {
            throw CredentialError(source: "instance metadata", message: "IMDSv2 token request answered \(tokenStatus)")
        }
        var roleRequest = HTTPClientRequest(url: "\(endpoint)/latest/meta-data/iam/security-credentials/")
        roleRequest.headers.add(name: "X-aws-ec2-metadata-token", value: token)
        let (roleStatus, roles) = try await fetchText(roleRequest, source: "instance metadata", httpClient: httpClient, timeout: timeouts.request)
        guard roleStatus == 200, let role = roles.split(whereSeparator: { $0 == "\n" }).first.map(String.init), !role.isEmpty else {
            throw CredentialError(source: "instance metadata", message: "no IAM role attached to this instance (\(roleStatus))")
        }
        var credentialsRequest = HTTPClientRequest(url: "\(endpoint)/latest/meta-data/iam/security-credentials/\(SigV4Signer.uriEncode(role, keepSlash: false))")
        credentialsRequest.headers.add(name: "X-aws-ec2-metadata-token", value: token)
        let (status, body) = try await fetchText(credentialsRequest, source: "instance metadata", httpClient: httpClient, timeout: timeouts.request)
        guard status == 200 else {
            throw CredentialError(source: "instance metadata", message: "credentials for role \(role) answered \(status)")
        }
        return try JSONCredentials.decode(body, source: "instance metadata")
    }
}

/// The JSON shape shared by the container endpoint and IMDS.
enum JSONCredentials {
    private struct Body: Decodable {
        var Code: String?
        var Message: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    static func decode(_ text: String, source: String) throws -> AWSCredentials {
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(text.utf8)) else {
            throw CredentialError(source: source, message: "credentials are not valid JSON")
        }
        if let code = body.Code, code != "Success" {
            throw CredentialError(source: source, message: "\(code): \(body.Message ?? "")")
        }
        guard let key = body.AccessKeyId, let secret = body.SecretAccessKey else {
            throw CredentialError(source: source, message: "credentials lack AccessKeyId or SecretAccessKey")
        }
        var expiration: Int64? = nil
        if let text = body.Expiration {
            guard let parsed = AWSTimestamp.parseISO8601(text) else {
                throw CredentialError(source: source, message: "unreadable Expiration \(text)")
            }
            expiration = parsed
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: body.Token, expiration: expiration)
    }
}

/// A small request whose answer is text (credentials, tokens, errors); capped at 1 MiB.
func fetchText(_ request: HTTPClientRequest, source: String, httpClient: HTTPClient,
               timeout: Duration) async throws -> (Int, String) {
    do {
        let response = try await httpClient.execute(request, timeout: TimeAmount(timeout))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body))
    } catch let error as CredentialError {
        throw error
    } catch {
        throw CredentialError(source: source, message: "\(request.url): \(error)")
    }
}

func readTextFile(_ path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return String(decoding: data, as: UTF8.self)
}
