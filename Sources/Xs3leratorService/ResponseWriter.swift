import NIOCore
import NIOHTTP1

/// Writes one response on a connection, with the writer's backpressure: a body write returns
/// only when the channel can take more.
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
    }

    private func send(_ part: HTTPServerResponsePart) async throws {
        do {
            try await outbound.write(part)
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
