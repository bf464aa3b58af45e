import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TestSupport

/// A local HTTP server in front of moto that answers chosen requests itself, with S3-style
/// errors or a dropped connection, and forwards the rest verbatim. The Host header is passed on
/// unchanged, so the client's signatures (made for the proxy's address) still verify at moto.
final class FaultProxy: Sendable {
    enum Fault: Sendable {
        /// An S3 `<Error>` document with this status and code (status 200 is the
        /// CompleteMultipartUpload case: an error inside a success).
        case error(HTTPResponseStatus, code: String)
        /// Close the connection without answering.
        case dropConnection
    }

    private struct Rule {
        let fault: Fault
        var remaining: Int
        let matches: @Sendable (TestHTTPRequest) -> Bool
    }

    private struct State {
        var rules: [Rule] = []
        var injected = 0
        var forwarded = 0
    }

    private let server: TestHTTPServer
    private let client: HTTPClient
    private let state: NIOLockedValueBox<State>

    var endpoint: String { server.url }
    /// Requests answered with a fault so far.
    var injectedCount: Int { state.withLockedValue { $0.injected } }
    /// Requests passed on to moto so far.
    var forwardedCount: Int { state.withLockedValue { $0.forwarded } }

    private init(server: TestHTTPServer, client: HTTPClient, state: NIOLockedValueBox<State>) {
        self.server = server
        self.client = client
        self.state = state
    }

    static func start(upstream: String) async throws -> FaultProxy {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let state = NIOLockedValueBox(State())
        let server = try await TestHTTPServer.start { request in
            let fault = state.withLockedValue { state -> Fault? in
                guard let index = state.rules.firstIndex(where: { $0.remaining > 0 && $0.matches(request) }) else {
                    state.forwarded += 1
                    return nil
                }
                state.rules[index].remaining -= 1
                state.injected += 1
                return state.rules[index].fault
            }
            if let fault { return answer(fault, to: request, serial: state.withLockedValue { $0.injected }) }
            return await forward(request, to: upstream, client: client)
        }
        return FaultProxy(server: server, client: client, state: state)
    }

    /// The next `count` requests for which `when` holds get `fault`. Rules apply in the order
    /// they were added.
    func inject(_ count: Int, _ fault: Fault, when: @escaping @Sendable (TestHTTPRequest) -> Bool = { _ in true }) {
        state.withLockedValue { $0.rules.append(Rule(fault: fault, remaining: count, matches: when)) }
    }

    /// Forgets the rules that are left.
    func clearFaults() {
        state.withLockedValue { $0.rules.removeAll() }
    }

    func stop() async {
        await server.stop()
        try? await client.shutdown()
    }

    private static func answer(_ fault: Fault, to request: TestHTTPRequest, serial: Int) -> TestHTTPResponse {
        guard case .error(let status, let code) = fault else { return .dropConnection }
        let requestID = "FAULT\(serial)"
        let document = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>\(code)</Code><Message>injected by the fault proxy</Message><RequestId>\(requestID)</RequestId><HostId>fault-proxy</HostId></Error>
            """
        // A HEAD answer has no body, as S3's own errors to HEAD do not.
        let body = request.method == .HEAD ? ByteBuffer() : ByteBuffer(string: document)
        return .reply(status: status, headers: ["Content-Type": "application/xml", "x-amz-request-id": requestID], body: body)
    }

    private static func forward(_ request: TestHTTPRequest, to upstream: String, client: HTTPClient) async -> TestHTTPResponse {
        var outgoing = HTTPClientRequest(url: upstream + request.uri)
        outgoing.method = request.method
        for (name, value) in request.headers where !["content-length", "transfer-encoding", "connection"].contains(name.lowercased()) {
            outgoing.headers.add(name: name, value: value)
        }
        if request.body.readableBytes > 0 || request.method == .PUT || request.method == .POST {
            outgoing.body = .bytes(request.body)
        }
        do {
            let response = try await client.execute(outgoing, timeout: .seconds(60))
            var headers = response.headers
            headers.remove(name: "Connection")
            let body = try await response.body.collect(upTo: 256 << 20)
            return .reply(status: response.status, headers: headers, body: body)
        } catch {
            return .text(.badGateway, "fault proxy could not reach moto: \(error)")
        }
    }
}
