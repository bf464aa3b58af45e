import Crypto
import NIOCore
import NIOHTTP1

/// Serves the `TestOriginServer` routes for one connection.
final class OriginHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Zero-copy slices of this buffer make up every `/bytes` response.
    private static let blockBuffer = ByteBuffer(bytes: OriginContent.block)
    private static let sliceSize = 256 * 1024

    private var head: HTTPRequestHead?
    private var uploadHasher: SHA256?
    private var uploadBytes = 0
    private var stream: ByteStream?
    private var context: ChannelHandlerContext?
    private var timerPending = false

    private struct ByteStream {
        var remaining: Int
        var offset: Int
        let bytesPerSecond: Int?
        let started: NIODeadline
        var sent = 0
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            if head.method == .POST || head.method == .PUT {
                uploadHasher = SHA256()
                uploadBytes = 0
            }
        case .body(let buffer):
            buffer.withUnsafeReadableBytes { uploadHasher?.update(bufferPointer: $0) }
            uploadBytes += buffer.readableBytes
        case .end:
            guard let head else { return }
            route(head, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        let query = parts.count > 1 ? Self.parseQuery(parts[1]) : [:]
        let segments = path.split(separator: "/").map(String.init)
        switch (head.method, segments.first) {
        case (.GET, "small"), (.HEAD, "small"):
            respond(.ok, body: "ok\n", context: context)
        case (.GET, "bytes"), (.HEAD, "bytes"):
            guard segments.count == 2, let count = Int(segments[1]), count >= 0 else {
                respond(.badRequest, body: "bad size\n", context: context)
                return
            }
            let delay = query["delay"].flatMap(Int64.init) ?? 0
            let rate = query["rate"].flatMap(Int.init)
            let start = { [self] in
                self.startBytes(count: count, rate: rate, isHead: head.method == .HEAD)
            }
            if delay > 0 {
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay), start)
            } else {
                start()
            }
        case (.POST, "upload"), (.PUT, "upload"):
            let digest = uploadHasher.map { OriginContent.hex($0.finalize()) } ?? ""
            respond(.ok, body: "sha256=\(digest) bytes=\(uploadBytes)\n", context: context)
        case (.GET, "headers"):
            let text = head.headers.map { "\($0.name.lowercased()): \($0.value)" }.joined(separator: "\n") + "\n"
            respond(.ok, body: text, context: context)
        case (.GET, "stall"):
            break
        case (.GET, "status"):
            let code = segments.count == 2 ? Int(segments[1]) ?? 500 : 500
            respond(HTTPResponseStatus(statusCode: code), body: "", context: context)
        default:
            respond(.notFound, body: "no such route\n", context: context)
        }
    }

    private func respond(_ status: HTTPResponseStatus, body: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Content-Length", String(body.utf8.count)), ("Content-Type", "text/plain")])
        headers.add(name: "X-Origin", value: "test")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty, head?.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func startBytes(count: Int, rate: Int?, isHead: Bool) {
        guard let context else { return }
        let headers = HTTPHeaders([
            ("Content-Length", String(count)), ("Content-Type", "application/octet-stream"), ("Accept-Ranges", "none"),
        ])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        if isHead {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        stream = ByteStream(remaining: count, offset: 0, bytesPerSecond: rate, started: .now())
        pump()
    }

    /// Writes slices while the channel is writable and the rate allows; resumes on writability or
    /// on a timer.
    private func pump() {
        guard let context, var current = stream else { return }
        while current.remaining > 0, context.channel.isWritable {
            var allowed = Self.sliceSize
            if let rate = current.bytesPerSecond {
                let elapsed = Double((NIODeadline.now() - current.started).nanoseconds) / 1e9
                let budget = Int(Double(rate) * elapsed) + min(rate / 10, Self.sliceSize) - current.sent
                // Wait for a worthwhile budget: dribbling tiny writes would never yield or flush.
                if budget < min(16 * 1024, current.remaining) {
                    stream = current
                    // One timer at a time: writability changes also call pump().
                    if !timerPending {
                        timerPending = true
                        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(20)) { [self] in
                            self.timerPending = false
                            self.pump()
                        }
                    }
                    context.flush()
                    return
                }
                allowed = min(allowed, budget)
            }
            let n = min(allowed, current.remaining, OriginContent.blockSize - current.offset)
            let slice = Self.blockBuffer.getSlice(at: current.offset, length: n)!
            context.write(wrapOutboundOut(.body(.byteBuffer(slice))), promise: nil)
            current.remaining -= n
            current.sent += n
            current.offset = (current.offset + n) % OriginContent.blockSize
        }
        if current.remaining == 0 {
            stream = nil
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            stream = current
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, stream != nil {
            pump()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream = nil
        context.fireChannelInactive()
    }

    private static func parseQuery(_ query: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { result[String(kv[0])] = String(kv[1]) }
        }
        return result
    }
}
