import HTTPRules
import NIOCore
import NIOHTTP1

/// One request as the response sources see it: the client's head and the one target the proxy
/// fetches, logs and (later) keys, resolved once from the request line or the tunnel.
public struct SourceRequest: Sendable {
    public enum Target: Sendable {
        /// An origin-form request on the proxy's own listener: addressed to the proxy itself.
        case proxyItself(pathAndQuery: String)
        /// `path` is the request's path and query, already encoded for the wire.
        case url(scheme: RequestScheme, authority: Authority, path: String)
    }

    public let head: HTTPRequestHead
    public let target: Target
    /// The client's side of the connection: where a request addressed to the proxy arrived.
    public let localAddress: SocketAddress?
}

/// A response that is whole in memory before it is written (onboarding pages, errors).
public struct LocalReply: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// For HEAD answers: the length of the body a GET would get (the Content-Length to send).
    public var headLength: Int?
    /// A stored origin response replayed (a cache hit): its headers get what relayed responses
    /// get (hop-by-hop fields removed, `Via`).
    public var replaysStoredResponse: Bool

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, headLength: Int? = nil,
                replaysStoredResponse: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.headLength = headLength
        self.replaysStoredResponse = replaysStoredResponse
    }

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8], headLength: Int? = nil) {
        self.init(status: status, headers: headers, body: ByteBuffer(bytes: body), headLength: headLength)
    }
}

/// How a request is answered. Sources are asked in turn (`ResponseSources`); the handler performs
/// the plan.
public enum ResponsePlan: Sendable {
    /// Written now from memory.
    case local(LocalReply)
    /// Forwarded to the origin as the client sent it (`OriginRelay`).
    case relay
    /// Forwarded like `.relay`; the observer hears the origin's response head (the cache
    /// invalidates entries after a successful unsafe request).
    case observedRelay(any RelayObserver)
    /// Decided asynchronously (a cache lookup). The handler holds the client's reads until the
    /// future completes, then performs the plan it yields: one hop to the event loop per lookup.
    case pending(EventLoopFuture<ResponsePlan>)
    /// Answered by an exchange a source prepared (the cache's hits and data-plane fetches).
    case exchange(any PreparedExchange)
}

/// Hears the response head of a relayed request, on the connection's event loop; must not block.
public protocol RelayObserver: Sendable {
    func responded(status: HTTPResponseStatus, headers: HTTPHeaders)
}

/// Something that may answer requests. Returns nil for requests it does not take, so the next
/// source is asked. Called on the connection's event loop; must not block.
public protocol ResponseSource: Sendable {
    func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan?
}

/// A response that streams from somewhere (the origin, the data plane), as the connection handler
/// drives it: the request body goes in, the response comes back through a
/// `ResponseExchangeDelegate`, and `pauseResponse`/`resumeResponse` carry the client's backpressure.
/// Confined to the connection's event loop.
public protocol ResponseExchange: AnyObject {
    /// Whether more request body is taken now (its upstream is writable).
    var acceptsRequestBody: Bool { get }
    func writeBody(_ buffer: ByteBuffer)
    /// The request body is complete.
    func end()
    func pauseResponse()
    func resumeResponse()
    /// The client is gone or the request failed: stop, release everything, call back no more.
    func cancel()
}

/// Receives one exchange's response on the connection's event loop.
public protocol ResponseExchangeDelegate: AnyObject {
    func exchange(_ exchange: any ResponseExchange, didReceiveHead head: HTTPResponseHead)
    func exchange(_ exchange: any ResponseExchange, didReceiveBodyPart buffer: ByteBuffer)
    /// The end of a burst of body parts: the moment to flush.
    func exchangeDidCompleteRead(_ exchange: any ResponseExchange)
    func exchangeDidFinish(_ exchange: any ResponseExchange)
    /// Nothing more follows. After a head, the response is incomplete.
    func exchange(_ exchange: any ResponseExchange, didFail error: any Error)
    /// `acceptsRequestBody` turned true again.
    func exchangeBecameWritable(_ exchange: any ResponseExchange)
}

/// An exchange a source prepared but has not started: started when the handler performs the plan,
/// or discarded if the client left meanwhile.
public protocol PreparedExchange: Sendable {
    /// Must not call the delegate before it returns.
    func start(delegate: any ResponseExchangeDelegate) -> any ResponseExchange
    func discard()
}

/// The sources of one proxy, asked in order: the local site (`mitm.it`, requests to the proxy
/// itself), then the cache when one is configured, then the origin relay, which takes the rest.
struct ResponseSources: Sendable {
    let localSite: LocalSite
    let cache: (any ResponseSource)?

    func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan {
        if let plan = localSite.plan(for: request, eventLoop: eventLoop) { return plan }
        if let cache, let plan = cache.plan(for: request, eventLoop: eventLoop) { return plan }
        return .relay
    }
}
