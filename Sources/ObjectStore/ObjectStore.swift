import NIOCore
import StorageCore

/// Where cached bodies live, as whole objects under string keys. Implementations: S3 (production),
/// a local directory (embedded default). Every implementation passes the same contract tests.
public protocol ObjectStore: Sendable {
    /// Streams an object, or the part of it `range` selects. Throws `.notFound` for a missing key
    /// and `.invalidRange` for an unsatisfiable range.
    func get(_ key: String, range: ByteRange?) async throws -> ObjectDownload

    /// Stores `payload` (exactly `length` bytes) under `key`, replacing any earlier object. The
    /// object becomes visible only once complete.
    func put(_ key: String, payload: ObjectPayload, length: Int64) async throws

    /// Size and identity of an object; throws `.notFound` for a missing key.
    func head(_ key: String) async throws -> ObjectInfo

    /// Deletes every key; missing keys count as deleted. Returns the keys that could not be deleted.
    func delete(_ keys: [String]) async throws -> [ObjectDeleteFailure]

    /// One page of the keys under `prefix`, in ascending byte order.
    func list(prefix: String, continuation: String?, maxKeys: Int) async throws -> ObjectListPage

    /// Throws unless the store is reachable and usable.
    func checkHealth() async throws
}

extension ObjectStore {
    public func get(_ key: String) async throws -> ObjectDownload { try await get(key, range: nil) }
}

/// What to upload. Both forms can be read more than once, so a failed attempt can be retried.
public enum ObjectPayload: Sendable {
    /// A file on local disk, streamed from `range` (default: the whole file).
    case file(path: String, range: Range<Int64>? = nil)
    /// Buffers already in memory (small objects, chunks held by the caller).
    case buffers([ByteBuffer])
    /// A range of a file that is already open (an unlinked chunk file, say): streamed from its
    /// descriptor, never held in memory.
    case openFile(ReadableFile, range: Range<Int64>)

    public static func buffer(_ buffer: ByteBuffer) -> ObjectPayload { .buffers([buffer]) }
}

public struct ObjectInfo: Sendable, Hashable {
    public var size: Int64
    /// The store's entity tag, quotes removed; nil if the store has none.
    public var etag: String?
    /// When the object was last written, in seconds since 1970; nil if unknown.
    public var lastModified: Int64?

    public init(size: Int64, etag: String?, lastModified: Int64? = nil) {
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// A body being streamed from the store.
public struct ObjectDownload: Sendable {
    /// The whole object's size and identity.
    public var info: ObjectInfo
    /// The inclusive span of the object `body` carries; the whole object when no range was asked.
    public var span: ClosedRange<Int64>?
    /// Exactly `contentLength` bytes; the stream fails rather than end short.
    public var body: ByteStream

    public init(info: ObjectInfo, span: ClosedRange<Int64>?, body: ByteStream) {
        self.info = info
        self.span = span
        self.body = body
    }

    public var contentLength: Int64 { span.map { $0.upperBound - $0.lowerBound + 1 } ?? 0 }
}

public struct ObjectSummary: Sendable, Hashable {
    public var key: String
    public var size: Int64
    /// When the object was last written, in seconds since 1970; nil if unknown.
    public var lastModified: Int64?

    public init(key: String, size: Int64, lastModified: Int64? = nil) {
        self.key = key
        self.size = size
        self.lastModified = lastModified
    }
}

public struct ObjectListPage: Sendable {
    public var objects: [ObjectSummary]
    /// Pass back to `list` for the next page; nil on the last page.
    public var continuation: String?

    public init(objects: [ObjectSummary], continuation: String?) {
        self.objects = objects
        self.continuation = continuation
    }
}

public struct ObjectDeleteFailure: Sendable, Hashable {
    public var key: String
    public var code: String
    public var message: String

    public init(key: String, code: String, message: String) {
        self.key = key
        self.code = code
        self.message = message
    }
}

extension ObjectStore {
    /// Every key under `prefix`, following continuations. For tests and maintenance tools.
    public func listAll(prefix: String, pageSize: Int = 1000) async throws -> [ObjectSummary] {
        var all = [ObjectSummary]()
        var continuation: String? = nil
        repeat {
            let page = try await list(prefix: prefix, continuation: continuation, maxKeys: pageSize)
            all += page.objects
            continuation = page.continuation
        } while continuation != nil
        return all
    }
}
