import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// What the origin counts across connections, for tests to watch.
public final class OriginStats: Sendable {
    private struct State {
        var activeTransfers = 0
        var bytesSent: Int64 = 0
        var faults: [String: Int] = [:]
        var rangeRequests = 0
        var requests: [String: Int] = [:]
        var plainRequests: [String: Int] = [:]
        var conditionalRequests = 0
    }

    private let state = NIOLockedValueBox(State())

    /// Bodies being sent right now.
    public var activeTransfers: Int { state.withLockedValue { $0.activeTransfers } }
    /// Body bytes sent so far.
    public var bytesSent: Int64 { state.withLockedValue { $0.bytesSent } }
    /// Range requests answered so far.
    public var rangeRequests: Int { state.withLockedValue { $0.rangeRequests } }

    /// Requests for `path` (without its query) so far, any method.
    public func requests(_ path: String) -> Int { state.withLockedValue { $0.requests[path, default: 0] } }
    /// Requests that carried If-None-Match or If-Modified-Since.
    public var conditionalRequests: Int { state.withLockedValue { $0.conditionalRequests } }

    /// GET requests for `path` without a `Range` header: whole-object fetches.
    public func plainRequests(_ path: String) -> Int { state.withLockedValue { $0.plainRequests[path, default: 0] } }

    func requested(_ path: String, conditional: Bool, plain: Bool) {
        state.withLockedValue { state in
            state.requests[path, default: 0] += 1
            if plain { state.plainRequests[path, default: 0] += 1 }
            if conditional { state.conditionalRequests += 1 }
        }
    }

    func transferStarted() { state.withLockedValue { $0.activeTransfers += 1 } }
    func transferEnded() { state.withLockedValue { $0.activeTransfers -= 1 } }
    func sent(_ count: Int) { state.withLockedValue { $0.bytesSent += Int64(count) } }
    func rangeRequested() { state.withLockedValue { $0.rangeRequests += 1 } }

    /// True for calls number `from` ..< `from + limit` (counting from 0) with `key`.
    func takeFault(key: String, from: Int, limit: Int) -> Bool {
        state.withLockedValue { state in
            let call = state.faults[key, default: 0]
            state.faults[key] = call + 1
            return call >= from && call < from + limit
        }
    }
}

/// Sends one response body of object bytes with backpressure, optionally capped in rate, and
/// optionally stalling (connection kept open) or dropping the connection part-way.
final class BodyPump {
    struct Body {
        var offset: Int64
        var count: Int64
        var rate: Int?
        var stallAfter: Int64?
        var dropAfter: Int64?
        /// The content of object offset `o` is `OriginContent` at `contentBase + o`: other
        /// objects, other bytes (`/object/N?seed=K`).
        var contentBase: Int64 = 0
    }

    /// Zero-copy slices of this buffer make up every body.
    private static let blockBuffer = ByteBuffer(bytes: OriginContent.block)
    private static let sliceSize: Int64 = 256 * 1024

    private let context: ChannelHandlerContext
    private let stats: OriginStats
    private var body: Body?
    private var sent: Int64 = 0
    private var started = NIODeadline.now()
    private var timerPending = false

    init(context: ChannelHandlerContext, stats: OriginStats) {
        self.context = context
        self.stats = stats
    }

    func start(_ status: HTTPResponseStatus, _ headers: HTTPHeaders, body: Body, isHead: Bool) {
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if isHead || body.count == 0 {
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            return
        }
        self.body = body
        sent = 0
        started = .now()
        stats.transferStarted()
        resume()
    }

    func cancel() {
        if body != nil { stats.transferEnded() }
        body = nil
    }

    /// Writes slices while the channel is writable and the rate allows; resumes on writability
    /// or on a timer.
    func resume() {
        guard let body else { return }
        while sent < body.count, context.channel.isWritable {
            if let drop = body.dropAfter, sent >= drop {
                cancel()
                context.close(promise: nil)
                return
            }
            if let stall = body.stallAfter, sent >= stall {
                context.flush()
                return
            }
            var allowed = min(Self.sliceSize, body.count - sent)
            if let limit = [body.dropAfter, body.stallAfter].compactMap({ $0 }).min() { allowed = min(allowed, limit - sent) }
            if let rate = body.rate {
                let elapsed = Double((NIODeadline.now() - started).nanoseconds) / 1e9
                let budget = Int64(Double(rate) * elapsed) + Int64(min(rate / 10, Int(Self.sliceSize))) - sent
                // Wait for a worthwhile budget: dribbling tiny writes would never yield or flush.
                if budget < min(16 * 1024, body.count - sent) {
                    scheduleResume()
                    context.flush()
                    return
                }
                allowed = min(allowed, budget)
            }
            let (start, length) = OriginContent.slice(at: body.contentBase + body.offset + sent, limit: allowed)
            let slice = Self.blockBuffer.getSlice(at: start, length: length)!
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(slice))), promise: nil)
            sent += Int64(length)
            stats.sent(length)
        }
        if sent == body.count {
            self.body = nil
            stats.transferEnded()
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
        } else {
            context.flush()
        }
    }

    /// One timer at a time: writability changes also call resume().
    private func scheduleResume() {
        guard !timerPending else { return }
        timerPending = true
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(20)) { [self] in
            self.timerPending = false
            self.resume()
        }
    }
}
