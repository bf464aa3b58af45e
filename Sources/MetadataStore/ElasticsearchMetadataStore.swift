import AsyncHTTPClient
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StorageCore

/// Metadata in an Elasticsearch index over its REST API. The index name, mapping and field names
/// match the original (docs/metadata.md), so an existing `passsage_meta` index keeps working.
public final class ElasticsearchMetadataStore: MetadataStore {
    public struct Configuration: Sendable {
        public enum Authentication: Sendable {
            case none
            case basic(username: String, password: String)
            /// The base64 `id:key` value Elasticsearch hands out.
            case apiKey(String)
        }

        /// `http(s)://host:port`, optionally with a path prefix.
        public var url: String
        public var index: String
        public var shards: Int
        public var replicas: Int
        public var refreshInterval: String
        public var authentication: Authentication
        /// Extra trust anchors (PEM) for a cluster with its own CA.
        public var caFile: String?
        public var connectTimeout: Duration
        public var requestTimeout: Duration
        public var retry: RetryPolicy

        public init(url: String, index: String = "passsage_meta", shards: Int = 9, replicas: Int = 1,
                    refreshInterval: String = "60s", authentication: Authentication = .none, caFile: String? = nil,
                    connectTimeout: Duration = .seconds(3), requestTimeout: Duration = .seconds(10),
                    retry: RetryPolicy = RetryPolicy(maxAttempts: 3, totalBudget: .seconds(20))) throws {
            let resolved = try Self.resolvingCredentials(url: url, authentication: authentication)
            let trimmed = resolved.url
            guard trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://") else {
                throw MetadataStoreError(.invalidInput, call: "configuration", message: "Elasticsearch URL \"\(trimmed)\" must start with http:// or https://")
            }
            let indexBytes = Array(index.utf8)
            guard !indexBytes.isEmpty, indexBytes.count <= 255, index == index.lowercased(),
                  !index.hasPrefix("_"), !index.hasPrefix("-"), !index.hasPrefix("+"),
                  !indexBytes.contains(where: { Array(" \"*\\<|,>/?#:".utf8).contains($0) }) else {
                throw MetadataStoreError(.invalidInput, call: "configuration", message: "invalid Elasticsearch index name \"\(index)\"")
            }
            guard shards >= 1, replicas >= 0 else {
                throw MetadataStoreError(.invalidInput, call: "configuration", message: "shards must be ≥ 1 and replicas ≥ 0")
            }
            self.url = trimmed
            self.index = index
            self.shards = shards
            self.replicas = replicas
            self.refreshInterval = refreshInterval
            self.authentication = resolved.authentication
            self.caFile = caFile
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.retry = retry
        }

        /// `url` without its user information (`https://user:password@host` → `https://host`) and
        /// trailing slashes, its scheme lower-cased, and the authentication: the URL's user and
        /// password (percent-decoded) as Basic, or `authentication` (an API key), not both. The
        /// URL, which is logged and printed, never carries the credentials, and no error repeats them.
        public static func resolvingCredentials(url: String, authentication: Authentication) throws -> (url: String, authentication: Authentication) {
            let split = try splittingCredentials(url)
            var bare = split.url
            while bare.hasSuffix("/") { bare.removeLast() }
            guard let credentials = split.credentials else { return (bare, authentication) }
            guard case .none = authentication else {
                throw credentialsError("Elasticsearch credentials given twice: in the URL and separately")
            }
            return (bare, .basic(username: credentials.username, password: credentials.password))
        }

