#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SwiftASN1
import X509

/// What a leaf certificate is issued for: a DNS name or an IP address.
public enum LeafSubject: Hashable, Sendable {
    case dnsName(String)
    case ipAddress([UInt8])

    /// Interprets a host as it appears in a CONNECT authority or SNI: IP literals (with or without
    /// IPv6 brackets) become IP subjects, everything else a lower-cased DNS name.
    public init(host: String) {
        var bare = Substring(host)
        if bare.hasPrefix("["), bare.hasSuffix("]") {
            bare = bare.dropFirst().dropLast()
        }
        if let v4 = LeafSubject.parseAddress(String(bare), family: AF_INET, size: 4) {
            self = .ipAddress(v4)
        } else if let v6 = LeafSubject.parseAddress(String(bare), family: AF_INET6, size: 16) {
            self = .ipAddress(v6)
        } else {
            self = .dnsName(bare.lowercased())
        }
    }

    var commonName: String {
        switch self {
        case .dnsName(let name): return name
        case .ipAddress(let bytes) where bytes.count == 4: return bytes.map(String.init).joined(separator: ".")
        case .ipAddress: return "ipv6-address"
        }
    }

    var generalName: GeneralName {
        switch self {
        case .dnsName(let name): return .dnsName(name)
        case .ipAddress(let bytes): return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
        }
    }

    private static func parseAddress(_ text: String, family: Int32, size: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: size)
        let ok = bytes.withUnsafeMutableBytes { inet_pton(family, text, $0.baseAddress) }
        return ok == 1 ? bytes : nil
    }
}
