import NIOCore
import NIOHTTP1

/// Writes one response on a connection with strict backpressure: at most `maximumInFlight`
/// bytes are on their way to the socket, and a write past that returns only once the oldest
/// pending part has been written. (An async writer that only watches the channel's writability lets parts pile
/// up in the event loop's queue while a busy loop has not yet flipped it: 50 clients on two
/// cores once held 700 MiB that way.)
struct ResponseWriter: Sendable {
    /// Writing failed: the client went away.
    struct ClientGone: Error {
        let underlying: any Error
    }

    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    let channel: any Channel
    let version: HTTPVersion
    let keepAlive: Bool
    let isHead: Bool
    private let inFlight = InFlightWrites()
    static let maximumInFlight = 2 << 20

    init(outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, channel: any Channel, version: HTTPVersion,
         keepAlive: Bool, isHead: Bool) {
        self.outbound = outbound
        self.channel = channel
        self.version = version
        self.keepAlive = keepAlive
        self.isHead = isHead
    }

    func head(_ status: HTTPResponseStatus, _ headers: HTTPHeaders) async throws {
        var headers = headers
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        try await send(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
    }

    func body(_ buffer: ByteBuffer) async throws {
        guard !isHead, buffer.readableBytes > 0 else { return }
        try await send(.body(.byteBuffer(buffer)))
    }

    func end() async throws {
        try await send(.end(nil))
        do {
            for write in inFlight.drain() { try await write.get() }
        } catch {
            throw ClientGone(underlying: error)
        }
    }

    private func send(_ part: HTTPServerResponsePart) async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(part, promise: promise)
        let write = promise.futureResult
        var size = 0
        if case .body(.byteBuffer(let buffer)) = part { size = buffer.readableBytes }
        do {
            for oldest in inFlight.add(write, size: size, keepingBytes: Self.maximumInFlight) { try await oldest.get() }
        } catch {
            throw ClientGone(underlying: error)
        }
    }

    /// Ends the connection without finishing the response, so a client can never take a
    /// truncated body for a complete one.
    func abort() {
        channel.close(mode: .all, promise: nil)
    }
}

/// The writes of one response not yet known to be on the socket; used by one task at a time.
final class InFlightWrites: @unchecked Sendable {
    private var writes: [(future: EventLoopFuture<Void>, size: Int)] = []
    private var bytes = 0

    /// Adds `write`; returns the oldest writes to wait for while more than `limit` bytes
    /// would be pending (always keeping the newest).
    func add(_ write: EventLoopFuture<Void>, size: Int, keepingBytes limit: Int) -> [EventLoopFuture<Void>] {
        writes.append((write, size))
        bytes += size
        var wait: [EventLoopFuture<Void>] = []
        while bytes > limit, writes.count > 1 {
            let oldest = writes.removeFirst()
            bytes -= oldest.size
            wait.append(oldest.future)
        }
        return wait
    }

    func drain() -> [EventLoopFuture<Void>] {
        defer {
            writes.removeAll()
            bytes = 0
        }
        return writes.map(\.future)
    }
}
