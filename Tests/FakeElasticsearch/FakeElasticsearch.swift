import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TestSupport

/// A small stand-in for an Elasticsearch node on 127.0.0.1, for the metadata-store contract
/// tests only. It answers the calls the metadata store makes (create index, `_mget`, `_update`,
/// `_bulk`, `DELETE _doc`, `_cluster/health`) in the response shapes Elasticsearch documents,
/// including its errors: `found:false`, `document_missing_exception`, `index_not_found_exception`,
/// `resource_already_exists_exception`, 409 version conflicts, per-item `_bulk` errors, 401.
///
/// Index auto-creation is off, as the original's deployments configure it: writes to a missing
/// index fail with `index_not_found_exception`. JSON is handled with Foundation's
/// `JSONSerialization`, independently of the client's own JSON type.
public final class FakeElasticsearch: Sendable {
    public enum Authentication: Sendable {
        case none
        case basic(username: String, password: String)
        case apiKey(String)
    }

    private let server: NIOLockedValueBox<TestHTTPServer?>
    private let cluster: FakeCluster
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }

    private init(server: TestHTTPServer, cluster: FakeCluster) {
        self.server = NIOLockedValueBox(server)
        self.port = server.port
        self.cluster = cluster
    }

    public static func start(authentication: Authentication = .none) async throws -> FakeElasticsearch {
        let cluster = FakeCluster(authentication: authentication)
        let server = try await TestHTTPServer.start { request in cluster.answer(request) }
        return FakeElasticsearch(server: server, cluster: cluster)
    }

    /// Stops answering and closes its connections, as a node that went down; `restart` brings
    /// it back on the same port with the same documents.
    public func stop() async {
        await server.withLockedValue { server in defer { server = nil }; return server }?.stop()
    }

    public func restart() async throws {
        let cluster = self.cluster
        let started = try await TestHTTPServer.start(port: port) { request in cluster.answer(request) }
        server.withLockedValue { $0 = started }
    }

    /// The next `count` calls named `call` fail with `status` and an error of `type`. Calls are
    /// `create index`, `_mget`, `_update`, `_bulk`, `delete`, `health`; `bulk item` fails single
    /// items of a `_bulk` (only those for `id` if given) while the rest apply.
    public func injectFailures(_ count: Int, call: String, id: String? = nil, status: Int, type: String) {
        cluster.withLock { $0.faults.append(Fault(call: call, id: id, remaining: count, status: status, type: type)) }
    }

    /// What `_cluster/health` reports.
    public func setClusterStatus(_ status: String) {
        cluster.withLock { $0.clusterStatus = status }
    }

    /// The JSON bodies of every create-index call, in order.
    public var createIndexBodies: [Data] { cluster.withLock { $0.createIndexBodies } }

    /// How many requests each call has received (rejected ones included).
    public func requestCount(_ call: String) -> Int { cluster.withLock { $0.requestCounts[call, default: 0] } }

    /// Documents stored, across indices.
    public var documentCount: Int { cluster.withLock { $0.indices.values.reduce(0) { $0 + $1.count } } }

    /// The stored `_source` of a document as JSON text (sorted keys), nulls and all.
    public func storedSource(index: String, id: String) -> String? {
        cluster.withLock { state in
            state.indices[index]?[id].map { FakeJSON.text($0.source) }
        }
    }
}

struct Fault {
    var call: String
    var id: String?
    var remaining: Int
    var status: Int
    var type: String
}

/// One stored document.
struct FakeDocument {
    var source: [String: Any]
    var version: Int
    var seqNo: Int
}

struct ClusterState {
    var indices: [String: [String: FakeDocument]] = [:]
    var faults: [Fault] = []
    var clusterStatus = "green"
    var createIndexBodies: [Data] = []
    var requestCounts: [String: Int] = [:]
    var nextSeqNo = 0

    /// Consumes one matching injected failure, if any.
    mutating func takeFault(call: String, id: String? = nil) -> Fault? {
        guard let index = faults.firstIndex(where: { $0.call == call && $0.remaining > 0 && ($0.id == nil || $0.id == id) }) else {
            return nil
        }
        faults[index].remaining -= 1
        return faults[index]
    }
}

/// The cluster's state behind a lock; `[String: Any]` documents are not Sendable, so the lock is
/// the only way in.
final class FakeCluster: @unchecked Sendable {
    private let lock = NSLock()
    private var state = ClusterState()
    let authentication: FakeElasticsearch.Authentication

    init(authentication: FakeElasticsearch.Authentication) {
        self.authentication = authentication
    }

    func withLock<T>(_ body: (inout ClusterState) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }

    func answer(_ request: TestHTTPRequest) -> TestHTTPResponse {
        if let refusal = checkAuthentication(request.headers) { return refusal }
        let segments = request.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        let reply: FakeReply = withLock { state in
            FakeRoutes.route(method: request.method, segments: segments, headers: request.headers,
                             body: Data(request.body.readableBytesView), state: &state)
        }
        var headers: HTTPHeaders = ["Content-Type": "application/json; charset=UTF-8"]
        headers.add(contentsOf: reply.headers)
        return .reply(status: HTTPResponseStatus(statusCode: reply.status), headers: headers,
                      body: ByteBuffer(bytes: FakeJSON.data(reply.body)))
    }

    private func checkAuthentication(_ headers: HTTPHeaders) -> TestHTTPResponse? {
        let expected: String
        switch authentication {
        case .none: return nil
        case .basic(let user, let password): expected = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        case .apiKey(let key): expected = "ApiKey \(key)"
        }
        guard headers.first(name: "Authorization") != expected else { return nil }
        let body = FakeReply.error(401, type: "security_exception",
                                   reason: "unable to authenticate user for REST request").body
        return .reply(status: .unauthorized,
                      headers: ["Content-Type": "application/json; charset=UTF-8",
                                "WWW-Authenticate": "Basic realm=\"security\" charset=\"UTF-8\""],
                      body: ByteBuffer(bytes: FakeJSON.data(body)))
    }
}

/// A status and a JSON body.
struct FakeReply {
    var status: Int
    var body: Any
    var headers: [(String, String)] = []

    /// Elasticsearch's error envelope.
    static func error(_ status: Int, type: String, reason: String, index: String? = nil) -> FakeReply {
        FakeReply(status: status, body: ["error": errorObject(type: type, reason: reason, index: index), "status": status])
    }

    static func errorObject(type: String, reason: String, index: String?) -> [String: Any] {
        var cause: [String: Any] = ["type": type, "reason": reason]
        if let index {
            cause["index"] = index
            cause["index_uuid"] = "_na_"
        }
        var error = cause
        error["root_cause"] = [cause]
        return error
    }

    static func indexNotFound(_ index: String) -> FakeReply {
        error(404, type: "index_not_found_exception", reason: "no such index [\(index)]", index: index)
    }
}

enum FakeJSON {
    static func data(_ value: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])) ?? Data("null".utf8))
    }

    static func text(_ value: Any) -> String { String(decoding: data(value), as: UTF8.self) }

    static func parse(_ data: Data) -> Any? {
        try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }
}
