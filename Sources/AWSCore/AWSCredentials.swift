/// One set of AWS credentials. `expiration` (epoch seconds) is nil for long-lived keys.
public struct AWSCredentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public var expiration: Int64?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Int64? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    /// Never prints the secret or the token.
    public var description: String {
        "AWSCredentials(\(accessKeyID), token: \(sessionToken == nil ? "no" : "yes"), expires: \(expiration.map(String.init) ?? "never"))"
    }
}

/// Anything that can hand out credentials for the next request.
public protocol AWSCredentialProvider: Sendable {
    func credentials() async throws -> AWSCredentials
}

/// Fixed credentials (tests, or keys given on the command line).
public struct StaticCredentialProvider: AWSCredentialProvider {
    public let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() async throws -> AWSCredentials { value }
}

/// Why no credentials could be had, naming the source.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    public let source: String
    public let message: String

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source) credentials: \(message)" }
}

/// Wraps a source of expiring credentials: serves the cached set until it is within
/// `refreshWindow` of expiring, then fetches a new one. Concurrent callers share one fetch. If a
/// refresh fails while the old set is still valid, the old set is served and the refresh retried
/// on the next call.
public actor RefreshingCredentialProvider: AWSCredentialProvider {
    public typealias Fetch = @Sendable () async throws -> AWSCredentials
    private let fetch: Fetch
    private let refreshWindow: Int64
    private let now: @Sendable () -> Int64
    private var cached: AWSCredentials?
    private var inFlight: Task<AWSCredentials, any Error>?
    /// How many times the source has been asked; for tests and logs.
    public private(set) var fetchCount = 0

    public init(refreshWindowSeconds: Int64 = 300, now: @escaping @Sendable () -> Int64 = { Int64(epochSeconds()) },
                fetch: @escaping Fetch) {
        self.fetch = fetch
        self.refreshWindow = refreshWindowSeconds
        self.now = now
    }

    public func credentials() async throws -> AWSCredentials {
        let time = now()
        if let cached, !needsRefresh(cached, at: time) { return cached }
        let task: Task<AWSCredentials, any Error>
        if let inFlight {
            task = inFlight
        } else {
            fetchCount += 1
            task = Task { try await fetch() }
            inFlight = task
        }
        do {
            let fresh = try await task.value
            inFlight = nil
            cached = fresh
            return fresh
        } catch {
            inFlight = nil
            if let cached, let expiration = cached.expiration, expiration > time { return cached }
            throw error
        }
    }

    private func needsRefresh(_ credentials: AWSCredentials, at time: Int64) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return expiration - time <= refreshWindow
    }
}
