import NIOCore
import NIOHTTP1
import NIOSSL
import OriginConnections

/// How an upstream failure is reported: clients get a status and a short, stable cause; the
/// underlying error text (socket calls, TLS library codes) goes to the log only.
public struct UpstreamFailure: Equatable, Sendable {
    public let status: HTTPResponseStatus
    /// What the client is told; never contains internal error text.
    public let message: String
    /// The underlying error, for the log.
    public let detail: String

    /// Maps an error from the upstream exchange to a status: a denied destination is 403, timeouts
    /// are 504, everything else that kept us from getting a response (refused, DNS, TLS) is 502.
    public static func classify(_ error: any Error) -> UpstreamFailure {
        let detail = String(describing: error)
        func failure(_ status: HTTPResponseStatus, _ message: String) -> UpstreamFailure {
            UpstreamFailure(status: status, message: message, detail: detail)
        }
        switch error {
        case OriginError.connectTimeout, ChannelError.connectTimeout:
            return failure(.gatewayTimeout, "upstream connect timed out")
        case OriginError.readTimeout:
            return failure(.gatewayTimeout, "upstream read timed out")
        case OriginError.connectionClosed:
            return failure(.badGateway, "upstream closed the connection")
        case OriginError.shutdown:
            return failure(.serviceUnavailable, "the proxy is shutting down")
        case OriginError.destinationDenied:
            return failure(.forbidden, "the proxy does not connect to this destination")
        case OriginError.nameResolution:
            return failure(.badGateway, "upstream host name could not be resolved")
        case OriginError.noConnectionAvailable:
            return failure(.gatewayTimeout, "no upstream connection came free in time")
        case OriginError.protocolViolation:
            return failure(.badGateway, "upstream sent a malformed response")
        default:
            break
        }
        if isCertificateFailure(error, detail: detail) {
            return failure(.badGateway, "upstream TLS certificate verification failed")
        }
        if error is NIOSSLError || error is BoringSSLError {
            return failure(.badGateway, "upstream TLS handshake failed")
        }
        if error is HTTPParserError {
            return failure(.badGateway, "upstream sent a malformed response")
        }
        if detail.contains("connectTimeout") || detail.contains("timed out") {
            return failure(.gatewayTimeout, "upstream timed out")
        }
        return failure(.badGateway, "upstream connection failed")
    }

    private static func isCertificateFailure(_ error: any Error, detail: String) -> Bool {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return true
        }
        return detail.contains("CERTIFICATE_VERIFY_FAILED") || detail.contains("certificate verify failed")
            || detail.contains("failedToValidateHostname")
    }
}
