#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Recency
import SwiftASN1
import X509

/// A leaf certificate ready to hand to BoringSSL.
public struct IssuedLeaf: Sendable {
    public let certificate: Certificate
    public let certificateChain: [NIOSSLCertificate]
    public let privateKey: NIOSSLPrivateKey
}

/// Mints leaves for hosts and keeps them in an LRU cache.
///
/// All leaves share one P-256 key pair generated at start-up (as mitmproxy does): a cache miss then
/// costs one signature (~0.05 ms) instead of a key generation plus a signature.
public final class LeafCertificateCache: Sendable {
    public let authority: CertificateAuthority
    private let leafKey: Certificate.PrivateKey
    private let nioLeafKey: NIOSSLPrivateKey
    private let leafLifetime: TimeInterval
    private let cacheLifetime: TimeAmount
    private let cache: NIOLockedValueBox<LRUCache<String, IssuedLeaf>>
    private let threadPool: NIOThreadPool

    /// - Parameters:
    ///   - leafLifetime: validity of minted leaves.
    ///   - cacheLifetime: how long a leaf is reused; well below `leafLifetime` so a cached leaf is
    ///     never close to expiry.
    public init(
        authority: CertificateAuthority,
        capacity: Int = 4096,
        leafLifetime: TimeInterval = 30 * 86_400,
        cacheLifetime: TimeAmount = .hours(24),
        threadPool: NIOThreadPool = .singleton
    ) throws {
        self.authority = authority
        let key = P256.Signing.PrivateKey()
        self.leafKey = Certificate.PrivateKey(key)
        self.nioLeafKey = try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        self.leafLifetime = leafLifetime
        self.cacheLifetime = cacheLifetime
        self.cache = NIOLockedValueBox(LRUCache(capacity: capacity))
        self.threadPool = threadPool
    }

    /// The cache key and certificate name for `host`: lower-cased, without a trailing dot, so
    /// `Example.com.` and `example.com` share one leaf.
    public static func normalizedHost(_ host: String) -> String {
        let lower = host.lowercased()
        return lower.hasSuffix(".") && lower.count > 1 ? String(lower.dropLast()) : lower
    }

    /// The cached leaf for `host`, if there is a fresh one. Never blocks on minting.
    public func cachedLeaf(for host: String) -> IssuedLeaf? {
        let now = UInt64(NIODeadline.now().uptimeNanoseconds)
        return cache.withLockedValue { $0.value(for: Self.normalizedHost(host), now: now) }
    }

    /// The leaf for `host`; on a miss it is minted on the thread pool, off the event loop.
    public func leaf(for host: String, on eventLoop: EventLoop) -> EventLoopFuture<IssuedLeaf> {
        if let leaf = cachedLeaf(for: host) {
            return eventLoop.makeSucceededFuture(leaf)
        }
        return threadPool.runIfActive(eventLoop: eventLoop) { [self] in
            try self.mintAndCache(host: host)
        }
    }

    /// Mints a leaf synchronously and caches it. Call off the event loop.
    public func mintAndCache(host: String) throws -> IssuedLeaf {
        let key = Self.normalizedHost(host)
        let certificate = try authority.issueLeaf(
            for: LeafSubject(host: key),
            publicKey: leafKey.publicKey,
            lifetime: leafLifetime
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let leaf = IssuedLeaf(
            certificate: certificate,
            certificateChain: [try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)],
            privateKey: nioLeafKey
        )
        let expires = UInt64((NIODeadline.now() + cacheLifetime).uptimeNanoseconds)
        cache.withLockedValue { $0.insert(leaf, for: key, expires: expires) }
        return leaf
    }
}
