import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import StorageCore

/// A response whose body is a pulled `ByteStream` (the data plane's hits and fetches), prepared by
/// a source and driven by the connection handler like any exchange.
///
/// Each piece of the body costs one hop to the event loop, and nothing is pulled while the
/// client's output is backed up. The head rides with the first piece, and the end with the last
/// one when `Content-Length` shows it complete, so a small hit costs a single hop.
public struct StreamedResponse: PreparedExchange {
    let head: HTTPResponseHead
    let body: ByteStream
    let eventLoop: any EventLoop

    public init(head: HTTPResponseHead, body: ByteStream, eventLoop: any EventLoop) {
        self.head = head
        self.body = body
        self.eventLoop = eventLoop
    }

    public func start(delegate: any ResponseExchangeDelegate) -> any ResponseExchange {
        let exchange = StreamedResponseExchange(head: head, eventLoop: eventLoop, delegate: delegate)
        exchange.startPumping(body)
        return exchange
    }

    /// Dropping the body releases what it holds.
    public func discard() {}
}

/// Lets the pump through while the client takes output; closed for good by `cancel`.
final class FlowGate: Sendable {
    private struct State {
        var paused = false
        var cancelled = false
        var waiter: CheckedContinuation<Void, any Error>?
    }

    private let state = NIOLockedValueBox(State())

    func pause() {
        state.withLockedValue { $0.paused = true }
    }

    func resume() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            state.paused = false
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func cancel() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            state.cancelled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: CancellationError())
    }

    /// Returns once the gate is open; throws once it is cancelled.
    func waitUntilOpen() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLockedValue { state -> Result<Void, any Error>? in
                if state.cancelled { return .failure(CancellationError()) }
                if !state.paused { return .success(()) }
                state.waiter = continuation
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }
}

/// The running side of a `StreamedResponse`, confined to the connection's event loop (the pump
/// task reaches it only through hops).
final class StreamedResponseExchange: ResponseExchange {
    private let head: HTTPResponseHead
    private let eventLoop: any EventLoop
    private weak var delegate: (any ResponseExchangeDelegate)?
    private let gate = FlowGate()
    private var pump: Task<Void, Never>?
    private var finished = false

    init(head: HTTPResponseHead, eventLoop: any EventLoop, delegate: any ResponseExchangeDelegate) {
        self.head = head
        self.eventLoop = eventLoop
        self.delegate = delegate
    }

    // The request body of a cached GET has nowhere to go.
    var acceptsRequestBody: Bool { true }
    func writeBody(_ buffer: ByteBuffer) {}
    func end() {}

    func pauseResponse() { gate.pause() }
    func resumeResponse() { gate.resume() }

    func cancel() {
        finished = true
        gate.cancel()
        pump?.cancel()
        pump = nil
    }

    fileprivate func startPumping(_ body: ByteStream) {
        let expectedLength = head.headers.first(name: "content-length").flatMap { Int64($0) }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        let gate = self.gate
        pump = Task {
            var iterator = body.makeAsyncIterator()
            var sent: Int64 = 0
            var first = true
            do {
                while true {
                    let piece = try await iterator.next()
                    sent += Int64(piece?.readableBytes ?? 0)
                    let complete = piece == nil || expectedLength == sent
                    let withHead = first
                    first = false
                    try await eventLoop.submit {
                        bound.value.deliver(head: withHead, piece: piece, end: complete)
                    }.get()
                    if complete { return }
                    try await gate.waitUntilOpen()
                }
            } catch {
                eventLoop.execute { bound.value.fail(error) }
            }
        }
    }

    private func deliver(head withHead: Bool, piece: ByteBuffer?, end: Bool) {
        guard !finished, let delegate else { return }
        if withHead { delegate.exchange(self, didReceiveHead: head) }
        if let piece, piece.readableBytes > 0 { delegate.exchange(self, didReceiveBodyPart: piece) }
        if end {
            finished = true
            pump = nil
            delegate.exchangeDidFinish(self)
        } else {
            delegate.exchangeDidCompleteRead(self)
        }
    }

    private func fail(_ error: any Error) {
        guard !finished, let delegate else { return }
        finished = true
        pump = nil
        delegate.exchange(self, didFail: error)
    }
}
