import AWSCore

/// The host, path and URL of one S3 request. Pure, so the signer tests can check that our paths
/// equal botocore's byte for byte.
public struct S3RequestTarget: Sendable, Hashable {
    /// The `Host` header value, which is also signed.
    public let host: String
    /// The encoded path, exactly as sent and signed.
    public let path: String
    /// Raw (unencoded) query parameters.
    public let query: [(String, String)]

    public init(configuration: S3Configuration, key: String?, query: [(String, String)] = []) {
        let encodedKey = key.map { SigV4Signer.uriEncode($0, keepSlash: true) }
        switch configuration.addressing {
        case .path:
            host = configuration.endpoint.authority
            path = "/\(configuration.bucket)" + (encodedKey.map { "/\($0)" } ?? "")
        case .virtualHosted:
            host = "\(configuration.bucket).\(configuration.endpoint.authority)"
            path = "/" + (encodedKey ?? "")
        }
        self.query = query
    }

    public func url(scheme: String) -> String {
        let queryString = SigV4Signer.canonicalQuery(query)
        return "\(scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?\(queryString)")
    }

    public static func == (a: S3RequestTarget, b: S3RequestTarget) -> Bool {
        a.host == b.host && a.path == b.path && a.query.elementsEqual(b.query, by: { $0 == $1 })
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(path)
        for (name, value) in query {
            hasher.combine(name)
            hasher.combine(value)
        }
    }
}
