import AWSCore
import AsyncHTTPClient
import Crypto
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ObjectStore
import StorageCore

/// The production object store: one S3 bucket (or an S3-compatible server), over
/// async-http-client with our own SigV4.
public final class S3ObjectStore: ObjectStore {
    public let configuration: S3Configuration
    let transport: S3Transport
    private let httpClient: HTTPClient
    private let threadPool: NIOThreadPool

    /// The store owns an HTTP client built from the configuration's timeouts; call `shutdown()`.
    public init(configuration: S3Configuration, credentials: any AWSCredentialProvider,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                threadPool: NIOThreadPool = .singleton,
                logger: Logger = Logger(label: "passsage.s3")) {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout = .init(connect: TimeAmount(configuration.connectTimeout),
                                            read: TimeAmount(configuration.readTimeout))
        clientConfiguration.httpVersion = .http1Only
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.decompression = .disabled
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: clientConfiguration)
        self.configuration = configuration
        self.httpClient = client
        self.threadPool = threadPool
        self.transport = S3Transport(configuration: configuration, credentials: credentials, httpClient: client,
                                     signer: SigV4Signer(service: "s3", region: configuration.region), logger: logger)
    }

    public func shutdown() async throws {
        try await httpClient.shutdown()
    }

    // MARK: Reads

    public func get(_ key: String, range: ByteRange?) async throws -> ObjectDownload {
        var getCall = S3Call(operation: "GetObject", method: .GET, key: key, accepted: [200, 206], isStreaming: true)
        if let range {
            guard range.isValid else {
                throw ObjectStoreError(.invalidRange, operation: "GetObject", key: key, code: "InvalidRange", message: "malformed range \(range)")
            }
            getCall.headers.append(("range", range.headerValue))
        }
        let call = getCall
        let response = try await transport.send(call)
        let headers = response.headers
        let etag = headers.first(name: "etag").map(Self.unquote)
        let length = headers.first(name: "content-length").flatMap { Int64($0) }
        let span: ClosedRange<Int64>?
        let total: Int64
        if response.status.code == 206 {
            guard let contentRange = headers.first(name: "content-range").flatMap(ContentRange.init(headerValue:)),
                  let complete = contentRange.completeLength, length == contentRange.length else {
                throw ObjectStoreError(.other, operation: "GetObject", key: key, code: "BadContentRange",
                                       message: "206 with a missing or inconsistent Content-Range/Content-Length")
            }
            if let range, let wanted = range.resolve(size: complete), wanted != contentRange.first...contentRange.last {
                throw ObjectStoreError(.other, operation: "GetObject", key: key, code: "WrongRange",
                                       message: "asked for \(range), got bytes \(contentRange.first)-\(contentRange.last)")
            }
            span = contentRange.first...contentRange.last
            total = complete
        } else {
            guard let length else {
                throw ObjectStoreError(.other, operation: "GetObject", key: key, code: "NoContentLength", message: "200 without Content-Length")
            }
            // A 200 to a range request is the whole object: fine only if the range covers all of it.
            if let range, range.resolve(size: length) != (length > 0 ? 0...(length - 1) : nil) {
                throw ObjectStoreError(.other, operation: "GetObject", key: key, code: "RangeIgnored",
                                       message: "asked for \(range), got the whole object")
            }
            span = length > 0 ? 0...(length - 1) : nil
            total = length
        }
        let expected = span.map { $0.upperBound - $0.lowerBound + 1 } ?? 0
        let body = ByteStream(erasing: response.body)
            .mappingErrors { S3ErrorMapping.connectionError($0, call: call) }
            .verifyingLength(expected) { received in
                ObjectStoreError(.transient, operation: "GetObject", key: key, code: "Truncated",
                                 message: "body ended after \(received) of \(expected) bytes")
            }
        return ObjectDownload(info: ObjectInfo(size: total, etag: etag), span: span, body: body)
    }

    public func head(_ key: String) async throws -> ObjectInfo {
        let headers = try await transport.sendDiscardingBody(S3Call(operation: "HeadObject", method: .HEAD, key: key))
        guard let size = headers.first(name: "content-length").flatMap({ Int64($0) }) else {
            throw ObjectStoreError(.other, operation: "HeadObject", key: key, code: "NoContentLength", message: "HEAD without Content-Length")
        }
        return ObjectInfo(size: size, etag: headers.first(name: "etag").map(Self.unquote),
                          lastModified: headers.first(name: "last-modified").flatMap(Timestamps.parseHTTPDate))
    }

    public func list(prefix: String, continuation: String?, maxKeys: Int) async throws -> ObjectListPage {
        var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(max(1, min(maxKeys, 1000)))),
                     ("encoding-type", "url")]
        if let continuation { query.append(("continuation-token", continuation)) }
        let (_, document) = try await transport.sendExpectingXML(S3Call(operation: "ListObjectsV2", method: .GET, query: query))
        guard let document else {
            throw ObjectStoreError(.other, operation: "ListObjectsV2", code: "BadResponse", message: "empty listing")
        }
        var objects = [ObjectSummary]()
        for item in document.children(named: "Contents") {
            guard let rawKey = item.child("Key")?.text, let key = Self.formDecode(rawKey),
                  let size = item.child("Size").flatMap({ Int64($0.text) }) else {
                throw ObjectStoreError(.other, operation: "ListObjectsV2", code: "BadResponse", message: "listing entry without key or size")
            }
            objects.append(ObjectSummary(key: key, size: size, lastModified: item.child("LastModified").flatMap { Timestamps.parseISO8601($0.text) }))
        }
        let truncated = document.child("IsTruncated")?.text == "true"
        let next = document.child("NextContinuationToken")?.text
        if truncated && next == nil {
            throw ObjectStoreError(.other, operation: "ListObjectsV2", code: "BadResponse", message: "truncated listing without a continuation token")
        }
        return ObjectListPage(objects: objects, continuation: truncated ? next : nil)
    }

    public func checkHealth() async throws {
        _ = try await transport.sendDiscardingBody(S3Call(operation: "HeadBucket", method: .HEAD, key: nil))
    }

    // MARK: Writes

    public func put(_ key: String, payload: ObjectPayload, length: Int64) async throws {
        let source = try await PayloadSource.open(payload, length: length, threadPool: threadPool, key: key)
        if length > configuration.multipartThreshold {
            try await MultipartUpload(store: self, key: key, source: source, length: length).run()
            return
        }
        let body = try await source.body(range: 0..<length)
        _ = try await transport.sendDiscardingBody(S3Call(operation: "PutObject", method: .PUT, key: key, body: body, isStreaming: true))
    }

    public func delete(_ keys: [String]) async throws -> [ObjectDeleteFailure] {
        var failures = [ObjectDeleteFailure]()
        var start = 0
        while start < keys.count {
            let batch = Array(keys[start..<min(start + 1000, keys.count)])
            start += batch.count
            var xml = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            for key in batch { xml += "<Object><Key>\(key.xmlEscaped)</Key></Object>" }
            xml += "</Delete>"
            let buffer = ByteBuffer(string: xml)
            let md5 = Data(buffer.withUnsafeReadableBytes { Insecure.MD5.hash(data: $0) }).base64EncodedString()
            let call = S3Call(operation: "DeleteObjects", method: .POST, query: [("delete", "")],
                              headers: [("content-md5", md5), ("content-type", "application/xml")], body: .bytes(buffer))
            let (_, document) = try await transport.sendExpectingXML(call)
            for error in document?.children(named: "Error") ?? [] {
                let key = error.child("Key")?.text ?? "?"
                let code = error.child("Code")?.text ?? "Unknown"
                if code == "NoSuchKey" { continue }  // already gone is what we wanted
                failures.append(ObjectDeleteFailure(key: key, code: code, message: error.child("Message")?.text ?? ""))
            }
        }
        return failures
    }

    // MARK: Helpers

    static func unquote(_ etag: String) -> String {
        var value = Substring(etag)
        if value.hasPrefix("W/") { value = value.dropFirst(2) }
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = value.dropFirst().dropLast() }
        return String(value)
    }

    /// Decodes S3's `encoding-type=url` listing keys: percent escapes, and `+` for space.
    static func formDecode(_ text: String) -> String? {
        PercentDecoding.decode(text, plusIsSpace: true)
    }
}
