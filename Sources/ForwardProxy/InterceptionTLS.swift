import CertificateAuthority
import HTTPRules
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Recency

/// Server-side TLS contexts for intercepted tunnels, one per CONNECT host.
///
/// A tunnel serves its CONNECT authority only (see `TunnelRequestTarget`), so its certificate is
/// the leaf for the CONNECT host, which also covers IP literals and clients that send no SNI. A
/// client whose SNI names another host is refused during the handshake rather than handed a leaf
/// for a name the tunnel will not fetch. Contexts are cached so session tickets keep working
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
            let context = try self.makeContext(host: host, leaf: leaf)
            let expires = UInt64((NIODeadline.now() + self.contextLifetime).uptimeNanoseconds)
            self.contexts.withLockedValue { $0.insert(context, for: host, expires: expires) }
            return context
        }
    }

    private func makeContext(host: String, leaf: IssuedLeaf) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: leaf.certificateChain.map { .certificate($0) },
            privateKey: .privateKey(leaf.privateKey)
        )
        // curl and others offer h2; we serve HTTP/1.1 inside the tunnel.
        configuration.applicationProtocols = ["http/1.1"]
        configuration.sslContextCallback = { values, promise in
            if let sni = values.serverHostname, LeafCertificateCache.normalizedHost(sni) != host {
                promise.fail(SNIMismatch(sni: sni, connectHost: host))
            } else {
                promise.succeed(NIOSSLContextConfigurationOverride())
            }
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// The TLS handshake named another host than the CONNECT request.
struct SNIMismatch: Error, CustomStringConvertible {
    let sni: String
    let connectHost: String

    var description: String { "SNI \"\(sni.prefix(253))\" does not name the CONNECT host \(connectHost)" }
}
