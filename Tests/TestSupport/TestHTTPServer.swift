import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One request as a test server sees it, body included (test traffic is small).
public struct TestHTTPRequest: Sendable {
    public let method: HTTPMethod
    /// The request target as sent, query included.
    public let uri: String
    public let headers: HTTPHeaders
    public let body: ByteBuffer

    /// The path without the query.
    public var path: Substring { uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

    /// The raw query string, or "" if there is none.
    public var query: Substring {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count > 1 ? parts[1] : ""
    }
}

/// What a test server answers. `.dropConnection` closes the connection without any response.
public enum TestHTTPResponse: Sendable {
    case reply(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer)
    case dropConnection

    public static func text(_ status: HTTPResponseStatus, _ text: String, contentType: String = "text/plain") -> TestHTTPResponse {
        .reply(status: status, headers: ["Content-Type": contentType], body: ByteBuffer(string: text))
    }
}

/// A keep-alive HTTP/1.1 server on 127.0.0.1 whose every answer comes from `handler`. The
/// building block of the fakes in the tests: credential endpoints, fault proxies, Elasticsearch.
public final class TestHTTPServer: Sendable {
    public typealias Handler = @Sendable (TestHTTPRequest) async -> TestHTTPResponse

    private let channel: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }

    private init(channel: any Channel, port: Int, connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>) {
        self.channel = channel
        self.port = port
        self.connections = connections
    }

    /// `port` 0 picks a free one; a given one lets a stopped server come back where it was.
    /// `tls`: serve HTTPS with this configuration.
    public static func start(port: Int = 0, maximumBodySize: Int = 64 << 20, tls: TLSConfiguration? = nil,
                             handler: @escaping Handler) async throws -> TestHTTPServer {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                connections.withLockedValue { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in connections.withLockedValue { _ = $0.removeValue(forKey: id) } }
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        TestHTTPServerHandler(maximumBodySize: maximumBodySize, handler: handler))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        guard let bound = channel.localAddress?.port else { throw HarnessError("test server has no port") }
        return TestHTTPServer(channel: channel, port: bound, connections: connections)
    }

    /// Stops listening and closes the open connections: the server is down, as a stopped
    /// process would be.
    public func stop() async {
        try? await channel.close()
        for connection in connections.withLockedValue({ Array($0.values) }) {
            try? await connection.close()
        }
    }
}

/// Collects one request, asks the handler, writes the answer; the pipeline handler NIO adds
/// holds back the next request until this answer is complete.
private final class TestHTTPServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let maximumBodySize: Int
    private let handler: TestHTTPServer.Handler
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(maximumBodySize: Int, handler: @escaping TestHTTPServer.Handler) {
        self.maximumBodySize = maximumBodySize
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            guard body.readableBytes + part.readableBytes <= maximumBodySize else {
                context.close(promise: nil)
                return
            }
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            self.head = nil
            let request = TestHTTPRequest(method: head.method, uri: head.uri, headers: head.headers, body: body)
            let handler = self.handler
            context.eventLoop.makeFutureWithTask { await handler(request) }
                .assumeIsolated()
                .whenSuccess { response in
                    self.write(response, keepAlive: head.isKeepAlive, isHead: head.method == .HEAD, context: context)
                }
        }
    }

    private func write(_ response: TestHTTPResponse, keepAlive: Bool, isHead: Bool, context: ChannelHandlerContext) {
        guard case .reply(let status, var headers, let body) = response else {
            context.close(promise: nil)
            return
        }
        headers.remove(name: "Transfer-Encoding")
        // A HEAD answer keeps the length of the body it does not carry; a 304 has none to give.
        if status == .notModified {
            headers.remove(name: "Content-Length")
        } else if !(isHead && headers.contains(name: "Content-Length")) {
            headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        }
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if body.readableBytes > 0, !isHead, status != .notModified { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
