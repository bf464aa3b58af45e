@testable import ForwardProxy
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import StorageCore
import Testing
import TestSupport

/// `StreamedResponse` on a real event loop, against a recording delegate: what reaches the handler,
/// in which hops, and that nothing is pulled while the client's output is backed up.
@Suite("Streamed responses (the data plane's bodies)")
struct StreamedResponseTests {
    /// Records the delegate calls; lives on the event loop, like the handler.
    final class Recorder: ResponseExchangeDelegate, @unchecked Sendable {
        let events = NIOLockedValueBox<[String]>([])
        /// Pause the exchange after this many body parts.
        var pauseAfter = Int.max
        var parts = 0
        let done: EventLoopPromise<Void>

        init(eventLoop: any EventLoop) { done = eventLoop.makePromise() }

        func exchange(_ exchange: any ResponseExchange, didReceiveHead head: HTTPResponseHead) {
            events.withLockedValue { $0.append("head \(head.status.code)") }
        }

        func exchange(_ exchange: any ResponseExchange, didReceiveBodyPart buffer: ByteBuffer) {
            parts += 1
            events.withLockedValue { $0.append("body \(buffer.readableBytes)") }
            if parts >= pauseAfter { exchange.pauseResponse() }
        }

        func exchangeDidCompleteRead(_ exchange: any ResponseExchange) {
            events.withLockedValue { $0.append("flush") }
        }

        func exchangeDidFinish(_ exchange: any ResponseExchange) {
            events.withLockedValue { $0.append("end") }
            done.succeed()
        }

        func exchange(_ exchange: any ResponseExchange, didFail error: any Error) {
            events.withLockedValue { $0.append("fail") }
            done.succeed()
        }

        func exchangeBecameWritable(_ exchange: any ResponseExchange) {}
    }

    /// A body of `count` pieces of `size` bytes that counts how many were pulled, optionally failing
    /// after `failAfter` pieces.
    final class CountingBody: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let pulls = NIOLockedValueBox(0)
        let count: Int
        let size: Int
        let failAfter: Int?

        init(count: Int, size: Int, failAfter: Int? = nil) {
            self.count = count
            self.size = size
            self.failAfter = failAfter
        }

        struct Broken: Error {}

        struct AsyncIterator: AsyncIteratorProtocol {
            let body: CountingBody
            mutating func next() async throws -> ByteBuffer? {
                let index = body.pulls.withLockedValue { pulls -> Int in
                    pulls += 1
                    return pulls - 1
                }
                if let failAfter = body.failAfter, index == failAfter { throw Broken() }
                guard index < body.count else { return nil }
                return ByteBuffer(repeating: 7, count: body.size)
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
    }

    static func head(length: Int?) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        if let length { headers.add(name: "Content-Length", value: "\(length)") }
        return HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
    }

    @Test("a small body whose length is known costs one hop: head, bytes and end together")
    func smallBodyInOneHop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = Recorder(eventLoop: loop)
        let body = CountingBody(count: 1, size: 300)
        let prepared = StreamedResponse(head: Self.head(length: 300), body: ByteStream(body), eventLoop: loop)
        _ = try await loop.submit { prepared.start(delegate: recorder) }.get()
        try await recorder.done.futureResult.get()
        #expect(recorder.events.withLockedValue { $0 } == ["head 200", "body 300", "end"])
        #expect(body.pulls.withLockedValue { $0 } == 1, "complete by its length: no further pull")
    }

    @Test("without a length every piece is flushed as it comes and the end follows")
    func unknownLength() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = Recorder(eventLoop: loop)
        let prepared = StreamedResponse(head: Self.head(length: nil), body: ByteStream(CountingBody(count: 2, size: 10)),
                                        eventLoop: loop)
        _ = try await loop.submit { prepared.start(delegate: recorder) }.get()
        try await recorder.done.futureResult.get()
        #expect(recorder.events.withLockedValue { $0 } == ["head 200", "body 10", "flush", "body 10", "flush", "end"])
    }

    @Test("nothing more is pulled while paused; resuming goes on to the end")
    func backpressure() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = Recorder(eventLoop: loop)
        recorder.pauseAfter = 2
        let body = CountingBody(count: 5, size: 1000)
        let prepared = StreamedResponse(head: Self.head(length: 5000), body: ByteStream(body), eventLoop: loop)
        let exchange = try await loop.submit { prepared.start(delegate: recorder) }.get()
        try await waitUntil(timeout: 5, "two pieces delivered") { recorder.events.withLockedValue { $0.count } >= 4 }
        try await Task.sleep(for: .milliseconds(200))   // room for a pull that must not happen
        #expect(body.pulls.withLockedValue { $0 } == 2, "paused after the second piece: no third pull")
        recorder.pauseAfter = .max
        try await loop.submit { exchange.resumeResponse() }.get()
        try await recorder.done.futureResult.get()
        #expect(recorder.events.withLockedValue { $0 }.last == "end")
        #expect(body.pulls.withLockedValue { $0 } == 5)
    }

    @Test("a body that fails reports the failure after what it delivered")
    func failure() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = Recorder(eventLoop: loop)
        let body = CountingBody(count: 3, size: 10, failAfter: 1)
        let prepared = StreamedResponse(head: Self.head(length: 30), body: ByteStream(body), eventLoop: loop)
        _ = try await loop.submit { prepared.start(delegate: recorder) }.get()
        try await recorder.done.futureResult.get()
        #expect(recorder.events.withLockedValue { $0 } == ["head 200", "body 10", "flush", "fail"])
    }

    @Test("a cancelled exchange pulls nothing more and calls back no more")
    func cancellation() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = Recorder(eventLoop: loop)
        recorder.pauseAfter = 1
        let body = CountingBody(count: 10, size: 10)
        let prepared = StreamedResponse(head: Self.head(length: 100), body: ByteStream(body), eventLoop: loop)
        let exchange = try await loop.submit { prepared.start(delegate: recorder) }.get()
        try await waitUntil(timeout: 5, "the first piece") { recorder.events.withLockedValue { $0.count } >= 2 }
        try await loop.submit { exchange.cancel() }.get()
        try await Task.sleep(for: .milliseconds(100))
        #expect(body.pulls.withLockedValue { $0 } == 1)
        #expect(!recorder.events.withLockedValue { $0 }.contains("end"))
        recorder.done.succeed()   // nothing else will
    }
}
