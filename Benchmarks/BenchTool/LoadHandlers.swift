import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

final class LoadStats: Sendable {
    private let box = NIOLockedValueBox((requests: 0, errors: 0, bytes: 0))

    private let firstError = NIOLockedValueBox<String?>(nil)

    func record(ok: Bool, bytes: Int, error: Error? = nil) {
        box.withLockedValue {
            if ok { $0.requests += 1 } else { $0.errors += 1 }
            $0.bytes += bytes
        }
        if let error {
            firstError.withLockedValue { $0 = $0 ?? "\(error)" }
        }
    }

    /// The first error seen, so a failing run says why.
    var firstErrorDescription: String? { firstError.withLockedValue { $0 } }

    func snapshot() -> (Int, Int, Int) {
        box.withLockedValue { ($0.requests, $0.errors, $0.bytes) }
    }
}

/// Sends GETs one after another on one keep-alive connection until the deadline.
final class LoadHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let path: String
    private let deadline: NIODeadline
    private let stats: LoadStats
    private let done: EventLoopPromise<Void>
    private var status: HTTPResponseStatus = .ok
    private var bytes = 0

    init(host: String, path: String, deadline: NIODeadline, stats: LoadStats, done: EventLoopPromise<Void>) {
        self.host = host
        self.path = path
        self.deadline = deadline
        self.stats = stats
        self.done = done
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { send(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context: context)
        context.fireChannelActive()
    }

    private func send(context: ChannelHandlerContext) {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: HTTPHeaders([("Host", host)]))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            bytes = 0
        case .body(let buffer):
            bytes += buffer.readableBytes
        case .end:
            stats.record(ok: status == .ok, bytes: bytes)
            if NIODeadline.now() < deadline {
                send(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(())
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        stats.record(ok: false, bytes: 0, error: error)
        context.close(promise: nil)
    }
}

/// Sends CONNECT, waits for the 200, then installs TLS, the HTTP codec and the load handler.
final class ConnectHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let authority: String
    private let then: [ChannelHandler]
    private let load: LoadHandler
    private var received = ""

    init(authority: String, then: [ChannelHandler], load: LoadHandler) {
        self.authority = authority
        self.then = then
        self.load = load
    }

    func channelActive(context: ChannelHandlerContext) {
        let request = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readString(length: buffer.readableBytes) ?? ""
        guard received.contains("\r\n\r\n") else { return }
        guard received.hasPrefix("HTTP/1.1 200") else {
            context.close(promise: nil)
            return
        }
        do {
            let operations = context.pipeline.syncOperations
            for handler in then {
                try operations.addHandler(handler)
            }
            try operations.addHTTPClientHandlers()
            try operations.addHandler(load)
            operations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}
