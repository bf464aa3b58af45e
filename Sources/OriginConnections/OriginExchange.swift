import NIOCore
import NIOHTTP1

/// Receives one exchange's response. All calls happen on the exchange's event loop.
public protocol OriginExchangeDelegate: AnyObject {
    func originExchange(_ exchange: OriginExchange, didReceiveHead head: HTTPResponseHead)
    func originExchange(_ exchange: OriginExchange, didReceiveBodyPart buffer: ByteBuffer)
    /// The end of one burst of reads from the origin: the moment to flush what was relayed.
    func originExchangeDidCompleteRead(_ exchange: OriginExchange)
    func originExchangeDidFinish(_ exchange: OriginExchange)
    /// The exchange failed; nothing more follows. After a head, the response is incomplete.
    func originExchange(_ exchange: OriginExchange, didFail error: any Error)
    /// `isWritable` turned true again: the request body may flow.
    func originExchangeBecameWritable(_ exchange: OriginExchange)
}

/// One request to an origin and its response, over a pooled connection. The caller writes the
/// request body as it arrives and watches `isWritable` for backpressure; the response reaches the
/// delegate part by part, and `pauseResponse`/`resumeResponse` hold the origin back while the
/// caller's client is slow. Confined to one event loop.
public final class OriginExchange {
    /// Body parts held while no connection is attached yet, before `isWritable` turns false.
    static let queuedPartsLimit = 8

    public let origin: Origin
    private let head: HTTPRequestHead
    private let hasBody: Bool
    private let pool: LoopPool
    private weak var delegate: (any OriginExchangeDelegate)?

    private enum State {
        case waitingForConnection
        case active(OriginConnection)
        case finished
    }

    private var state = State.waitingForConnection
    private var queued = CircularBuffer<HTTPClientRequestPart>()
    private var requestEnded = false
    private var responseStarted = false
    private var responseKeepAlive = true
    private var connectionWasReused = false
    private var retried = false
    /// Until `startExchange` returns: failures are reported a loop tick later.
    private var isStarting = true
    /// Bounds the wait in the pool's queue; cancelled once a connection is attached.
    var waitTimer: Scheduled<Void>?

    init(origin: Origin, head: HTTPRequestHead, hasBody: Bool, pool: LoopPool, delegate: any OriginExchangeDelegate) {
        self.origin = origin
        self.head = head
        self.hasBody = hasBody
        self.pool = pool
        self.delegate = delegate
    }

    var isWaitingForConnection: Bool {
        if case .waitingForConnection = state { return true }
        return false
    }

    // MARK: The caller's side

    /// Whether the caller may write more body without buffering beyond a few parts.
    public var isWritable: Bool {
        switch state {
        case .waitingForConnection: return queued.count < Self.queuedPartsLimit
        case .active(let connection): return connection.isWritable
        case .finished: return true
        }
    }

    public func writeBody(_ buffer: ByteBuffer) {
        send(.body(.byteBuffer(buffer)))
    }

    /// The request is complete.
    public func end() {
        requestEnded = true
        send(.end(nil))
        if case .active(let connection) = state { connection.requestSent() }
    }

    private func send(_ part: HTTPClientRequestPart) {
        switch state {
        case .waitingForConnection:
            queued.append(part)
        case .active(let connection):
            connection.write(part)
            connection.flush()
        case .finished:
            break
        }
    }

    /// Stops reading from the origin until `resumeResponse`.
    public func pauseResponse() {
        if case .active(let connection) = state { connection.pauseReads() }
    }

    public func resumeResponse() {
        if case .active(let connection) = state { connection.resumeReads() }
    }

    /// Abandons the exchange; its connection is closed, never reused. No delegate calls follow.
    public func cancel() {
        let current = state
        state = .finished
        queued.removeAll()
        if case .active(let connection) = current { connection.close() }
    }

    // MARK: The pool's side

    func attach(_ connection: OriginConnection, reused: Bool) {
        guard case .waitingForConnection = state else {
            pool.release(connection, reusable: true)
            return
        }
        waitTimer?.cancel()
        waitTimer = nil
        state = .active(connection)
        connectionWasReused = reused
        connection.attach(self)
        let wasBlocked = queued.count >= Self.queuedPartsLimit
        connection.write(.head(head))
        while let part = queued.popFirst() {
            connection.write(part)
        }
        connection.flush()
        if requestEnded { connection.requestSent() }
        if wasBlocked { delegate?.originExchangeBecameWritable(self) }
    }

    func connectFailed(_ error: any Error) {
        guard case .waitingForConnection = state else { return }
        waitTimer?.cancel()
        waitTimer = nil
        state = .finished
        queued.removeAll()
        reportFailure(error)
    }

    /// Tells the delegate, but never inside `startExchange` (a pooled connection the origin had
    /// reset can fail synchronously as the request is written): the caller has not recorded the
    /// exchange yet and would drop the news.
    private func reportFailure(_ error: any Error) {
        if isStarting {
            pool.eventLoop.assumeIsolated().execute { self.delegate?.originExchange(self, didFail: error) }
        } else {
            delegate?.originExchange(self, didFail: error)
        }
    }

    /// `startExchange` has returned to its caller.
    func started() {
        isStarting = false
    }

    // MARK: The connection's side

    func connectionReceivedHead(_ head: HTTPResponseHead) {
        // NIO's decoder drops other 1xx heads. A 101 was never asked for (upgrades are not
        // forwarded): the connection no longer speaks HTTP, and relaying it would desynchronise the client.
        guard head.status != .switchingProtocols else {
            failAndClose(OriginError.protocolViolation("unrequested 101 Switching Protocols"))
            return
        }
        responseStarted = true
        responseKeepAlive = head.isKeepAlive
        delegate?.originExchange(self, didReceiveHead: head)
    }

    private func failAndClose(_ error: any Error) {
        guard case .active(let connection) = state else { return }
        state = .finished
        connection.close()
        reportFailure(error)
    }

    func connectionReceivedBody(_ buffer: ByteBuffer) {
        delegate?.originExchange(self, didReceiveBodyPart: buffer)
    }

    func connectionReadComplete() {
        delegate?.originExchangeDidCompleteRead(self)
    }

    func connectionReceivedEnd() {
        guard case .active(let connection) = state else { return }
        state = .finished
        // A response that ended before the request did leaves the connection mid-request.
        pool.release(connection, reusable: requestEnded && responseKeepAlive)
        delegate?.originExchangeDidFinish(self)
    }

    func connectionBecameWritable() {
        delegate?.originExchangeBecameWritable(self)
    }

    func connectionFailed(_ error: any Error) {
        guard case .active = state else { return }
        if mayRetry(after: error) {
            // A pooled connection the origin had already closed: the request never reached it.
            // The end goes again if the caller had sent it; otherwise it comes later, as usual.
            retried = true
            state = .waitingForConnection
            queued = requestEnded ? [.end(nil)] : []
            pool.lease(for: self, fresh: true)
            return
        }
        state = .finished
        reportFailure(error)
    }

    /// Once, on a reused connection, before any response byte, for an idempotent request without
    /// a body (RFC 9110 §9.2.2), and not on a read timeout (the origin may be working on it).
    private func mayRetry(after error: any Error) -> Bool {
        guard connectionWasReused, !retried, !responseStarted, !hasBody, Self.isIdempotent(head.method) else {
            return false
        }
        return (error as? OriginError) != .readTimeout
    }

    private static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}
