import CertificateAuthority
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Server-side TLS contexts for intercepted tunnels, one per CONNECT host.
///
/// The context's default certificate is the leaf for the CONNECT host, which covers IP literals and
/// clients that send no SNI. When a client sends an SNI that differs from the CONNECT host, the SNI
/// callback swaps in a leaf for that name. Contexts are cached so session tickets keep working
/// across connections to the same host.
final class InterceptionTLS: Sendable {
    private let leaves: LeafCertificateCache
    private let contexts: NIOLockedValueBox<LRUCache<String, NIOSSLContext>>
    private let contextLifetime: TimeAmount

    init(leaves: LeafCertificateCache, capacity: Int = 1024, contextLifetime: TimeAmount = .hours(12)) {
        self.leaves = leaves
        self.contexts = NIOLockedValueBox(LRUCache(capacity: capacity))
        self.contextLifetime = contextLifetime
    }

    func context(forConnectHost host: String, on eventLoop: EventLoop) -> EventLoopFuture<NIOSSLContext> {
        let now = UInt64(NIODeadline.now().uptimeNanoseconds)
        if let cached = contexts.withLockedValue({ $0.value(for: host, now: now) }) {
            return eventLoop.makeSucceededFuture(cached)
        }
        return leaves.leaf(for: host, on: eventLoop).flatMapThrowing { [self] leaf in
            let context = try self.makeContext(host: host, defaultLeaf: leaf)
            let expires = UInt64((NIODeadline.now() + self.contextLifetime).uptimeNanoseconds)
            self.contexts.withLockedValue { $0.insert(context, for: host, expires: expires) }
            return context
        }
    }

    private func makeContext(host: String, defaultLeaf: IssuedLeaf) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: defaultLeaf.certificateChain.map { .certificate($0) },
            privateKey: .privateKey(defaultLeaf.privateKey)
        )
        // curl and others offer h2; we serve HTTP/1.1 inside the tunnel.
        configuration.applicationProtocols = ["http/1.1"]
        let leaves = self.leaves
        configuration.sslContextCallback = { values, promise in
            guard let sni = values.serverHostname?.lowercased(), sni != host, Self.isPlausibleHostName(sni) else {
                promise.succeed(NIOSSLContextConfigurationOverride())
                return
            }
            if let leaf = leaves.cachedLeaf(for: sni) {
                promise.succeed(Self.override(with: leaf))
                return
            }
            NIOThreadPool.singleton.runIfActive(eventLoop: promise.futureResult.eventLoop) {
                Self.override(with: try leaves.mintAndCache(host: sni))
            }.cascade(to: promise)
        }
        return try NIOSSLContext(configuration: configuration)
    }

    private static func override(with leaf: IssuedLeaf) -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = leaf.certificateChain.map { .certificate($0) }
        override.privateKey = .privateKey(leaf.privateKey)
        return override
    }

    private static func isPlausibleHostName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 253 && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                return true
            default:
                return false
            }
        }
    }
}
