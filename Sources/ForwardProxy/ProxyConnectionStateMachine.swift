import HTTPRules
import NIOCore
import NIOHTTP1

/// One request on a client connection, as the access log sees it.
struct ProxyRequestRecord {
    let method: String
    /// The URL that is fetched and logged (and keyed): computed once from the resolved target.
    var target: String
    let requestID: String
    let keepAlive: Bool
    let started: NIODeadline
    var status: HTTPResponseStatus?
    var bodyBytes = 0
    var requestEnded = false
}

/// How far the response to a forwarded request got.
enum ResponseProgress {
    case awaitingHead
    /// The origin's head, held until its first body bytes or the end of the read burst, so a
    /// response that breaks before any byte reached the client still becomes a clean 502.
    case headPending(HTTPResponseHead)
    case streaming
}

/// The sequencing of one client connection as a value, with no I/O: which request part can be
/// handled now and which waits, when reads pause and resume, what each event from the client or
/// the origin means, and when the connection closes. `ProxyHTTPHandler` performs the actions it
/// returns.
///
/// Input is taken only as fast as output drains: requests pipelined behind the one in flight wait
/// in a bounded queue (reads stop while any wait), and no new request starts while the client's
/// output is backed up.
struct ProxyConnectionStateMachine {
    typealias Exchange = any ResponseExchange

    /// Tells a lookup's completion from a later one's.
    struct LookupID: Equatable {
        fileprivate let value: UInt64
    }

    enum State {
        case idle
        /// A response source is deciding asynchronously (a cache lookup); input waits in the queue.
        case lookingUp(LookupID, ProxyRequestRecord)
        /// A request is being forwarded upstream.
        case forwarding(Exchange, ProxyRequestRecord, ResponseProgress)
        /// A local response was sent; the rest of the request body is read and dropped.
        case discardingRequestBody(ProxyRequestRecord)
        /// CONNECT head received; the switch happens on its `.end`.
        case awaitingConnectEnd(Authority, ProxyRequestRecord)
        /// The connection is being handed to the tunnel handlers.
        case switched
        /// The last response is out and the connection closes; further input is dropped.
        case closing
    }

    /// What waits behind the request in flight.
    enum Queued {
        case part(HTTPServerRequestPart)
        /// A request the decoder rejected, answered in its turn.
        case malformed(HTTPParserError)
    }

    private(set) var state = State.idle
    private(set) var queue = CircularBuffer<Queued>()
    /// Requests (heads and malformed ones) in `queue`.
    private(set) var queuedRequests = 0
    /// More requests were pipelined than the limit: the rest were dropped, and the connection
    /// closes once the queued ones are answered.
    private(set) var queueOverflowed = false
    private(set) var readsPaused = false
    private var readPending = false
    /// Graceful shutdown asked for this connection to close once the request in flight is done.
    private(set) var quiescing = false
    private var lookups: UInt64 = 0
    let pipelinedRequestLimit: Int

    init(pipelinedRequestLimit: Int) {
        self.pipelinedRequestLimit = pipelinedRequestLimit
    }

    // MARK: Input and the queue

    enum Arrival {
        /// Handle it now.
        case handle(Queued)
        case queued
        /// Queued nothing: the limit was just reached (log it); the connection closes once the
        /// queued requests are answered.
        case overflowed
        /// Dropped: the limit was reached earlier.
        case dropped
    }

    /// A request part (or a request the decoder rejected) arrived from the client.
    mutating func arrived(_ item: Queued, outputWritable: Bool) -> Arrival {
        if queue.isEmpty, acceptsInput(outputWritable: outputWritable) { return .handle(item) }
        readsPaused = true
        guard !queueOverflowed else { return .dropped }
        if Self.isRequest(item) {
            guard queuedRequests < pipelinedRequestLimit else {
                queueOverflowed = true
                return .overflowed
            }
            queuedRequests += 1
        }
        queue.append(item)
        return .queued
    }

    private static func isRequest(_ item: Queued) -> Bool {
        switch item {
        case .part(.head), .malformed: return true
        case .part: return false
        }
    }

