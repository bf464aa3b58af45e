import CertificateAuthority
@testable import ForwardProxy
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

/// `ProxyHTTPHandler`'s input control and `RequestHeadDeadline`, in process on an `EmbeddedChannel`.
@Suite("Handler flow control")
struct HandlerFlowTests {
    private static func makeProxy(_ configure: (inout ProxyConfiguration) -> Void = { _ in }) throws -> ProxyContext {
        var configuration = ProxyConfiguration()
        configure(&configuration)
        let leaves = try LeafCertificateCache(
            authority: try CertificateAuthority.generate(commonName: "flow test CA", organization: "passsage tests"))
        return try ProxyContext(configuration: configuration, leaves: leaves,
                                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    private static func onboardingRequest() -> [HTTPServerRequestPart] {
        [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://mitm.it/",
                               headers: HTTPHeaders([("Host", "mitm.it")]))),
         .end(nil)]
    }

    private static func responseHeads(_ channel: EmbeddedChannel) throws -> Int {
        var heads = 0
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .head = part { heads += 1 }
        }
        return heads
    }

    @Test("while output is backed up no request starts; the queue is capped; the queued ones are answered, then the connection closes")
    func backedUpOutput() async throws {
        let proxy = try Self.makeProxy { $0.pipelinedRequestLimit = 8 }
        let handler = ProxyHTTPHandler(mode: .forwardListener, proxy: proxy, headDeadline: nil)
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()

        for part in Self.onboardingRequest() { try channel.writeInbound(part) }
        #expect(try Self.responseHeads(channel) == 1)

        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        for _ in 0..<1000 {
            for part in Self.onboardingRequest() { try channel.writeInbound(part) }
        }
        #expect(try Self.responseHeads(channel) == 0, "nothing is answered while the client does not read")
        #expect(handler.machine.queuedRequests == 8)
        #expect(handler.machine.queue.count == 16)
        #expect(handler.machine.queueOverflowed)
        #expect(handler.machine.readsPaused)

        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try Self.responseHeads(channel) == 8)
        #expect(!channel.isActive, "closed after the queued responses: the dropped requests are the client's to retry")
        await proxy.shutdownClients()
    }

    @Test("a pipelined request waits for the one before it, and reads resume when the queue drains")
    func pipelinedWithinLimit() async throws {
        let proxy = try Self.makeProxy()
        let handler = ProxyHTTPHandler(mode: .forwardListener, proxy: proxy, headDeadline: nil)
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.isWritable = false
        for _ in 0..<3 {
            for part in Self.onboardingRequest() { try channel.writeInbound(part) }
        }
        #expect(handler.machine.queuedRequests == 3)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try Self.responseHeads(channel) == 3)
        #expect(channel.isActive)
        #expect(!handler.machine.readsPaused)
        #expect(handler.machine.queue.isEmpty)
        _ = try channel.finish()
        await proxy.shutdownClients()
    }

    @Test("the header deadline starts with a request's first byte, stops at its head and restarts for the next")
    func headDeadline() throws {
        final class Recorder: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            var expired = 0
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
                if event is RequestHeadDeadline.Expired { expired += 1 }
            }
        }
        var deadline = RequestHeadDeadline(timeout: .seconds(30))
        var recorder = Recorder()
        var channel = EmbeddedChannel(handlers: [deadline, recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(recorder.expired == 0, "an idle connection is the idle timer's business")

        try channel.writeInbound(ByteBuffer(string: "G"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        try channel.writeInbound(ByteBuffer(string: "E"))   // trickling does not restart the clock
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(recorder.expired == 1)

        deadline = RequestHeadDeadline(timeout: .seconds(30))
        recorder = Recorder()
        channel = EmbeddedChannel(handlers: [deadline, recorder])
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        deadline.headReceived()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(recorder.expired == 0, "a complete head stops the clock")

        deadline.awaitNextHead()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        try channel.writeInbound(ByteBuffer(string: "P"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(recorder.expired == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(recorder.expired == 1, "the next request's clock starts with its first byte")
        _ = try? channel.finish()
    }
}
