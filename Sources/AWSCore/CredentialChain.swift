import AsyncHTTPClient

/// Picks where credentials come from, in the order the AWS SDKs use:
/// 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`);
/// 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`),
///    profile `AWS_PROFILE` or `default`;
/// 3. web identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` through STS (EKS IRSA);
/// 4. container credentials: `AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI` (ECS, EKS Pod Identity);
/// 5. EC2 instance metadata (IMDSv2), unless `AWS_EC2_METADATA_DISABLED=true`.
///
/// Sources 1 and 2 are decided from the environment at startup; 3–5 are used when configured,
/// and their credentials are refreshed before they expire.
public enum CredentialChain {
    public struct Resolved: Sendable {
        public let provider: any AWSCredentialProvider
        /// Which source was chosen, for the startup log.
        public let source: String
    }

    /// `now` (epoch seconds) decides when expiring credentials are refreshed; tests move it.
    public static func resolve(environment: [String: String], httpClient: HTTPClient,
                               timeouts: CredentialTimeouts = .init(),
                               now: @escaping @Sendable () -> Int64 = { Int64(epochSeconds()) }) throws -> Resolved {
        if let credentials = try EnvironmentCredentials.read(environment) {
            return Resolved(provider: StaticCredentialProvider(credentials), source: "environment")
        }
        if let credentials = try SharedCredentialsFile.read(environment: environment) {
            return Resolved(provider: StaticCredentialProvider(credentials.credentials),
                            source: "shared credentials file (profile \(credentials.profile))")
        }
        if let source = WebIdentityCredentialSource(environment: environment, httpClient: httpClient, timeouts: timeouts) {
            return Resolved(provider: RefreshingCredentialProvider(now: now) { try await source.fetch() }, source: "web identity (\(source.roleARN))")
        }
        if let source = try ContainerCredentialSource(environment: environment, httpClient: httpClient, timeouts: timeouts) {
            return Resolved(provider: RefreshingCredentialProvider(now: now) { try await source.fetch() }, source: "container credentials")
        }
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" {
            throw CredentialError(source: "chain", message: "no credentials in the environment, a credentials file, web identity or container settings, and instance metadata is disabled")
        }
        let source = InstanceMetadataCredentialSource(environment: environment, httpClient: httpClient, timeouts: timeouts)
        return Resolved(provider: RefreshingCredentialProvider(now: now) { try await source.fetch() }, source: "EC2 instance metadata")
    }
}

public struct CredentialTimeouts: Sendable {
    public var connect: Duration
    public var request: Duration

    public init(connect: Duration = .seconds(2), request: Duration = .seconds(10)) {
        self.connect = connect
        self.request = request
    }
}

enum EnvironmentCredentials {
    static func read(_ environment: [String: String]) throws -> AWSCredentials? {
        let key = environment["AWS_ACCESS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 }
        let secret = environment["AWS_SECRET_ACCESS_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        switch (key, secret) {
        case (nil, nil): return nil
        case (let key?, let secret?):
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
        default:
            throw CredentialError(source: "environment", message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        }
    }
}

/// The INI file the AWS CLI writes.
public enum SharedCredentialsFile {
    public static func read(environment: [String: String]) throws -> (credentials: AWSCredentials, profile: String)? {
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"]
            ?? environment["HOME"].map { "\($0)/.aws/credentials" }
        guard let path, let text = try? readTextFile(path) else {
            if let explicit = environment["AWS_SHARED_CREDENTIALS_FILE"] {
                throw CredentialError(source: "shared credentials file", message: "cannot read \(explicit)")
            }
            return nil
        }
        let profile = environment["AWS_PROFILE"] ?? "default"
        guard let section = parse(text)[profile] else {
            if environment["AWS_PROFILE"] != nil {
                throw CredentialError(source: "shared credentials file", message: "no profile [\(profile)] in \(path)")
            }
            return nil
        }
        guard let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
            throw CredentialError(source: "shared credentials file", message: "profile [\(profile)] in \(path) lacks aws_access_key_id or aws_secret_access_key")
        }
        return (AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"]), profile)
    }

    /// Sections to key/value maps; `#` and `;` start comments, keys are lower-cased.
    public static func parse(_ text: String) -> [String: [String: String]] {
        var result = [String: [String: String]]()
        var current: String? = nil
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = String(rawLine).trimmingXMLSpace()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = String(line.dropFirst().dropLast()).trimmingXMLSpace()
                if name.hasPrefix("profile ") { name = String(name.dropFirst("profile ".count)).trimmingXMLSpace() }
                current = name
                result[name, default: [:]] = result[name] ?? [:]
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals]).trimmingXMLSpace().lowercased()
            let value = String(line[line.index(after: equals)...]).trimmingXMLSpace()
            result[current]?[key] = value
        }
        return result
    }
}