    /// Whether the next request part can be handled now rather than queued.
    func acceptsInput(outputWritable: Bool) -> Bool {
        switch state {
        case .idle: return outputWritable   // output backed up: start no new request
        case .forwarding(_, let record, _): return !record.requestEnded
        case .discardingRequestBody, .awaitingConnectEnd, .closing: return true
        case .lookingUp, .switched: return false
        }
    }

    /// Whether more bytes should be read from the client now.
    func wantsInput(outputWritable: Bool) -> Bool {
        switch state {
        case .idle: return outputWritable
        case .forwarding(let exchange, let record, _): return record.requestEnded || exchange.acceptsRequestBody
        case .discardingRequestBody, .awaitingConnectEnd: return true
        case .lookingUp, .switched, .closing: return false
        }
    }

    enum PumpStep {
        case handle(Queued)
        /// The queue is drained after an overflow: close.
        case close
        case resumeReads
        /// Reads stay paused (they were marked so).
        case pauseReads
        /// Something is queued but the state takes nothing now.
        case wait
    }

    /// The next thing to do for what was queued; called until it is not `.handle`.
    mutating func nextPumpStep(outputWritable: Bool) -> PumpStep {
        if !queue.isEmpty {
            guard acceptsInput(outputWritable: outputWritable) else { return .wait }
            let item = queue.removeFirst()
            if Self.isRequest(item) { queuedRequests -= 1 }
            return .handle(item)
        }
        if queueOverflowed, case .idle = state {
            state = .closing
            return .close
        }
        if wantsInput(outputWritable: outputWritable) { return .resumeReads }
        readsPaused = true
        return .pauseReads
    }

    // MARK: Reads

    /// The channel asks for a read: true to pass it on now, false to hold it until reads resume.
    mutating func readRequested() -> Bool {
        guard readsPaused else { return true }
        readPending = true
        return false
    }

    mutating func pauseReads() {
        readsPaused = true
    }

    /// Resumes reads; returns whether they were paused, and whether a held read must be issued.
    mutating func resumeReads() -> (wasPaused: Bool, issueRead: Bool) {
        guard readsPaused else { return (false, false) }
        readsPaused = false
        defer { readPending = false }
        return (true, readPending)
    }

    /// Before the tunnel's handlers replace the handler: a read held back would be lost.
    mutating func releaseHeldRead() -> Bool {
        readsPaused = false
        defer { readPending = false }
        return readPending
    }

    // MARK: Requests

    enum HeadDisposition {
        case serve
        /// Input after the connection decided to close: ignored.
        case ignore
        /// A head while another request is in flight (cannot happen with the queue): 400, close.
        case unexpected
    }

    func headDisposition() -> HeadDisposition {
        switch state {
        case .idle: return .serve
        case .closing: return .ignore
        default: return .unexpected
        }
    }

    mutating func startForwarding(_ exchange: Exchange, record: ProxyRequestRecord) {
        state = .forwarding(exchange, record, .awaitingHead)
    }

    /// A source decides asynchronously: hold input until `lookupResolved`.
    mutating func startLookup(_ record: ProxyRequestRecord) -> LookupID {
        lookups += 1
        let lookup = LookupID(value: lookups)
        state = .lookingUp(lookup, record)
        readsPaused = true
        return lookup
    }

    /// The lookup's plan is known: its record if the lookup is still the one in flight (the
    /// handler now performs the plan, which sets the next state), nil if the connection moved on.
    func lookupResolved(_ lookup: LookupID) -> ProxyRequestRecord? {
        guard case .lookingUp(let current, let record) = state, current == lookup else { return nil }
        return record
    }

    mutating func awaitConnectEnd(_ authority: Authority, record: ProxyRequestRecord) {
        state = .awaitingConnectEnd(authority, record)
    }

    /// A piece of request body: the exchange to pass it to, if one takes it.
    func bodyDestination() -> Exchange? {
        if case .forwarding(let exchange, _, _) = state { return exchange }
        return nil
    }

    enum EndAction {
        case endRequestBody(Exchange)
        /// The discarded body is over: the connection is idle again.
        case becomeIdle
        case switchToTunnel(Authority, ProxyRequestRecord)
        case none
    }

