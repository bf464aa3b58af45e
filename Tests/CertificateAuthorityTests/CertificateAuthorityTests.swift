@testable import CertificateAuthority
import Crypto
import Foundation
import NIOCore
import NIOPosix
import Recency
import Testing
import X509

@Suite("Certificate authority")
struct CertificateAuthorityTests {
    @Test("a generated CA signs leaves for DNS names and IP addresses that verify against it")
    func leavesVerify() async throws {
        let authority = try CertificateAuthority.generate()
        let key = P256.Signing.PrivateKey()
        for host in ["example.com", "127.0.0.1", "::1", String(repeating: "a", count: 63) + ".example.com"] {
            let leaf = try authority.issueLeaf(for: LeafSubject(host: host), publicKey: .init(key.publicKey),
                                               lifetime: 86_400)
            var verifier = Verifier(rootCertificates: CertificateStore([authority.certificate])) {
                RFC5280Policy(validationTime: Date())
                ServerIdentityPolicy(serverHostname: host.contains(".") && !host.first!.isNumber ? host : nil,
                                     serverIP: host.first!.isNumber || host.contains(":") ? host : nil)
            }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate = result else {
                Issue.record("leaf for \(host) did not verify: \(result)")
                continue
            }
            #expect(leaf.notValidAfter <= authority.certificate.notValidAfter)
        }
    }

    @Test("host parsing: IP literals become IP subjects, names are lower-cased")
    func subjects() {
        #expect(LeafSubject(host: "10.1.2.3") == .ipAddress([10, 1, 2, 3]))
        #expect(LeafSubject(host: "[::1]") == .ipAddress([UInt8](repeating: 0, count: 15) + [1]))
        #expect(LeafSubject(host: "Example.COM") == .dnsName("example.com"))
    }

    @Test("the CA directory: generated once with a 0600 key, then loaded unchanged")
    func directoryRoundTrip() throws {
        let directory = NSTemporaryDirectory() + "passsage-ca-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (first, firstOrigin) = try CertificateAuthorityStore.resolve(bundle: nil, certificate: nil, directory: directory)
        #expect(firstOrigin == .generated(directory: directory))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/mitmproxy-ca.pem")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let (second, secondOrigin) = try CertificateAuthorityStore.resolve(bundle: nil, certificate: nil, directory: directory)
        #expect(secondOrigin == .loaded(directory: directory))
        #expect(second.certificate == first.certificate)
        let certificateFile = try String(contentsOfFile: directory + "/mitmproxy-ca-cert.pem", encoding: .utf8)
        #expect(certificateFile.contains(first.certificatePEM.split(separator: "\n")[1]))
    }

    @Test("inline PEM bundles, a matching certificate, and mismatches")
    func explicitBundles() throws {
        let authority = try CertificateAuthority.generate()
        let keyPEM = try authority.privateKey.serializeAsPEM().pemString
        // Certificate first, key second: order must not matter.
        let bundle = authority.certificatePEM + "\n" + keyPEM + "\n"
        let (loaded, origin) = try CertificateAuthorityStore.resolve(bundle: bundle, certificate: authority.certificatePEM,
                                                                    directory: "/nonexistent")
        #expect(origin == .explicit)
        #expect(loaded.certificate == authority.certificate)
        let other = try CertificateAuthority.generate()
        #expect(throws: CertificateAuthorityError.keyDoesNotMatchCertificate) {
            try CertificateAuthorityStore.resolve(bundle: bundle, certificate: other.certificatePEM, directory: "/nonexistent")
        }
        #expect(throws: CertificateAuthorityError.keyDoesNotMatchCertificate) {
            try CertificateAuthorityStore.parseBundle(other.certificatePEM + "\n" + keyPEM)
        }
        #expect(throws: CertificateAuthorityError.self) {
            try CertificateAuthorityStore.parseBundle(authority.certificatePEM)
        }
        // The key alone, with the certificate beside it (a kubernetes.io/tls Secret's two files).
        let (split, _) = try CertificateAuthorityStore.resolve(bundle: keyPEM, certificate: authority.certificatePEM,
                                                              directory: "/nonexistent")
        #expect(split.certificate == authority.certificate)
        #expect(throws: CertificateAuthorityError.keyDoesNotMatchCertificate) {
            try CertificateAuthorityStore.resolve(bundle: keyPEM, certificate: other.certificatePEM, directory: "/nonexistent")
        }
        #expect(throws: CertificateAuthorityError.self) {
            try CertificateAuthorityStore.resolve(bundle: keyPEM, certificate: nil, directory: "/nonexistent")
        }
    }

    @Test("leaf cache: minted once per host, served from cache after, evicted past capacity")
    func leafCache() async throws {
        let cache = try LeafCertificateCache(authority: try CertificateAuthority.generate(), capacity: 2)
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        #expect(cache.cachedLeaf(for: "a.test") == nil)
        let minted = try await cache.leaf(for: "a.test", on: eventLoop).get()
        #expect(cache.cachedLeaf(for: "A.TEST")?.certificate == minted.certificate)
        _ = try await cache.leaf(for: "b.test", on: eventLoop).get()
        _ = cache.cachedLeaf(for: "a.test")  // a is now more recent than b
        _ = try await cache.leaf(for: "c.test", on: eventLoop).get()
        #expect(cache.cachedLeaf(for: "a.test") != nil)
        #expect(cache.cachedLeaf(for: "b.test") == nil)
    }

    @Test("LRU cache expiry")
    func lruExpiry() {
        var lru = LRUCache<String, Int>(capacity: 4)
        lru.insert(1, for: "x", expires: 100)
        #expect(lru.value(for: "x", now: 99) == 1)
        #expect(lru.value(for: "x", now: 100) == nil)
        #expect(lru.count == 0)
    }
}

