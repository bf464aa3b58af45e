import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// The async-http-client delegate for one forwarded request. It relays callbacks to the
/// connection's `ProxyHTTPHandler`; all callbacks run on that connection's event loop
/// (`EventLoopPreference.delegate(on:)`), so the unchecked `Sendable` is confined to one thread.
final class UpstreamExchange: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Void

    let eventLoop: EventLoop
    private let handler: NIOLoopBound<ProxyHTTPHandler>
    /// Set right after `execute`; used to cancel the upstream request when the client goes away.
    var task: HTTPClient.Task<Void>?
    let requestBody: RequestBodyStream?

    init(handler: ProxyHTTPHandler, eventLoop: EventLoop, requestBody: RequestBodyStream?) {
        self.eventLoop = eventLoop
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        self.requestBody = requestBody
    }

    func cancel() {
        task?.cancel()
        requestBody?.fail(ChannelError.ioOnClosedChannel)
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        handler.value.upstreamDidReceiveHead(self, head)
        return eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        handler.value.upstreamDidReceiveBody(self, buffer)
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: Error) {
        handler.value.upstreamDidFail(self, error)
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        handler.value.upstreamDidFinish(self)
    }
}

/// Streams a client's request body to async-http-client with backpressure: client reads pause
/// while too many parts wait for the upstream connection, and resume as they drain.
final class RequestBodyStream: @unchecked Sendable {
    static let pauseThreshold = 8
    static let resumeThreshold = 2

    let eventLoop: EventLoop
    let length: Int64?
    private var queued = CircularBuffer<ByteBuffer>()
    private var writer: HTTPClient.Body.StreamWriter?
    private var pendingWrites = 0
    private var ended = false
    private var finished = false
    private let done: EventLoopPromise<Void>
    /// Called when the backlog drained enough for the client to send more.
    var onDrained: (() -> Void)?

    init(eventLoop: EventLoop, length: Int64?) {
        self.eventLoop = eventLoop
        self.length = length
        self.done = eventLoop.makePromise()
    }

    var backlog: Int { queued.count + pendingWrites }
    var shouldPauseClient: Bool { backlog >= Self.pauseThreshold }

    /// The body for `HTTPClient.Request`; async-http-client calls it once the connection is ready.
    var body: HTTPClient.Body {
        .stream(contentLength: length) { [self] writer in
            self.eventLoop.execute { self.attach(writer) }
            return self.done.futureResult
        }
    }

    func append(_ buffer: ByteBuffer) {
        eventLoop.preconditionInEventLoop()
        guard !finished else { return }
        if let writer {
            send(buffer, via: writer)
        } else {
            queued.append(buffer)
        }
    }

    func end() {
        eventLoop.preconditionInEventLoop()
        ended = true
        completeIfDone()
    }

    func fail(_ error: Error) {
        guard !finished else { return }
        finished = true
        queued.removeAll()
        done.fail(error)
    }

    private func attach(_ writer: HTTPClient.Body.StreamWriter) {
        guard !finished else { return }
        self.writer = writer
        while let buffer = queued.popFirst() {
            send(buffer, via: writer)
        }
        completeIfDone()
    }

    private func send(_ buffer: ByteBuffer, via writer: HTTPClient.Body.StreamWriter) {
        pendingWrites += 1
        writer.write(.byteBuffer(buffer)).hop(to: eventLoop).whenComplete { [self] result in
            self.pendingWrites -= 1
            switch result {
            case .success:
                if self.backlog <= Self.resumeThreshold { self.onDrained?() }
                self.completeIfDone()
            case .failure(let error):
                self.fail(error)
            }
        }
    }

    private func completeIfDone() {
        guard ended, !finished, writer != nil, queued.isEmpty, pendingWrites == 0 else { return }
        finished = true
        done.succeed(())
    }
}
