import StorageCore

/// Where and how to reach one S3 bucket.
public struct S3Configuration: Sendable {
    public enum Addressing: String, Sendable {
        /// `https://endpoint/bucket/key`: needs no DNS per bucket; the default for custom endpoints.
        case path
        /// `https://bucket.endpoint/key`: AWS's preferred style; the default for AWS itself.
        case virtualHosted
    }

    public var bucket: String
    public var region: String
    public var endpoint: S3Endpoint
    public var addressing: Addressing
    /// Objects larger than this are uploaded in parts.
    public var multipartThreshold: Int64
    /// Size of each part but the last (at least 5 MiB, as S3 requires).
    public var partSize: Int64
    /// Parts uploaded at once.
    public var partConcurrency: Int
    public var connectTimeout: Duration
    /// How long a connection may stay silent while a response is expected.
    public var readTimeout: Duration
    /// Upper bound for requests whose bodies are small (everything but GetObject and uploads).
    public var requestTimeout: Duration
    public var retry: RetryPolicy

    public static let minimumPartSize: Int64 = 5 * 1024 * 1024

    /// `endpoint` nil means AWS (`https://s3.<region>.amazonaws.com`, virtual-hosted); a custom
    /// endpoint (MinIO, LocalStack, moto) defaults to path-style.
    public init(bucket: String, region: String = "us-east-1", endpoint: String? = nil,
                addressing: Addressing? = nil, multipartThreshold: Int64 = 64 * 1024 * 1024,
                partSize: Int64 = 16 * 1024 * 1024, partConcurrency: Int = 4,
                connectTimeout: Duration = .seconds(5), readTimeout: Duration = .seconds(30),
                requestTimeout: Duration = .seconds(60), retry: RetryPolicy = RetryPolicy()) throws {
        guard S3Configuration.isValidBucketName(bucket) else {
            throw S3ConfigurationError("invalid bucket name \"\(bucket)\": 3–63 characters of a-z 0-9 . -")
        }
        guard !region.isEmpty else { throw S3ConfigurationError("the region must not be empty") }
        guard partSize >= S3Configuration.minimumPartSize else {
            throw S3ConfigurationError("the part size must be at least 5 MiB (S3's minimum)")
        }
        guard multipartThreshold >= partSize else {
            throw S3ConfigurationError("the multipart threshold must be at least the part size")
        }
        self.bucket = bucket
        self.region = region
        if let endpoint {
            self.endpoint = try S3Endpoint(parsing: endpoint)
        } else {
            self.endpoint = S3Endpoint(secure: true, host: "s3.\(region).amazonaws.com", port: nil)
        }
        let chosen = addressing ?? (endpoint == nil ? .virtualHosted : .path)
        if chosen == .virtualHosted && bucket.contains(".") && self.endpoint.secure {
            throw S3ConfigurationError("bucket \"\(bucket)\" contains dots, which break TLS with virtual-hosted addressing; use path-style")
        }
        self.addressing = chosen
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.partConcurrency = max(1, partConcurrency)
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.requestTimeout = requestTimeout
        self.retry = retry
    }

    static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        return bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
            && bytes.first != 46 && bytes.first != 45 && bytes.last != 46 && bytes.last != 45
    }
}

public struct S3ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `http(s)://host[:port]` with no path.
public struct S3Endpoint: Sendable, Hashable {
    public var secure: Bool
    public var host: String
    public var port: Int?

    public init(secure: Bool, host: String, port: Int?) {
        self.secure = secure
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws {
        var rest = Substring(text)
        if rest.hasPrefix("https://") { secure = true; rest = rest.dropFirst(8) }
        else if rest.hasPrefix("http://") { secure = false; rest = rest.dropFirst(7) }
        else { throw S3ConfigurationError("endpoint \"\(text)\" must start with http:// or https://") }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("?"), !rest.contains("@") else {
            throw S3ConfigurationError("endpoint \"\(text)\" must be scheme://host[:port] with no path")
        }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {  // IPv6 literal
            host = String(rest[...close])
            rest = rest[rest.index(after: close)...]
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            rest = rest[colon...]
        } else {
            host = String(rest)
            rest = ""
        }
        if rest.isEmpty {
            port = nil
        } else {
            guard rest.first == ":", let value = Int(rest.dropFirst()), (1...65535).contains(value) else {
                throw S3ConfigurationError("endpoint \"\(text)\" has an invalid port")
            }
            port = value
        }
        guard !host.isEmpty else { throw S3ConfigurationError("endpoint \"\(text)\" has no host") }
    }

    /// `host[:port]`, the port only when it is not the scheme's default.
    public var authority: String {
        guard let port, port != (secure ? 443 : 80) else { return host }
        return "\(host):\(port)"
    }

    public var scheme: String { secure ? "https" : "http" }
}
