@testable import ForwardProxy
import HTTPRules
import NIOCore
import NIOHTTP1
import OriginConnections
import Testing

@Suite("Destination policy")
struct DestinationPolicyTests {
    private func denies(_ policy: DestinationPolicy, _ ip: String, port: Int = 80) throws -> Bool {
        policy.denies(try SocketAddress(ipAddress: ip, port: port))
    }

    @Test("the default list: loopback, link-local and metadata on both families, mapped and unspecified forms included")
    func defaultList() throws {
        let policy = DestinationPolicy.defaultPolicy
        for ip in ["127.0.0.1", "127.255.0.9", "::1", "169.254.169.254", "fe80::1", "::ffff:127.0.0.1",
                   "::ffff:169.254.169.254", "0.0.0.0", "::", "fd00:ec2::254", "100.100.100.200"] {
            #expect(try denies(policy, ip), "\(ip)")
        }
        // IPv6 forms that reach an IPv4 host count as that host: compatible, SIIT, NAT64, 6to4.
        for ip in ["::127.0.0.1", "::ffff:0:127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::",
                   "2002:a9fe:a9fe::1"] {
            #expect(try denies(policy, ip), "\(ip)")
        }
        for ip in ["10.0.0.1", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8", "128.0.0.1", "169.255.0.1", "64:ff9b::808:808",
                   "2002:808:808::"] {
            #expect(try !denies(policy, ip), "\(ip)")
        }
    }

    @Test("parsing: CIDR lists, bare addresses, an empty list, and bad input")
    func parsing() throws {
        let policy = try DestinationPolicy(parsing: " 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32")
        #expect(policy.deniedNetworks.map(\.description) == ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"])
        #expect(try denies(policy, "10.200.3.4"))
        #expect(try denies(policy, "192.168.1.7"))
        #expect(try !denies(policy, "192.168.1.8"))
        #expect(try denies(policy, "2001:db8:ffff::1"))
        #expect(try DestinationPolicy(parsing: "").isEnabled == false)
        #expect(try IPNetwork(parsing: "10.1.2.3/8").description == "10.0.0.0/8")
        // A list entry matches an address in either form it takes.
        let sixToFour = try DestinationPolicy(parsing: "2002::/16")
        #expect(try denies(sixToFour, "2002:a00:1::"))
        #expect(try denies(policy, "2002:a00:1::"), "10.0.0.1 inside 6to4")
        for bad in ["10.0.0.0/33", "::1/129", "example.com", "10.0.0/8", "10.0.0.0/-1", "10.0.0.0/"] {
            #expect(throws: DestinationPolicyError.self) { try IPNetwork(parsing: bad) }
        }
    }

    @Test("a wildcard listener's own endpoints cover every loopback address; a bound one only its own")
    func wildcardListenerEndpoints() throws {
        var policy = try DestinationPolicy(parsing: "169.254.0.0/16")
        policy.ownEndpoints = ProxyService.ownEndpoints([try SocketAddress(ipAddress: "0.0.0.0", port: 8082),
                                                         try SocketAddress(ipAddress: "127.0.0.1", port: 8080)])
        for ip in ["127.0.0.1", "127.0.0.2", "127.255.1.1", "::1", "::ffff:127.0.0.3", "0.0.0.0"] {
            #expect(try denies(policy, ip, port: 8082), "\(ip)")
        }
        #expect(try denies(policy, "127.0.0.1", port: 8080))
        #expect(try !denies(policy, "127.0.0.2", port: 8080), "bound to 127.0.0.1 only")
        #expect(try !denies(policy, "127.0.0.2", port: 9999))
    }

    @Test("the proxy's own endpoints are denied by address and port, whatever the list")
    func ownEndpoints() throws {
        var policy = try DestinationPolicy(parsing: "169.254.0.0/16")
        policy.ownEndpoints = [.init(address: [127, 0, 0, 1], port: 8080),
                               .init(network: try IPNetwork(parsing: "127.0.0.0/8"), port: 8082)]
        #expect(try denies(policy, "127.9.9.9", port: 8082))
        #expect(try !denies(policy, "127.9.9.9", port: 8080))
        #expect(try denies(policy, "127.0.0.1", port: 8080))
        #expect(try denies(policy, "0.0.0.0", port: 8080))
        #expect(try denies(policy, "::ffff:127.0.0.1", port: 8080))
        #expect(try !denies(policy, "127.0.0.1", port: 8081))
    }
}

@Suite("Tunnel authority and error reporting")
struct TunnelAuthorityTests {
    let tunnel = Authority(host: "example.com", port: 8443)

    private func resolve(_ uri: String, host: String?) throws -> String {
        try TunnelRequestTarget.resolve(method: "GET", uri: uri, hostHeader: host, tunnel: tunnel)
    }

    @Test("requests for the tunnel's own authority resolve to its path")
    func sameAuthority() throws {
        #expect(try resolve("/a?b=1", host: "example.com:8443") == "/a?b=1")
        #expect(try resolve("/a", host: "EXAMPLE.com") == "/a")        // port omitted: the tunnel's
        #expect(try resolve("/a", host: "example.com.:8443") == "/a")  // trailing dot: the same host
        #expect(try resolve("/a", host: nil) == "/a")
        #expect(try resolve("https://example.com:8443/x", host: "example.com:8443") == "/x")
    }

    @Test("another authority, in the URL or in Host, is misdirected")
    func otherAuthority() {
        for (uri, host) in [("https://example.com:9443/x", "example.com:9443"), ("/x", "example.com:9443"),
                            ("/x", "other.example"), ("https://other.example:8443/x", nil),
                            ("https://example.com/x", "example.com:8443")] {
            #expect(throws: RequestTargetError.self, "\(uri) \(host ?? "-")") { try resolve(uri, host: host) }
            do {
                _ = try resolve(uri, host: host)
            } catch let error as RequestTargetError {
                if case .misdirected = error {} else { Issue.record("\(uri): \(error)") }
            } catch {
                Issue.record("\(uri): \(error)")
            }
        }
    }

    @Test("a trailing dot is normalised away in authorities")
    func trailingDot() throws {
        #expect(try Authority.parse("Example.COM.:443", defaultPort: nil) == Authority(host: "example.com", port: 443))
        #expect(throws: RequestTargetError.self) { try Authority.parse(".:443", defaultPort: nil) }
        #expect(throws: RequestTargetError.self) { try Authority.parse("example.com..:443", defaultPort: nil) }
    }

    @Test("upstream failures: stable client text, detail for the log only")
    func failureText() {
        let errors: [(any Error, UInt)] = [
            (OriginError.destinationDenied(host: "localhost", address: "127.0.0.1"), 403),
            (OriginError.nameResolution(host: "nowhere.invalid", message: "Name or service not known"), 502),
            (OriginError.readTimeout, 504),
            (IOError(errnoCode: 104, reason: "read(descriptor:pointer:size:)"), 502),
            (HTTPParserError.invalidChunkSize, 502),
        ]
        for (error, status) in errors {
            let failure = UpstreamFailure.classify(error)
            #expect(failure.status.code == status, "\(error)")
            #expect(!failure.message.contains("("), "\(failure.message)")
            #expect(!failure.message.contains("127.0.0.1"))
        }
        #expect(UpstreamFailure.classify(IOError(errnoCode: 104, reason: "read(descriptor:pointer:size:)")).detail
            .contains("read(descriptor"))
    }
}
