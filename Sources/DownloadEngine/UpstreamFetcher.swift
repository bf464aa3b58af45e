import AsyncHTTPClient
import DownloadPlanning
import NIOCore
import NIOHTTP1
import NIOPosix
import StorageCore

/// One request to an origin, with its per-request options.
public struct UpstreamRequest: Sendable {
    public var url: String
    public var method: HTTPMethod
    public var headers: HTTPHeaders
    public var tlsSkipVerify: Bool
    public var connectTimeout: Duration
    /// The longest silence while a response is expected; nil for none.
    public var readTimeout: Duration?
    public var followRedirects: Bool
    public var maximumRedirects: Int

    public init(url: String, method: HTTPMethod = .GET, headers: HTTPHeaders = [:], tlsSkipVerify: Bool = false,
                connectTimeout: Duration = .seconds(30), readTimeout: Duration? = .seconds(300),
                followRedirects: Bool = false, maximumRedirects: Int = 10) {
        self.url = url
        self.method = method
        self.headers = headers
        self.tlsSkipVerify = tlsSkipVerify
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.followRedirects = followRedirects
        self.maximumRedirects = maximumRedirects
    }
}

/// An upstream response whose body has not been read yet.
public struct UpstreamResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    /// Pulled straight from the connection: nothing is read until the consumer asks.
    public var body: ByteStream
    /// The URL that answered, after any redirects that were followed.
    public var url: String
    /// Redirects followed to get here.
    public var redirects: Int
}

/// Sends upstream requests through the client pool, following redirects when asked and turning
/// failures into `UpstreamError`s.
public struct UpstreamFetcher: Sendable {
    public let clients: UpstreamClientPool

    public init(clients: UpstreamClientPool) {
        self.clients = clients
    }

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        var current = request
        var hops = 0
        while true {
            let response = try await sendOnce(current)
            guard current.followRedirects, Self.isRedirect(response.status),
                  let location = response.headers.first(name: "Location"),
                  let next = RedirectLocation.resolve(location, against: current.url) else {
                return UpstreamResponse(status: response.status, headers: response.headers, body: ByteStream(erasing: response.body),
                                        url: current.url, redirects: hops)
            }
            hops += 1
            guard hops <= current.maximumRedirects else {
                throw UpstreamError(.tooManyRedirects, url: request.url, message: "more than \(current.maximumRedirects) redirects")
            }
            // Credentials do not follow a redirect to another origin (as curl does).
            if RedirectLocation.origin(of: next) != RedirectLocation.origin(of: current.url) {
                current.headers.remove(name: "Authorization")
                current.headers.remove(name: "Cookie")
            }
            current.url = next
        }
    }

    private func sendOnce(_ request: UpstreamRequest) async throws -> HTTPClientResponse {
        let client = clients.client(tlsSkipVerify: request.tlsSkipVerify, connectTimeout: request.connectTimeout,
                                    readTimeout: request.readTimeout)
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = request.method
        outgoing.headers = request.headers
        do {
            return try await client.execute(outgoing, deadline: .distantFuture)
        } catch where Self.isStaleConnection(error) && (request.method == .GET || request.method == .HEAD) {
            // A pooled connection the origin had closed: one immediate retry, on a new one
            // (reference §3.4). Nothing of the response had arrived, so nothing is repeated.
            do {
                return try await client.execute(outgoing, deadline: .distantFuture)
            } catch {
                throw UpstreamError.classify(error, url: request.url, connectTimeout: request.connectTimeout, readTimeout: request.readTimeout)
            }
        } catch {
            throw UpstreamError.classify(error, url: request.url, connectTimeout: request.connectTimeout, readTimeout: request.readTimeout)
        }
    }

    /// The errors a keep-alive connection closed by the origin while idle shows before any
    /// response byte arrives.
    static func isStaleConnection(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .remoteConnectionClosed || error == .writeAfterRequestSent
        }
        if let error = error as? IOError { return error.errnoCode == ECONNRESET || error.errnoCode == EPIPE }
        return false
    }

    static func isRedirect(_ status: HTTPResponseStatus) -> Bool {
        [301, 302, 303, 307, 308].contains(status.code)
    }
}