    mutating func requestEnded() -> EndAction {
        switch state {
        case .forwarding(let exchange, var record, let progress):
            record.requestEnded = true
            state = .forwarding(exchange, record, progress)
            return .endRequestBody(exchange)
        case .discardingRequestBody:
            return .becomeIdle
        case .awaitingConnectEnd(let authority, let record):
            state = .switched
            readsPaused = true   // until the tunnel's handlers are in place
            return .switchToTunnel(authority, record)
        case .idle, .lookingUp, .switched, .closing:
            return .none   // while looking up, input is queued and never reaches here
        }
    }

    // MARK: The origin's response

    /// The origin's response head for `exchange` (if it is the one in flight), held as
    /// `makeHead` turns it into the client's.
    mutating func originHead(_ exchange: Exchange, status: HTTPResponseStatus,
                             makeHead: (ProxyRequestRecord) -> HTTPResponseHead) {
        guard case .forwarding(let current, var record, _) = state, current === exchange else { return }
        record.status = status
        state = .forwarding(exchange, record, .headPending(makeHead(record)))
    }

    /// Body bytes from the origin: nil if `exchange` is not the one in flight; else the held head
    /// to write first, if any.
    mutating func originBody(_ exchange: Exchange, bytes: Int) -> HTTPResponseHead?? {
        guard case .forwarding(let current, var record, let progress) = state, current === exchange else { return nil }
        record.bodyBytes += bytes
        state = .forwarding(exchange, record, .streaming)
        if case .headPending(let head) = progress { return .some(head) }
        return .some(nil)
    }

    /// A burst of upstream reads ended: nil if `exchange` is not the one in flight; else the held
    /// head to write before flushing, if any.
    mutating func originReadComplete(_ exchange: Exchange) -> HTTPResponseHead?? {
        guard case .forwarding(let current, let record, let progress) = state, current === exchange else { return nil }
        guard case .headPending(let head) = progress else { return .some(nil) }
        state = .forwarding(exchange, record, .streaming)
        return .some(head)
    }

    /// The origin's response is complete: the held head (if any) and the record, or nil if
    /// `exchange` is not the one in flight.
    func originFinished(_ exchange: Exchange) -> (pendingHead: HTTPResponseHead?, record: ProxyRequestRecord)? {
        guard case .forwarding(let current, let record, let progress) = state, current === exchange else { return nil }
        if case .headPending(let head) = progress { return (head, record) }
        return (nil, record)
    }

    func isInFlight(_ exchange: Exchange) -> Bool {
        if case .forwarding(let current, _, _) = state { return current === exchange }
        return false
    }

    enum FailureAction {
        /// Bytes reached the client: cut the connection so a truncated body never looks complete.
        case abort(ProxyRequestRecord)
        /// Nothing reached the client yet: answer with an error.
        case respond(ProxyRequestRecord)
    }

    mutating func originFailed(_ exchange: Exchange) -> FailureAction? {
        guard case .forwarding(let current, let record, let progress) = state, current === exchange else { return nil }
        if case .streaming = progress {
            state = .closing
            return .abort(record)
        }
        return .respond(record)
    }

    // MARK: Finishing responses

    enum LocalCompletion {
        /// The request was read whole: finish the response (`finishResponse`).
        case finish
        /// Close once the response is flushed; the rest of the request is never read.
        case closeAfterFlush
        /// Read and drop the rest of the request body, then take the next request.
        case discardBody
    }

    /// A locally written response (head and body) went out for `record`.
    mutating func localResponseWritten(_ record: ProxyRequestRecord, close: Bool) -> LocalCompletion {
        if record.requestEnded { return .finish }
        if close {
            state = .closing
            return .closeAfterFlush
        }
        state = .discardingRequestBody(record)
        return .discardBody
    }

    enum IdleAction {
        case close
        /// Serve what is queued. `awaitNextHead`: no complete head is queued, so the head deadline
        /// starts over.
        case pump(awaitNextHead: Bool)
    }

    enum FinishAction {
        case closeAfterFlush
        case idle(IdleAction)
    }

    /// The response's end went out.
    mutating func responseFinished(close: Bool) -> FinishAction {
        if close || quiescing {
            state = .closing
            queue.removeAll()
            return .closeAfterFlush
        }
        return .idle(becameIdle())
    }

