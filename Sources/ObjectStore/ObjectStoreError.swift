/// A failure from an object store, typed so callers can decide what to do, with the backend's own
/// code, message and request id kept for logs.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case notFound
        case accessDenied
        /// The backend asked us to slow down (S3 `SlowDown`, 429). Retryable.
        case throttled
        /// A 5xx, a timeout or a broken connection. Retryable.
        case transient
        /// The range asked for does not overlap the object (416).
        case invalidRange
        /// Bad input or an unexpected answer. Not retryable.
        case other
    }

    public var kind: Kind
    /// The operation that failed, e.g. `GetObject`.
    public var operation: String
    public var key: String?
    /// The backend's error code (`NoSuchKey`, `SlowDown`, `ENOENT`, ...).
    public var code: String
    public var message: String
    public var requestID: String?
    public var httpStatus: Int?

    public init(_ kind: Kind, operation: String, key: String? = nil, code: String, message: String,
                requestID: String? = nil, httpStatus: Int? = nil) {
        self.kind = kind
        self.operation = operation
        self.key = key
        self.code = code
        self.message = message
        self.requestID = requestID
        self.httpStatus = httpStatus
    }

    public var isRetryable: Bool { kind == .throttled || kind == .transient }

    public var description: String {
        var text = "\(operation)"
        if let key { text += " \(key)" }
        text += " failed: \(kind.rawValue) (\(code)"
        if let httpStatus { text += ", HTTP \(httpStatus)" }
        text += "): \(message)"
        if let requestID { text += " [request id \(requestID)]" }
        return text
    }
}
