import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why an upstream exchange failed, with the HTTP status the data plane answers with when the
/// response has not started yet: 504 for timeouts, 502 for everything else.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case connectFailed = "connect failed"
        case connectTimeout = "connect timeout"
        case readTimeout = "read timeout"
        case tls = "TLS failure"
        case tooManyRedirects = "too many redirects"
        /// A range answer that is not the bytes asked for (status, Content-Range, length).
        case badRangeResponse = "bad range response"
        /// The object changed between the first response and a later range.
        case objectChanged = "object changed during download"
        /// The body ended before its declared length, or the connection broke.
        case truncated = "truncated body"
        case other = "upstream error"
    }

    public var kind: Kind
    public var url: String
    public var message: String

    public init(_ kind: Kind, url: String, message: String) {
        self.kind = kind
        self.url = url
        self.message = message
    }

    public var status: HTTPResponseStatus {
        kind == .connectTimeout || kind == .readTimeout ? .gatewayTimeout : .badGateway
    }

    public var description: String { "\(kind.rawValue): \(url): \(message)" }

    /// Classifies an error thrown by async-http-client or NIO for `url`.
    public static func classify(_ error: any Error, url: String, connectTimeout: Duration, readTimeout: Duration?) -> UpstreamError {
        if let error = error as? UpstreamError { return error }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return UpstreamError(.connectTimeout, url: url, message: "no connection within \(connectTimeout)")
            case .readTimeout:
                return UpstreamError(.readTimeout, url: url, message: "no data for \(readTimeout.map { "\($0)" } ?? "too long")")
            case .remoteConnectionClosed:
                return UpstreamError(.truncated, url: url, message: "the connection closed before the response was complete")
            default:
                return UpstreamError(.other, url: url, message: "\(error)")
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return UpstreamError(.connectTimeout, url: url, message: "no connection within \(connectTimeout)")
        }
        if error is NIOConnectionError || error is IOError {
            return UpstreamError(.connectFailed, url: url, message: "\(error)")
        }
        if error is NIOSSLError || error is BoringSSLError {
            return UpstreamError(.tls, url: url, message: "\(error)")
        }
        return UpstreamError(.other, url: url, message: "\(error)")
    }
}