    /// The exchange is over and the connection stays: wait for the next request, serve queued ones.
    mutating func becameIdle() -> IdleAction {
        state = .idle
        if quiescing, queue.isEmpty {
            state = .closing
            return .close
        }
        return .pump(awaitNextHead: queuedRequests == 0)
    }

    // MARK: Connection events

    enum ClientClosedAction {
        /// Stop the exchange in flight and log its request.
        case cancel(Exchange, ProxyRequestRecord)
        /// A lookup was in flight: its result will be dropped; log its request.
        case abandonLookup(ProxyRequestRecord)
        case none
    }

    /// The client went away.
    mutating func clientClosed() -> ClientClosedAction {
        defer {
            state = .closing
            queue.removeAll()
        }
        switch state {
        case .forwarding(let exchange, let record, _): return .cancel(exchange, record)
        case .lookingUp(_, let record): return .abandonLookup(record)
        default: return .none
        }
    }

    /// The request-head deadline expired: whether to answer 408 (only when waiting for a head).
    func headDeadlineExpired() -> Bool {
        guard case .idle = state, queue.isEmpty else { return false }
        return true
    }

    enum IdleTimeoutAction {
        case close
        /// The origin is held back for a client that stopped reading: cancel it and close.
        case cancelAndClose(Exchange, ProxyRequestRecord)
        /// A slow origin has its own timeouts.
        case none
    }

    /// Nothing moved either way for the idle timeout.
    mutating func idleTimeout(outputWritable: Bool) -> IdleTimeoutAction {
        switch state {
        case .idle, .discardingRequestBody, .awaitingConnectEnd, .closing:
            // Also with requests queued, or a last response that never flushed: the client reads nothing.
            state = .closing
            return .close
        case .forwarding(let exchange, let record, _) where !outputWritable:
            state = .closing
            return .cancelAndClose(exchange, record)
        case .forwarding, .lookingUp, .switched:
            return .none   // lookups and slow origins have deadlines of their own
        }
    }

    /// Graceful shutdown: true when the connection is idle and closes now; a busy one closes when
    /// its response ends.
    mutating func quiesce() -> Bool {
        quiescing = true
        guard case .idle = state, queue.isEmpty else { return false }
        state = .closing
        return true
    }

    enum ProtocolErrorAction {
        /// Cancel the exchange and cut the connection (bytes already reached the client).
        case cancelAndAbort(Exchange, ProxyRequestRecord)
        /// Cancel the exchange, answer the error and close.
        case cancelAndRespond(Exchange, ProxyRequestRecord)
        /// Answer the error for this request and close.
        case respond(ProxyRequestRecord)
        /// Answer the error for a request whose head never arrived whole, and close.
        case respondUnparsed
        case close
    }

    /// The decoder rejected input, in the request now being handled. It reads nothing more, so
    /// every answer closes the connection.
    mutating func protocolError() -> ProtocolErrorAction {
        switch state {
        case .forwarding(let exchange, var record, let progress):
            if case .streaming = progress {
                state = .closing
                return .cancelAndAbort(exchange, record)
            }
            record.requestEnded = true   // nothing more will be read
            state = .forwarding(exchange, record, progress)
            return .cancelAndRespond(exchange, record)
        case .awaitingConnectEnd(let authority, var record):
            record.requestEnded = true
            state = .awaitingConnectEnd(authority, record)
            return .respond(record)
        case .lookingUp(_, var record):
            // Not reached (input is queued during a lookup); if it were, the lookup is dropped.
            record.requestEnded = true
            state = .closing
            return .respond(record)
        case .idle:
            return .respondUnparsed
        case .discardingRequestBody, .switched, .closing:
            state = .closing
            return .close
        }
    }

    /// The request body of the exchange in flight, if it is still arriving (the body timer's concern).
    func bodyStillArriving() -> (Exchange, ProxyRequestRecord, ResponseProgress)? {
        guard case .forwarding(let exchange, let record, let progress) = state, !record.requestEnded else { return nil }
        return (exchange, record, progress)
    }

    /// The connection closes for a reason of the handler's (an abort, a timeout).
    mutating func close() {
        state = .closing
    }
}
