import NIOCore
import NIOHTTP1

/// Writes one response on a connection, with the writer's backpressure: a body write returns
/// only when the channel can take more.
struct ResponseWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    let channel: any Channel
    let version: HTTPVersion
    let keepAlive: Bool
    let isHead: Bool

    func head(_ status: HTTPResponseStatus, _ headers: HTTPHeaders) async throws {
        var headers = headers
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
    }

    func body(_ buffer: ByteBuffer) async throws {
        guard !isHead, buffer.readableBytes > 0 else { return }
        try await outbound.write(.body(.byteBuffer(buffer)))
    }

    func end() async throws {
        try await outbound.write(.end(nil))
    }

    /// A complete small response with a plain-text body.
    func text(_ status: HTTPResponseStatus, _ text: String, headers extra: HTTPHeaders = [:]) async throws {
        var headers = extra
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: String(text.utf8.count))
        try await head(status, headers)
        try await body(ByteBuffer(string: text))
        try await end()
    }

    /// Ends the connection without finishing the response, so a client can never take a
    /// truncated body for a complete one.
    func abort() {
        channel.close(mode: .all, promise: nil)
    }
}
