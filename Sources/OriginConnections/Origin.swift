import NIOCore
import NIOSSL

/// Where upstream requests go. Connections are pooled per origin, so two requests share a
/// connection only when scheme, host and port all match.
public struct Origin: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP literal, without IPv6 brackets.
    public let host: String
    public let port: Int
    public let usesTLS: Bool

    public init(host: String, port: Int, usesTLS: Bool) {
        self.host = host
        self.port = port
        self.usesTLS = usesTLS
    }

    /// An IP literal never goes into SNI (RFC 6066 §3); the certificate is checked against the address.
    var serverNameIndication: String? {
        let isIPv4 = host.utf8.allSatisfy { $0 == UInt8(ascii: ".") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }
        return isIPv4 || host.contains(":") ? nil : host
    }

    public var description: String {
        "\(usesTLS ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}

/// How the client connects and how long it waits.
public struct OriginClientConfiguration: Sendable {
    /// Trust and verification for `https` origins.
    public var tls: TLSConfiguration = .makeClientConfiguration()
    /// TCP connect plus, for `https`, the TLS handshake.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// Longest silence while waiting for response bytes, counted from the end of the request; nil
    /// means no limit. Time spent paused because the client reads slowly does not count.
    public var readTimeout: TimeAmount? = .seconds(60)
    /// Open connections per origin; further requests wait for one to come free.
    public var connectionsPerOrigin: Int = 512
    /// A pooled connection unused this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Resolves origins and refuses denied destinations before connecting.
    public var destinations = DestinationGuard(policy: .allowAll)

    public init() {}
}

/// Failures the client detects itself; socket and TLS errors come through as NIO's own errors.
public enum OriginError: Error, Equatable, CustomStringConvertible {
    /// TCP connect or TLS handshake took longer than the connect timeout.
    case connectTimeout
    /// No response bytes for longer than the read timeout.
    case readTimeout
    /// The origin closed the connection before the response was complete.
    case connectionClosed
    /// The client is shutting down.
    case shutdown
    /// The destination policy denies `address`, one of the addresses `host` resolves to.
    case destinationDenied(host: String, address: String)
    /// `host` has no addresses.
    case nameResolution(host: String, message: String)
    /// Every allowed connection to the origin stayed busy for the connect timeout.
    case noConnectionAvailable
    /// The origin answered with something HTTP/1.1 does not allow here (an unrequested upgrade).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .connectTimeout: return "connect timed out"
        case .readTimeout: return "read timed out"
        case .connectionClosed: return "the origin closed the connection before the response was complete"
        case .shutdown: return "the upstream client is shutting down"
        case .destinationDenied(let host, let address): return "destination \(host) (\(address)) is denied"
        case .nameResolution(let host, let message): return "cannot resolve \(host): \(message)"
        case .noConnectionAvailable: return "no connection to the origin came free within the connect timeout"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        }
    }
}
