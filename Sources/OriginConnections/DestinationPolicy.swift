#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// An IPv4 or IPv6 network, `address/prefix`.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6, host bits cleared.
    public let bytes: [UInt8]
    public let prefixLength: Int

    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
    public init(parsing text: some StringProtocol) throws(DestinationPolicyError) {
        let text = String(text).trimmingSpaces()
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = IPAddressBytes.parse(String(parts[0])) else {
            throw .invalidNetwork(text)
        }
        let maximum = bytes.count * 8
        var prefix = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maximum).contains(value), parts[1].allSatisfy(\.isASCII) else {
                throw .invalidNetwork(text)
            }
            prefix = value
        }
        self.bytes = IPAddressBytes.masked(bytes, prefix: prefix)
        self.prefixLength = prefix
    }

    public init(bytes: [UInt8], prefixLength: Int) {
        self.bytes = IPAddressBytes.masked(bytes, prefix: prefixLength)
        self.prefixLength = prefixLength
    }

    public func contains(_ address: [UInt8]) -> Bool {
        address.count == bytes.count && IPAddressBytes.masked(address, prefix: prefixLength) == bytes
    }

    public var description: String { "\(IPAddressBytes.format(bytes))/\(prefixLength)" }
}

public enum DestinationPolicyError: Error, Equatable, CustomStringConvertible {
    case invalidNetwork(String)

    public var description: String {
        switch self {
        case .invalidNetwork(let text): return "'\(text.prefix(100))' is not an IP network such as 10.0.0.0/8 or ::1/128"
        }
    }
}

/// Which upstream addresses the proxy may connect to. Checked on the addresses a connection
/// actually uses, after DNS, so a name that resolves to a denied address is denied too.
public struct DestinationPolicy: Sendable, Equatable {
    /// Loopback and link-local on both families (link-local holds the metadata endpoint of AWS,
    /// GCP, Azure and others, 169.254.169.254), plus the metadata endpoints outside those: AWS's
    /// IPv6 one and Alibaba Cloud's.
    public static let defaultDeniedNetworks = [
        "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
    ]

    public var deniedNetworks: [IPNetwork]
    /// The proxy's own listeners (address bytes and port): reaching them would loop or expose the
    /// health endpoint. Filled in once the listeners are bound.
    public var ownEndpoints: [Endpoint]

    /// Addresses (a network, so a wildcard listener can cover all of loopback) and a port.
    public struct Endpoint: Hashable, Sendable {
        public let network: IPNetwork
        public let port: Int

        public init(network: IPNetwork, port: Int) {
            self.network = network
            self.port = port
        }

        public init(address: [UInt8], port: Int) {
            self.init(network: IPNetwork(bytes: IPAddressBytes.effective(address), prefixLength: address.count * 8),
                      port: port)
        }
    }

    /// Nothing is denied.
    public static let allowAll = DestinationPolicy(deniedNetworks: [], ownEndpoints: [])

    public init(deniedNetworks: [IPNetwork], ownEndpoints: [Endpoint] = []) {
        self.deniedNetworks = deniedNetworks
        self.ownEndpoints = ownEndpoints
    }

    /// Parses a comma-separated list; empty text allows everything.
    public init(parsing text: String) throws(DestinationPolicyError) {
        var networks: [IPNetwork] = []
        for item in text.split(separator: ",") where !item.trimmingSpaces().isEmpty {
            networks.append(try IPNetwork(parsing: item))
        }
        self.init(deniedNetworks: networks)
    }

    public static var defaultPolicy: DestinationPolicy {
        DestinationPolicy(deniedNetworks: defaultDeniedNetworks.map { try! IPNetwork(parsing: $0) })
    }

    /// Whether any check applies at all (an explicit empty list turns the policy off).
    public var isEnabled: Bool { !deniedNetworks.isEmpty || !ownEndpoints.isEmpty }

    /// Whether a connection to `address` must not be made.
    public func denies(_ address: SocketAddress) -> Bool {
        guard let bytes = IPAddressBytes.of(address) else { return false }
        let effective = IPAddressBytes.effective(bytes)
        // Both forms: `::ffff:127.0.0.1` is denied by 127.0.0.0/8, and a 6to4 address by 2002::/16.
        if deniedNetworks.contains(where: { $0.contains(effective) || $0.contains(bytes) }) { return true }
        if let port = address.port {
            return ownEndpoints.contains { $0.port == port && $0.network.contains(effective) }
        }
        return false
    }

    /// The first denied address among `addresses`, if any.
    public func firstDenied(in addresses: [SocketAddress]) -> SocketAddress? {
        addresses.first(where: denies)
    }
}

/// Raw address bytes and the rules for what an address really is.
public enum IPAddressBytes {
    public static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if text.contains(":") {
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        guard inet_pton(AF_INET, text, &v4) == 1 else { return nil }
        return withUnsafeBytes(of: &v4) { Array($0) }
    }

    public static func of(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }

    /// What a connection to `bytes` reaches: an IPv4-mapped IPv6 address is its IPv4 address, and
    /// the unspecified addresses (0.0.0.0, ::) reach this host's loopback.
    public static func effective(_ bytes: [UInt8]) -> [UInt8] {
        if bytes.count == 16 {
            if let embedded = embeddedIPv4(bytes) { return effective(embedded) }
            if bytes.allSatisfy({ $0 == 0 }) { return [UInt8](repeating: 0, count: 15) + [1] }
            return bytes
        }
        if bytes == [0, 0, 0, 0] { return [127, 0, 0, 1] }
        return bytes
    }

    /// The IPv4 address inside the IPv6 forms that carry one to an IPv4 host: mapped
    /// (`::ffff:a.b.c.d`), SIIT-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, but
    /// not `::` or `::1`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
    static func embeddedIPv4(_ bytes: [UInt8]) -> [UInt8]? {
        let last4 = Array(bytes[12..<16])
        let zeros = { (range: Range<Int>) in bytes[range].allSatisfy { $0 == 0 } }
        if zeros(0..<10), bytes[10] == 0xff, bytes[11] == 0xff { return last4 }
        if zeros(0..<8), bytes[8] == 0xff, bytes[9] == 0xff, zeros(10..<12) { return last4 }
        if zeros(0..<12), !zeros(12..<15) { return last4 }
        if bytes[0..<4] == [0x00, 0x64, 0xff, 0x9b], zeros(4..<12) { return last4 }
        if bytes[0] == 0x20, bytes[1] == 0x02 { return Array(bytes[2..<6]) }
        return nil
    }

    public static func masked(_ bytes: [UInt8], prefix: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsHere = min(8, max(0, prefix - index * 8))
            result[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return result
    }

    static func format(_ bytes: [UInt8]) -> String {
        var text = [CChar](repeating: 0, count: 64)
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let formatted = bytes.withUnsafeBytes { raw in
            text.withUnsafeMutableBufferPointer { inet_ntop(family, raw.baseAddress, $0.baseAddress, 64) != nil }
        }
        return formatted ? String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