        static func splittingCredentials(_ url: String) throws -> (url: String, credentials: (username: String, password: String)?) {
            let bytes = Array(url.utf8)
            // Without a scheme the authority starts the string: `user:password@host:9200` must not
            // pass through whole into an error message.
            var scheme: [UInt8] = []
            var authorityStart = 0
            if let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes[colon...].starts(with: Array("://".utf8)) {
                scheme = bytes[..<colon].map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 32 : $0 }
                authorityStart = colon + 3
            }
            let prefix = authorityStart == 0 ? [] : scheme + Array("://".utf8)
            let authorityEnd = bytes[authorityStart...].firstIndex(where: { Array("/?#".utf8).contains($0) }) ?? bytes.endIndex
            let authority = bytes[authorityStart..<authorityEnd]
            guard let at = authority.lastIndex(of: UInt8(ascii: "@")) else {
                // A raw `/`, `?` or `#` in a password ends the authority early (`user:pa/ss@host`):
                // then what looks like a port is not digits and an `@` follows.
                if bytes[authorityEnd...].contains(UInt8(ascii: "@")), authority.first != UInt8(ascii: "["),
                   let colon = authority.lastIndex(of: UInt8(ascii: ":")),
                   !authority[(colon + 1)...].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                    throw credentialsError("the Elasticsearch URL's password must be percent-encoded (a /, ? or # in it ends the host)")
                }
                return (String(decoding: prefix + bytes[authorityStart...], as: UTF8.self), nil)
            }
            let bare = String(decoding: prefix + bytes[(at + 1)...], as: UTF8.self)
            let userinfo = bytes[authorityStart..<at]
            if userinfo.isEmpty { return (bare, nil) }
            let separator = userinfo.firstIndex(of: UInt8(ascii: ":"))
            let user = String(decoding: userinfo[..<(separator ?? at)], as: UTF8.self)
            let password = separator.map { String(decoding: userinfo[($0 + 1)...], as: UTF8.self) } ?? ""
            guard let username = PercentDecoding.decode(user), let decodedPassword = PercentDecoding.decode(password) else {
                throw credentialsError("the Elasticsearch URL's credentials have a malformed percent-escape")
            }
            guard !username.isEmpty else { throw credentialsError("the Elasticsearch URL's credentials have no user name") }
            return (bare, (username, decodedPassword))
        }

        private static func credentialsError(_ message: String) -> MetadataStoreError {
            MetadataStoreError(.invalidInput, call: "configuration", message: message)
        }
    }

    public let configuration: Configuration
    private let httpClient: HTTPClient
    private let logger: Logger

    public init(configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "passsage.elasticsearch")) throws {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: TimeAmount(configuration.connectTimeout), read: TimeAmount(configuration.requestTimeout))
        clientConfiguration.redirectConfiguration = .disallow
        if let caFile = configuration.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw MetadataStoreError(.invalidInput, call: "configuration", message: "cannot read Elasticsearch CA file \(caFile): \(error)")
            }
            clientConfiguration.tlsConfiguration = tls
        }
        self.configuration = configuration
        self.httpClient = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: clientConfiguration)
        self.logger = logger
    }

    public func shutdown() async throws {
        try await httpClient.shutdown()
    }

    // MARK: MetadataStore

    public func ensureSchema() async throws {
        let body: JSONValue = [
            "settings": ["number_of_shards": .int(Int64(configuration.shards)),
                         "number_of_replicas": .int(Int64(configuration.replicas)),
                         "refresh_interval": .string(configuration.refreshInterval)],
            "mappings": ElasticsearchMapping.mappings,
        ]
        let (status, answer) = try await call("create index", .PUT, "/\(configuration.index)", json: body, accept: [200, 400])
        if status == 400 {
            let type = answer["error"]?["type"]?.stringValue ?? ""
            guard type == "resource_already_exists_exception" else {
                throw MetadataStoreError(.other, call: "create index", status: 400, message: Self.reason(answer))
            }
        }
    }

    public func get(_ ids: [String]) async throws -> [String: MetadataFields] {
        guard !ids.isEmpty else { return [:] }
        let (_, answer) = try await call("_mget", .POST, "/\(configuration.index)/_mget",
                                         json: ["ids": .array(ids.map { .string($0) })])
        guard let docs = answer["docs"]?.arrayValue else {
            throw MetadataStoreError(.other, call: "_mget", message: "answer has no docs array")
        }
        var result = [String: MetadataFields]()
        for doc in docs {
            if let error = doc["error"] {
                // A missing index shows up per document, inside a 200.
                let kind: MetadataStoreError.Kind = error["type"]?.stringValue == "index_not_found_exception" ? .schemaMissing : .other
                throw MetadataStoreError(kind, call: "_mget", message: "\(doc["_id"]?.stringValue ?? "?"): \(Self.reason(["error": error]))")
            }
            guard doc["found"]?.boolValue == true, let id = doc["_id"]?.stringValue else { continue }
            result[id] = (doc["_source"]?.objectValue ?? [:]).withoutNulls
        }
        return result
    }

    public func upsert(_ id: String, fields: MetadataFields) async throws {
        _ = try await call("_update", .POST, "/\(configuration.index)/_update/\(Self.encodeID(id))?retry_on_conflict=3",
                           json: ["doc": .object(fields), "doc_as_upsert": true])
    }

    public func bulkUpdate(_ updates: [MetadataUpdate]) async throws -> [MetadataItemFailure] {
        guard !updates.isEmpty else { return [] }
        var lines = ""
        for update in updates {
            let action: JSONValue = ["update": ["_index": .string(configuration.index), "_id": .string(update.id),
                                                "retry_on_conflict": 3]]
            var document: [String: JSONValue] = ["doc": .object(update.fields)]
            if update.createIfMissing { document["doc_as_upsert"] = true }
            lines += action.jsonText + "\n" + JSONValue.object(document).jsonText + "\n"
        }
        let (_, answer) = try await call("_bulk", .POST, "/_bulk", body: ByteBuffer(string: lines), contentType: "application/x-ndjson")
        guard answer["errors"]?.boolValue == true else { return [] }
        guard let items = answer["items"]?.arrayValue else {
            throw MetadataStoreError(.other, call: "_bulk", message: "errors reported without items")
        }
        var failures = [MetadataItemFailure]()
        for (index, item) in items.enumerated() {
            let result = item["update"] ?? item.objectValue?.values.first ?? .null
            guard let error = result["error"] else { continue }
            if error["type"]?.stringValue == "index_not_found_exception" {
                // Not an item problem: the whole batch failed for want of the index.
                throw MetadataStoreError(.schemaMissing, call: "_bulk", status: 404, message: Self.reason(["error": error]))
            }
            let id = result["_id"]?.stringValue ?? (index < updates.count ? updates[index].id : "?")
            failures.append(MetadataItemFailure(id: id, type: error["type"]?.stringValue ?? "unknown",
                                                reason: error["reason"]?.stringValue ?? error.jsonText))
        }
        return failures
    }

    public func delete(_ id: String) async throws {
        _ = try await call("delete", .DELETE, "/\(configuration.index)/_doc/\(Self.encodeID(id))", accept: [200, 404],
                           notFoundIsIndexMissing: true)
    }

    /// A scroll over the index (`_search?scroll=`, sorted by `_doc`), cleared at the end.
    public func scan(fields: [String], pageSize: Int, _ page: ([String: MetadataFields]) async throws -> Void) async throws {
        var (_, answer) = try await call("_search", .POST, "/\(configuration.index)/_search?scroll=2m",
                                         json: ["size": .int(Int64(max(1, pageSize))), "sort": ["_doc"],
                                                "_source": .array(fields.map { .string($0) })])
        var scrollID = answer["_scroll_id"]?.stringValue
        do {
            while let hits = answer["hits"]?["hits"]?.arrayValue, !hits.isEmpty {
                var documents = [String: MetadataFields]()
                for hit in hits {
                    guard let id = hit["_id"]?.stringValue else { continue }
                    documents[id] = (hit["_source"]?.objectValue ?? [:]).withoutNulls
                }
                try await page(documents)
                guard let current = scrollID else { break }
                (_, answer) = try await call("scroll", .POST, "/_search/scroll", json: ["scroll": "2m", "scroll_id": .string(current)])
                scrollID = answer["_scroll_id"]?.stringValue ?? current
            }
        } catch {
            await clearScroll(scrollID)
            throw error
        }
        await clearScroll(scrollID)
    }

    /// Frees the scroll's resources now rather than when it expires.
    private func clearScroll(_ id: String?) async {
        guard let id else { return }
        _ = try? await call("clear scroll", .DELETE, "/_search/scroll", json: ["scroll_id": .array([.string(id)])], accept: [200, 404])
    }

    public func checkHealth() async throws {
        let (_, answer) = try await call("cluster health", .GET, "/_cluster/health")
        let status = answer["status"]?.stringValue ?? "unknown"
        guard status == "green" || status == "yellow" else {
            throw MetadataStoreError(.transient, call: "cluster health", message: "cluster status is \(status)")
        }
    }

    // MARK: Transport

    /// Document ids contain `/` and other reserved characters: encode every byte but the
    /// unreserved, and `.` too, so that ids `.` and `..` are not taken for dot segments.
    public static func encodeID(_ id: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for byte in id.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func call(_ name: String, _ method: HTTPMethod, _ path: String, json: JSONValue? = nil,
                      accept: Set<UInt> = [200, 201], notFoundIsIndexMissing: Bool = false) async throws -> (UInt, JSONValue) {
        try await call(name, method, path, body: json.map { ByteBuffer(string: $0.jsonText) }, contentType: "application/json",
                       accept: accept, notFoundIsIndexMissing: notFoundIsIndexMissing)
    }

    private func call(_ name: String, _ method: HTTPMethod, _ path: String, body: ByteBuffer?, contentType: String,
                      accept: Set<UInt> = [200, 201], notFoundIsIndexMissing: Bool = false) async throws -> (UInt, JSONValue) {
        try await withRetries(configuration.retry, isRetryable: { ($0 as? MetadataStoreError)?.isRetryable ?? false }) { _ in
            var request = HTTPClientRequest(url: configuration.url + path)
            request.method = method
            request.headers.add(name: "Accept", value: "application/json")
            switch configuration.authentication {
            case .none: break
            case .basic(let user, let password):
                request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
            case .apiKey(let key):
                request.headers.add(name: "Authorization", value: "ApiKey \(key)")
            }
            if let body {
                request.headers.add(name: "Content-Type", value: contentType)
                request.body = .bytes(body)
            }
            let status: UInt
            let text: ByteBuffer
            do {
                let response = try await httpClient.execute(request, timeout: TimeAmount(configuration.requestTimeout), logger: logger)
                status = response.status.code
                text = try await response.body.collect(upTo: 64 << 20)
            } catch {
                throw MetadataStoreError(.transient, call: name, message: "\(configuration.url): \(error)")
            }
            let answer = (try? JSONValue.parse(text.readableBytesView)) ?? .null
            if accept.contains(status) {
                if status == 404, notFoundIsIndexMissing, answer["error"]?["type"]?.stringValue == "index_not_found_exception" {
                    throw MetadataStoreError(.schemaMissing, call: name, status: 404, message: Self.reason(answer))
                }
                return (status, answer)
            }
            throw Self.error(call: name, status: status, answer: answer, raw: text)
        }
    }

    static func error(call: String, status: UInt, answer: JSONValue, raw: ByteBuffer) -> MetadataStoreError {
        let type = answer["error"]?["type"]?.stringValue
        let message = answer == .null ? String(buffer: raw).prefix(300).description : reason(answer)
        let kind: MetadataStoreError.Kind
        switch (status, type) {
        case (404, "index_not_found_exception"): kind = .schemaMissing
        case (401, _), (403, _): kind = .unauthorized
        case (409, _): kind = .conflict
        case (429, _): kind = .throttled
        case (500...599, _): kind = .transient
        case (400, _): kind = .invalidInput
        default: kind = .other
        }
        return MetadataStoreError(kind, call: call, status: Int(status), message: message)
    }

    static func reason(_ answer: JSONValue) -> String {
        guard let error = answer["error"] else { return answer.jsonText }
        if let text = error.stringValue { return text }
        let type = error["type"]?.stringValue ?? "error"
        return "\(type): \(error["reason"]?.stringValue ?? error.jsonText)"
    }
}

/// The index mapping the original creates: only what is searched is indexed.
enum ElasticsearchMapping {
    static let mappings: JSONValue = [
        "dynamic": false,
        "properties": [
            "status_code": ["type": "integer", "index": false],
            "url": ["type": "keyword"],
            "extension": ["type": "keyword"],
            "content_size": ["type": "long", "index": false],
            "stored_at": ["type": "date"],
            "last_access": ["type": "date"],
            "headers": ["type": "object", "enabled": false],
            "vary": ["type": "keyword", "index": false],
            "vary_request": ["type": "keyword", "index": false],
            "doc_type": ["type": "keyword"],
            "manifest_b64": ["type": "keyword", "index": false, "doc_values": false],
        ],
    ]
}
