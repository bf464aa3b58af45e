#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Resolves upstream names off the event loop and refuses destinations the `DestinationPolicy`
/// denies, before any connection attempt. Every outgoing connection of the proxy goes through
/// `connect`, so the check covers forwarded requests, CONNECT and blind tunnels alike.
public final class DestinationGuard: Sendable {
    private let current: NIOLockedValueBox<DestinationPolicy>
    private let threadPool: NIOThreadPool
    /// Lookups queued or running; past `maxPendingLookups` new ones fail at once, so a resolver
    /// that never answers cannot queue up unbounded work (each stuck lookup holds a thread).
    private let pendingLookups = NIOLockedValueBox(0)
    private let maxPendingLookups: Int

    public init(policy: DestinationPolicy, threadPool: NIOThreadPool = .singleton, maxPendingLookups: Int = 256) {
        self.current = NIOLockedValueBox(policy)
        self.threadPool = threadPool
        self.maxPendingLookups = maxPendingLookups
    }

    /// The policy in force; the listeners' own addresses are added once they are bound.
    public var policy: DestinationPolicy {
        get { current.withLockedValue { $0 } }
        set { current.withLockedValue { $0 = newValue } }
    }

    /// The addresses of `host`, every one of them allowed; fails with `OriginError.destinationDenied`
    /// if any is denied (a name that also points somewhere private is not trusted half-way), or
    /// `OriginError.nameResolution` if there are none.
    /// The lookup itself cannot be cancelled, but the caller stops waiting after `timeout`
    /// (`OriginError.connectTimeout`: the connect timeout covers name resolution, as it did inside
    /// NIO's Happy Eyeballs).
    public func resolve(host: String, port: Int, timeout: TimeAmount, on eventLoop: EventLoop)
        -> EventLoopFuture<[SocketAddress]>
    {
        let policy = self.policy
        if IPAddressBytes.parse(host) != nil {
            do {
                return eventLoop.makeSucceededFuture(try Self.vet([try SocketAddress(ipAddress: host, port: port)],
                                                                  host: host, policy: policy))
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        }
        let admitted = pendingLookups.withLockedValue { pending in
            guard pending < maxPendingLookups else { return false }
            pending += 1
            return true
        }
        guard admitted else {
            return eventLoop.makeFailedFuture(OriginError.nameResolution(host: host, message: "too many lookups in progress"))
        }
        let pending = pendingLookups
        let lookup = threadPool.runIfActive(eventLoop: eventLoop) {
            defer { pending.withLockedValue { $0 -= 1 } }
            return try Self.vet(try Self.lookUp(host: host, port: port), host: host, policy: policy)
        }
        let answer = eventLoop.makePromise(of: [SocketAddress].self)
        let timer = eventLoop.scheduleTask(in: timeout) { answer.fail(OriginError.connectTimeout) }
        lookup.whenComplete { result in
            timer.cancel()
            answer.completeWith(result)   // a no-op if the timer already failed it
        }
        return answer.futureResult
    }

    /// Resolves and vets `host` (unless `resolved` holds addresses this guard already vetted),
    /// then connects with Happy Eyeballs over exactly those addresses.
    public func connect(_ bootstrap: ClientBootstrap, host: String, port: Int, resolved: [SocketAddress]? = nil,
                        timeout: TimeAmount, on eventLoop: EventLoop) -> EventLoopFuture<Channel>
    {
        let addresses = resolved.map { eventLoop.makeSucceededFuture($0) }
            ?? resolve(host: host, port: port, timeout: timeout, on: eventLoop)
        // Both futures complete on `eventLoop`, where the caller made the (non-Sendable) bootstrap.
        return addresses.assumeIsolated().flatMap { addresses in
            bootstrap.resolver(ResolvedAddresses(addresses: addresses, eventLoop: eventLoop))
                .connect(host: host, port: port)
        }.nonisolated()
    }

    private static func vet(_ addresses: [SocketAddress], host: String, policy: DestinationPolicy) throws -> [SocketAddress] {
        if let denied = policy.firstDenied(in: addresses) {
            throw OriginError.destinationDenied(host: host, address: denied.ipAddress ?? "?")
        }
        return addresses
    }

    /// getaddrinfo, both families, TCP. Blocking: runs on the thread pool.
    static func lookUp(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            let message = status == 0 ? "no addresses" : String(cString: gai_strerror(status))
            throw OriginError.nameResolution(host: host, message: message)
        }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var seen = Set<String>()
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            cursor = entry.pointee.ai_next
            guard let raw = entry.pointee.ai_addr else { continue }
            let address: SocketAddress
            switch entry.pointee.ai_family {
            case AF_INET:
                address = SocketAddress(raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }, host: host)
            case AF_INET6:
                address = SocketAddress(raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }, host: host)
            default:
                continue
            }
            if seen.insert(address.description).inserted { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw OriginError.nameResolution(host: host, message: "no addresses") }
        return addresses
    }
}

/// Hands Happy Eyeballs the addresses already resolved and vetted, so NIO looks nothing up itself.
private final class ResolvedAddresses: Resolver, Sendable {
    private let addresses: [SocketAddress]
    private let eventLoop: EventLoop

    init(addresses: [SocketAddress], eventLoop: EventLoop) {
        self.addresses = addresses
        self.eventLoop = eventLoop
    }

    func initiateAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
        eventLoop.makeSucceededFuture(addresses.filter { $0.protocol == .inet })
    }

    func initiateAAAAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
        eventLoop.makeSucceededFuture(addresses.filter { $0.protocol == .inet6 })
    }

    func cancelQueries() {}
}
