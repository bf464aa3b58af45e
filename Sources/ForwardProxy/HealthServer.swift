import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Whether the proxy is accepting connections; `/health` reports it.
public final class Readiness: Sendable {
    public enum State: String, Sendable {
        case starting
        case ready
        case draining
    }

    private let box = NIOLockedValueBox(State.starting)
    private let reporter = NIOLockedValueBox<(@Sendable () -> [String])?>(nil)

    public init() {}

    /// Where `/health` learns what is degraded (the cache's metadata store or data plane being
    /// unreachable, say): one line each, none when all is well.
    public func reportDegradations(with report: @escaping @Sendable () -> [String]) {
        reporter.withLockedValue { $0 = report }
    }

    /// What is degraded right now.
    public var degradations: [String] { reporter.withLockedValue { $0 }?() ?? [] }

    public var state: State {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}

/// The health listener, on its own port: `GET /health` is 200 once the proxy accepts connections,
/// and 503 while starting or draining (so a load balancer stops sending new work on SIGTERM).
enum HealthServer {
    static func bind(host: String, port: Int, readiness: Readiness, group: any EventLoopGroup) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HealthHandler(readiness: readiness))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

final class HealthHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let readiness: Readiness
    private var keepAlive = true
    private var method = HTTPMethod.GET
    private var path = ""

    init(readiness: Readiness) {
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            method = head.method
            path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        case .body:
            break
        case .end:
            respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        let status: HTTPResponseStatus
        let text: String
        switch (method, path) {
        case (.GET, "/health"), (.HEAD, "/health"):
            // Degraded is still 200: requests are served (passed through), so a load balancer
            // must keep sending them; the body says what is wrong.
            let state = readiness.state
            let degradations = state == .ready ? readiness.degradations : []
            status = state == .ready ? .ok : .serviceUnavailable
            if state != .ready {
                text = "\(state.rawValue)\n"
            } else if degradations.isEmpty {
                text = "ok\n"
            } else {
                text = "degraded\n" + degradations.map { $0 + "\n" }.joined()
            }
        case (_, "/health"):
            status = .methodNotAllowed
            text = "method not allowed\n"
        default:
            status = .notFound
            text = "not found\n"
        }
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", String(text.utf8.count))])
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if method != .HEAD {
            var body = context.channel.allocator.buffer(capacity: text.utf8.count)
            body.writeString(text)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let flushed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            flushed.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
