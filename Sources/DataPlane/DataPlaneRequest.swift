import ChunkManifest
import MetadataStore
import NIOCore
import NIOHTTP1
import StorageCore

/// One request to the data plane, as a value: what the `X-Xs3lerator-*` contract headers carry
/// (reference §3.3), already parsed and already trusted. The HTTP shell builds it from a request;
/// passsage's embedded mode builds it directly.
public struct DataPlaneRequest: Sendable {
    /// The absolute http(s) URL to fetch.
    public var url: String
    /// `.GET` or `.HEAD`.
    public var method: HTTPMethod
    /// The client's headers. The data plane removes what must not go upstream itself: contract
    /// and hop-by-hop headers, `Host`, `Range`, and on keyed GETs the client's conditionals.
    public var headers: HTTPHeaders
    /// The client's `Range` header value, answered by the data plane (never sent upstream).
    public var range: String?
    /// Enables the cache: the metadata document id, and the key downloads are shared under.
    public var cacheKey: String?
    /// Go upstream even if cached, and store the result.
    public var cacheSkip: Bool
    /// The entry's manifest as the caller has it; saves a metadata lookup.
    public var manifest: Manifest?
    /// Validators of the cached entry: a keyed GET with either revalidates it upstream.
    public var ifNoneMatch: String?
    public var ifModifiedSince: String?
    /// Serve the cached entry when revalidating fails (5xx, refused, timeout).
    public var staleIfError: Bool
    /// Serve the cached entry at once and revalidate in the background.
    public var backgroundRevalidate: Bool
    /// Accept any upstream certificate. Only for trusted callers.
    public var tlsSkipVerify: Bool
    public var followRedirects: Bool
    /// nil: the configured default.
    public var connectTimeout: Duration?
    /// nil: the configured default; `.some(nil)`: no read timeout.
    public var readTimeout: Duration??
    /// The caller's say on storing a keyed download, asked with the upstream's status and headers
    /// once they arrive: nil relays the response uncached; otherwise the directive's fields are
    /// written with the manifest, in one update, once the whole body is stored (so a document never
    /// pairs new headers with old bytes), under its key if it names one. Downloads are still shared
    /// under `cacheKey`. Unset: every 200 with a length is stored, with its manifest alone.
    public var storeFields: (@Sendable (HTTPResponseStatus, HTTPHeaders) -> StoreDirective?)?
    /// A hit or nothing: when the entry cannot be served from the cache (a chunk missing or
    /// damaged), answer 504 with `X-Xs3lerator-Cache-Hit: false` instead of going upstream, so the
    /// caller decides how (and whether) to fetch it.
    public var cacheOnly = false
    /// Where a keyed download is stored when its response has no `Vary` (and `storeFields` names
    /// no key): the URL's own id, while `cacheKey` (what downloads are shared under) may also name
    /// the request's `Accept-Encoding`. Saves a caller that stores by URL a manifest alias.
    public var unvariedKey: String?
    /// Tag each stored manifest with a fresh random `manifest_tag`, and report it to every reader
    /// of the download in `X-Xs3lerator-Fill-Tag`. A caller that writes its own fields in a
    /// separate update (passsage in split mode) writes the same tag beside them, and reads a
    /// document as complete only when the two match: never new headers over old bytes.
    public var tagsFills = false
    /// The size of the pieces a hit's body is read in. Large pieces make fewer trips to the
    /// thread pool; small ones hold less for a client that stops reading (one piece each).
    public var hitPieceSize = 1 << 20

    public init(url: String, method: HTTPMethod = .GET, headers: HTTPHeaders = [:], range: String? = nil,
                cacheKey: String? = nil, cacheSkip: Bool = false, manifest: Manifest? = nil,
                ifNoneMatch: String? = nil, ifModifiedSince: String? = nil, staleIfError: Bool = false,
                backgroundRevalidate: Bool = false, tlsSkipVerify: Bool = false, followRedirects: Bool = false,
                connectTimeout: Duration? = nil, readTimeout: Duration?? = nil) {
        self.url = url
        self.method = method
        self.headers = headers
        self.range = range
        self.cacheKey = cacheKey
        self.cacheSkip = cacheSkip
        self.manifest = manifest
        self.ifNoneMatch = ifNoneMatch
        self.ifModifiedSince = ifModifiedSince
        self.staleIfError = staleIfError
        self.backgroundRevalidate = backgroundRevalidate
        self.tlsSkipVerify = tlsSkipVerify
        self.followRedirects = followRedirects
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
    }
}

/// The data plane's answer. `body` is pulled: nothing is read ahead of the consumer beyond the
/// configured read-ahead. When `Content-Length` is set the body has exactly that many bytes or
/// throws; a consumer that sees it throw must abort its connection, never finish the response.
/// Dropping the body before its end releases everything it holds.
public struct DataPlaneResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteStream

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteStream = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A small plain-text answer of the data plane's own (`<kind>: <message>`).
    static func text(_ status: HTTPResponseStatus, _ text: String, headers extra: HTTPHeaders = [:]) -> DataPlaneResponse {
        var headers = extra
        headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: String(text.utf8.count))
        return DataPlaneResponse(status: status, headers: headers, body: ByteStream(buffers: [ByteBuffer(string: text)]))
    }
}

/// Where and with what a keyed download is stored (`DataPlaneRequest.storeFields`).
public struct StoreDirective: Sendable {
    /// The document id to store under; nil: the request's `cacheKey`.
    public var key: String?
    public var fields: MetadataFields
    /// Fields removed just before `fields` are written, so that an object field (the stored
    /// headers) is replaced rather than merged with the previous entry's. In between, the document
    /// lacks them: a reader must treat it as incomplete.
    public var clearing: [String]

    public init(key: String? = nil, fields: MetadataFields, clearing: [String] = []) {
        self.key = key
        self.fields = fields
        self.clearing = clearing
    }
}
