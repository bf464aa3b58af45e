#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Counts the client connections being served, across event loops, against a limit; a connection
/// past it is answered 503 and closed (`ConnectionRefuser`) instead of taking descriptors the
/// connections already admitted need for their upstreams.
final class ClientConnectionLimit: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var count: Int { open.load(ordering: .relaxed) }

    func tryAcquire() -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        open.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func release() {
        open.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// Answers a connection past the limit with a 503 and closes it, without reading its request.
final class ConnectionRefuser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    static let response: StaticString =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 41\r\nRetry-After: 1\r\nConnection: close\r\n\r\nthe proxy is at its connection limit now\n"

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 160)
        buffer.writeStaticString(Self.response)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// A warning that may repeat many times a second under attack: logged at most once per
/// `interval`, with the number of occurrences left out in between.
final class RateLimitedWarning: Sendable {
    private let logger: Logger
    private let message: String
    private let interval: TimeAmount
    private let state = NIOLockedValueBox<(last: NIODeadline?, suppressed: Int)>((nil, 0))

    init(logger: Logger, message: String, interval: TimeAmount = .seconds(10)) {
        self.logger = logger
        self.message = message
        self.interval = interval
    }

    func record(_ detail: @autoclosure () -> String) {
        let now = NIODeadline.now()
        let suppressed: Int? = state.withLockedValue { state in
            if let last = state.last, now - last < interval {
                state.suppressed += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.suppressed
        }
        guard let suppressed else { return }
        logger.warning("\(message): \(detail())", metadata: suppressed > 0 ? ["suppressed_since_last": "\(suppressed)"] : [:])
    }
}

/// Pauses accepting for a moment when accept fails for want of descriptors or memory. The
/// listener stays readable while connections wait in the backlog, so retrying at once is a busy
/// loop; and NIO's `AcceptBackoffHandler` cannot stop it when no accept in the read burst
/// succeeded (the channel keeps its read registered), so reading is switched off outright.
final class AcceptThrottle: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    private let pause: TimeAmount
    private let warning: RateLimitedWarning
    private var resumption: Scheduled<Void>?

    init(pause: TimeAmount = .milliseconds(250), warning: RateLimitedWarning) {
        self.pause = pause
        self.warning = warning
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let ioError = error as? IOError, Self.isResourceShortage(ioError.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        warning.record("\(ioError)")
        guard resumption == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resumption = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            self.resumption = nil
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resumption?.cancel()
        resumption = nil
        context.fireChannelInactive()
    }

    static func isResourceShortage(_ code: Int32) -> Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }
}