@Suite("LRU cache")
struct LRUCacheTests {
    @Test("evicts the least recently used; a lookup refreshes; expired slots are reused")
    func evictionOrder() {
        var lru = LRUCache<String, Int>(capacity: 3)
        lru.insert(1, for: "a", expires: 1_000)
        lru.insert(2, for: "b", expires: 1_000)
        lru.insert(3, for: "c", expires: 1_000)
        #expect(lru.value(for: "a", now: 0) == 1)   // a is now the most recent
        lru.insert(4, for: "d", expires: 1_000)     // evicts b
        #expect(lru.value(for: "b", now: 0) == nil)
        #expect(lru.value(for: "c", now: 0) == 3)
        lru.insert(5, for: "e", expires: 10)        // evicts a (c and d were used or inserted later)
        #expect(lru.value(for: "a", now: 0) == nil)
        #expect(lru.value(for: "e", now: 10) == nil)  // expired
        #expect(lru.count == 2)
        lru.insert(6, for: "f", expires: 1_000)
        lru.insert(7, for: "d", expires: 1_000)     // replaces in place
        #expect(lru.count == 3)
        #expect(lru.value(for: "d", now: 0) == 7)
        #expect(lru.value(for: "c", now: 0) == 3)
        #expect(lru.value(for: "f", now: 0) == 6)
    }

    @Test("entries can be removed by key and from the old end; removed slots are reused")
    func removals() {
        var lru = LRUCache<String, Int>(capacity: 3)
        lru.insert(1, for: "a", expires: .max)
        lru.insert(2, for: "b", expires: .max)
        lru.insert(3, for: "c", expires: .max)
        #expect(lru.removeValue(for: "b") == 2)
        #expect(lru.removeValue(for: "b") == nil)
        #expect(lru.count == 2)
        #expect(lru.removeOldest()! == ("a", 1))
        lru.insert(4, for: "d", expires: .max)
        lru.insert(5, for: "e", expires: .max)
        #expect(lru.count == 3)
        #expect(lru.removeOldest()! == ("c", 3))
        #expect(lru.removeOldest()! == ("d", 4))
        #expect(lru.removeOldest()! == ("e", 5))
        #expect(lru.removeOldest() == nil)
        lru.insert(6, for: "f", expires: .max)
        lru.removeAll()
        #expect(lru.count == 0 && lru.value(for: "f", now: 0) == nil)
    }

    @Test("a removed entry's value is released at once, not kept in its free slot")
    func removedValuesAreReleased() {
        final class Box {}
        var lru = LRUCache<Int, Box>(capacity: 4)
        weak var first: Box?
        weak var second: Box?
        do {
            let one = Box(), two = Box()
            first = one
            second = two
            lru.insert(one, for: 1, expires: .max)
            lru.insert(two, for: 2, expires: .max)
        }
        lru.removeValue(for: 1)
        _ = lru.removeOldest()
        #expect(first == nil && second == nil)
        #expect(lru.count == 0)
    }

    @Test("eviction is O(1): inserts into a full cache of 16,384 cost about what they cost in one of 64")
    func constantTimeEviction() {
        // A ratio of two runs in the same conditions, not a wall-clock bound: a loaded machine slows
        // both alike. The old scan compared every entry per insert: 256 times the work here.
        func insertions(capacity: Int) -> Duration {
            var lru = LRUCache<Int, Int>(capacity: capacity)
            for key in 0..<capacity { lru.insert(key, for: key, expires: .max) }
            return ContinuousClock().measure {
                for key in capacity..<(capacity + 50_000) {
                    lru.insert(key, for: key, expires: .max)
                    _ = lru.value(for: key - capacity / 2, now: 0)
                }
                #expect(lru.count == capacity)
                #expect(lru.value(for: capacity + 49_999, now: 0) == capacity + 49_999)
            }
        }
        var small = Duration.seconds(1_000), large = Duration.seconds(1_000)
        for _ in 0..<3 {
            small = min(small, insertions(capacity: 64))
            large = min(large, insertions(capacity: 16_384))
        }
        #expect(large < small * 16, "64 entries: \(small), 16,384 entries: \(large)")
    }
}
