import NIOCore
import NIOHTTP1
import NIOSSL
import OriginConnections

/// How an upstream failure is reported to the client.
public struct UpstreamFailure: Equatable, Sendable {
    public let status: HTTPResponseStatus
    public let message: String

    /// Maps an error from the upstream exchange to a status: timeouts are 504, everything else
    /// that kept us from getting a response (refused, DNS, TLS verification) is 502.
    public static func classify(_ error: any Error) -> UpstreamFailure {
        let detail = String(describing: error)
        switch error {
        case OriginError.connectTimeout, ChannelError.connectTimeout:
            return UpstreamFailure(status: .gatewayTimeout, message: "upstream connect timed out")
        case OriginError.readTimeout:
            return UpstreamFailure(status: .gatewayTimeout, message: "upstream read timed out")
        case OriginError.connectionClosed:
            return UpstreamFailure(status: .badGateway, message: "upstream closed the connection")
        case OriginError.shutdown:
            return UpstreamFailure(status: .serviceUnavailable, message: "the proxy is shutting down")
        default:
            break
        }
        if isCertificateFailure(error, detail: detail) {
            return UpstreamFailure(
                status: .badGateway,
                message: "upstream TLS certificate verification failed: \(detail)"
            )
        }
        if error is NIOSSLError {
            return UpstreamFailure(status: .badGateway, message: "upstream TLS handshake failed: \(detail)")
        }
        if detail.contains("connectTimeout") || detail.contains("timed out") {
            return UpstreamFailure(status: .gatewayTimeout, message: "upstream timed out: \(detail)")
        }
        return UpstreamFailure(status: .badGateway, message: "upstream connection failed: \(detail)")
    }

    private static func isCertificateFailure(_ error: any Error, detail: String) -> Bool {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return true
        }
        return detail.contains("CERTIFICATE_VERIFY_FAILED") || detail.contains("certificate verify failed")
            || detail.contains("failedToValidateHostname")
    }
}
