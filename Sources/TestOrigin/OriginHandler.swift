import Crypto
import NIOCore
import NIOHTTP1

/// Serves the `TestOriginServer` routes for one connection.
final class OriginHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let stats: OriginStats
    private var head: HTTPRequestHead?
    private var uploadHasher: SHA256?
    private var uploadBytes = 0
    private var pump: BodyPump?
    /// Set by `/small?dropnext=1`: the connection's next request is met with a silent close.
    private var dropNextRequest = false

    init(stats: OriginStats) {
        self.stats = stats
    }

    func handlerAdded(context: ChannelHandlerContext) {
        pump = BodyPump(context: context, stats: stats)
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
        let isHead = head.method == .HEAD
        stats.requested(path, conditional: head.headers.contains(name: "If-None-Match") || head.headers.contains(name: "If-Modified-Since"),
                        plain: head.method == .GET && !head.headers.contains(name: "Range"))
        if dropNextRequest {
            context.close(promise: nil)
            return
        }
        switch (head.method, segments.first) {
        case (.GET, "small"), (.HEAD, "small"):
            dropNextRequest = query["dropnext"] != nil
            respond(.ok, body: "ok\n", context: context)
        case (.GET, "bytes"), (.HEAD, "bytes"):
            guard segments.count == 2, let count = Int64(segments[1]), count >= 0 else {
                respond(.badRequest, body: "bad size\n", context: context)
                return
            }
            let body = BodyPump.Body(offset: 0, count: count, rate: query["rate"].flatMap(Int.init))
            let headers = HTTPHeaders([("Content-Length", String(count)), ("Content-Type", "application/octet-stream"),
                                       ("Accept-Ranges", "none")])
            afterDelay(query, context: context) { [pump] in pump?.start(.ok, headers, body: body, isHead: isHead) }
        case (.GET, "object"), (.HEAD, "object"):
            guard segments.count == 2, let size = Int64(segments[1]), size >= 0 else {
                respond(.badRequest, body: "bad size\n", context: context)
                return
            }
            let plan = ObjectResponse.plan(size: size, request: head, query: query, faultKey: head.uri, stats: stats)
            afterDelay(query, context: context) { [pump] in
                if case .respond(let status, let headers, let body) = plan {
                    pump?.start(status, headers, body: body, isHead: isHead)
                }
            }
        case (.GET, "redirect"), (.HEAD, "redirect"):
            // /redirect/K/<rest>: K hops, then /<rest>, the query kept.
            guard segments.count >= 3, let hops = Int(segments[1]), hops > 0 else {
                respond(.badRequest, body: "bad redirect\n", context: context)
                return
            }
            let rest = segments.dropFirst(2).joined(separator: "/") + (parts.count > 1 ? "?" + parts[1] : "")
            let location = hops == 1 ? "/" + rest : "/redirect/\(hops - 1)/" + rest
            respond(.found, body: "", extra: [("Location", location)], context: context)
        case (.GET, "location"):
            // /location?to=<percent-encoded URL>: a 302 to exactly that Location, however wrong it is;
            // `cc=` adds a Cache-Control.
            var extra = [("Location", Self.percentDecoded(query["to"] ?? ""))]
            if let cacheControl = query["cc"] { extra.append(("Cache-Control", Self.percentDecoded(cacheControl))) }
            respond(.found, body: "", extra: extra, context: context)
        case (.POST, "object"), (.PUT, "object"), (.DELETE, "object"):
            // A change to an object (for invalidation tests); `location=` names a Location.
            var extra: [(String, String)] = []
            if let location = query["location"] { extra.append(("Location", Self.percentDecoded(location))) }
            respond(.ok, body: "changed\n", extra: extra, context: context)
        case (.POST, "upload"), (.PUT, "upload"):
            dropNextRequest = query["dropnext"] != nil
            let digest = uploadHasher.map { OriginContent.hex($0.finalize()) } ?? ""
            respond(.ok, body: "sha256=\(digest) bytes=\(uploadBytes)\n", context: context)
        case (.GET, "headers"):
            let text = head.headers.map { "\($0.name.lowercased()): \($0.value)" }.joined(separator: "\n") + "\n"
            respond(.ok, body: text, context: context)
        case (.GET, "stall"):
            break
        case (.GET, "badchunk"):
            // A response head followed by a chunk size that is not hex, in one write: written below
            // the HTTP encoder, which would never produce it.
            let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Origin: test\r\n\r\nzz\r\nbroken\r\n"
            if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) {
                encoder.writeAndFlush(NIOAny(ByteBuffer(string: raw)), promise: nil)
            }
        case (.GET, "status"), (.HEAD, "status"):
            let code = segments.count == 2 ? Int(segments[1]) ?? 500 : 500
            respond(HTTPResponseStatus(statusCode: code), body: query["body"] ?? "", context: context)
        default:
            respond(.notFound, body: "no such route\n", context: context)
        }
    }

    private func afterDelay(_ query: [String: String], context: ChannelHandlerContext, _ start: @escaping () -> Void) {
        let delay = query["delay"].flatMap(Int64.init) ?? 0
        if delay > 0 {
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay), start)
        } else {
            start()
        }
    }

    private func respond(_ status: HTTPResponseStatus, body: String, extra: [(String, String)] = [], context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Content-Length", String(body.utf8.count)), ("Content-Type", "text/plain")])
        headers.add(name: "X-Origin", value: "test")
        headers.add(contentsOf: extra)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty, head?.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump?.resume() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        pump?.cancel()
        context.fireChannelInactive()
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func parseQuery(_ query: Substring) -> [String: String] {
        var result: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { result[String(kv[0])] = String(kv[1]) }
        }
        return result
    }
}
