import CertificateAuthority
@testable import ForwardProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

/// The response-source seam on an `EmbeddedChannel`: a source that decides asynchronously (as the
/// cache will) holds the connection's input, and whatever happens meanwhile (pipelined requests,
/// request bodies, the client leaving, a graceful shutdown) is handled in order.
@Suite("Handler: asynchronous response sources")
struct LookupFlowTests {
    /// Answers every URL request with a lookup the test completes by hand.
    final class HeldSource: ResponseSource {
        private let pending = NIOLockedValueBox<[EventLoopPromise<ResponsePlan>]>([])

        func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan? {
            guard case .url = request.target else { return nil }
            let promise = eventLoop.makePromise(of: ResponsePlan.self)
            pending.withLockedValue { $0.append(promise) }
            return .pending(promise.futureResult)
        }

        var waiting: Int { pending.withLockedValue { $0.count } }

        func resolveNext(_ plan: ResponsePlan) {
            let promise = pending.withLockedValue { $0.removeFirst() }
            promise.succeed(plan)
        }
    }

    /// An exchange the test drives: it records the request body and calls the delegate on demand.
    final class ScriptedExchange: ResponseExchange {
        var acceptsRequestBody = true
        var body = ByteBuffer()
        var ended = false
        var cancelled = false
        weak var delegate: (any ResponseExchangeDelegate)?

        func writeBody(_ buffer: ByteBuffer) { body.writeImmutableBuffer(buffer) }
        func end() { ended = true }
        func pauseResponse() {}
        func resumeResponse() {}
        func cancel() { cancelled = true }

        func respond(status: HTTPResponseStatus, body text: String) {
            guard let delegate else { return }
            delegate.exchange(self, didReceiveHead: HTTPResponseHead(
                version: .http1_1, status: status, headers: HTTPHeaders([("Content-Length", "\(text.utf8.count)")])))
            delegate.exchange(self, didReceiveBodyPart: ByteBuffer(string: text))
            delegate.exchangeDidCompleteRead(self)
            delegate.exchangeDidFinish(self)
        }
    }

    final class ScriptedPreparation: PreparedExchange, @unchecked Sendable {
        let exchange = ScriptedExchange()
        private(set) var discarded = false

        func start(delegate: any ResponseExchangeDelegate) -> any ResponseExchange {
            exchange.delegate = delegate
            return exchange
        }

        func discard() { discarded = true }
    }

    struct Harness {
        let source = HeldSource()
        let proxy: ProxyContext
        let handler: ProxyHTTPHandler
        let channel: EmbeddedChannel

        init() throws {
            let leaves = try LeafCertificateCache(
                authority: try CertificateAuthority.generate(commonName: "lookup test CA", organization: "passsage tests"))
            proxy = try ProxyContext(configuration: ProxyConfiguration(), leaves: leaves,
                                     eventLoopGroup: MultiThreadedEventLoopGroup.singleton, cache: { [source] _ in source },
                                     logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            handler = ProxyHTTPHandler(mode: .forwardListener, proxy: proxy, headDeadline: nil)
            channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ url: String, method: HTTPMethod = .GET, body: String? = nil) throws {
            var headers = HTTPHeaders([("Host", "example.test")])
            if let body { headers.add(name: "Content-Length", value: "\(body.utf8.count)") }
            try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: url,
                                                                                headers: headers)))
            if let body { try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: body))) }
            try channel.writeInbound(HTTPServerRequestPart.end(nil))
        }

        /// The responses written so far: status and body text of each.
        func responses() throws -> [(HTTPResponseStatus, String)] {
            var answers: [(HTTPResponseStatus, String)] = []
            var status: HTTPResponseStatus?
            var text = ""
            while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
                switch part {
                case .head(let head): status = head.status; text = ""
                case .body(.byteBuffer(let buffer)): text += String(buffer: buffer)
                case .body: break
                case .end: if let status { answers.append((status, text)) }; status = nil
                }
            }
            return answers
        }

        static func reply(_ text: String) -> ResponsePlan {
            .local(LocalReply(status: .ok, headers: HTTPHeaders([("Content-Type", "text/plain")]), body: Array(text.utf8)))
        }
    }

    @Test("pipelined requests wait behind a lookup, in order, with reads held, and each gets its own lookup")
    func pipeliningBehindALookup() async throws {
        let harness = try Harness()
        try harness.send("http://example.test/a")
        try harness.send("http://example.test/b")
        #expect(harness.source.waiting == 1, "the second request waits for the first")
        #expect(harness.handler.machine.readsPaused)
        #expect(try harness.responses().isEmpty)

        harness.source.resolveNext(Harness.reply("first"))
        #expect(try harness.responses().map(\.1) == ["first"])
        #expect(harness.source.waiting == 1, "the queued request is looked up in its turn")
        harness.source.resolveNext(Harness.reply("second"))
        #expect(try harness.responses().map(\.1) == ["second"])
        #expect(!harness.handler.machine.readsPaused, "reads resume once nothing is queued")
        #expect(harness.channel.isActive)
        _ = try harness.channel.finish()
        await harness.proxy.shutdownClients()
    }

    @Test("a request body that arrives during the lookup reaches the exchange the lookup chose, then its response")
    func bodyHeldDuringTheLookup() async throws {
        let harness = try Harness()
        try harness.send("http://example.test/upload", method: .PUT, body: "payload")
        let prepared = ScriptedPreparation()
        harness.source.resolveNext(.exchange(prepared))
        #expect(String(buffer: prepared.exchange.body) == "payload")
        #expect(prepared.exchange.ended)
        prepared.exchange.respond(status: .created, body: "stored")
        let answers = try harness.responses()
        #expect(answers.map(\.0) == [.created] && answers.map(\.1) == ["stored"])
        _ = try harness.channel.finish()
        await harness.proxy.shutdownClients()
    }

    @Test("a client that leaves during a lookup: the late plan is discarded and nothing is written")
    func clientClosesDuringALookup() async throws {
        let harness = try Harness()
        try harness.send("http://example.test/a")
        _ = try harness.channel.finish()   // the client goes away
        let prepared = ScriptedPreparation()
        harness.source.resolveNext(.exchange(prepared))
        #expect(prepared.discarded, "the prepared exchange is released, never started")
        #expect(prepared.exchange.delegate == nil)
        await harness.proxy.shutdownClients()
    }

    @Test("a graceful shutdown during a lookup lets its response out, then closes")
    func quiescingDuringALookup() async throws {
        let harness = try Harness()
        try harness.send("http://example.test/a")
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(harness.channel.isActive, "busy: not closed yet")
        harness.source.resolveNext(Harness.reply("last"))
        #expect(try harness.responses().map(\.1) == ["last"])
        #expect(!harness.channel.isActive)
        await harness.proxy.shutdownClients()
    }

    @Test("the local site answers mitm.it before the cache is asked")
    func localSiteComesFirst() async throws {
        let harness = try Harness()
        try harness.send("http://mitm.it/")   // the local site answers without asking the cache
        #expect(try harness.responses().map(\.0) == [.ok])
        #expect(harness.source.waiting == 0)
        _ = try harness.channel.finish()
        await harness.proxy.shutdownClients()
    }
}
