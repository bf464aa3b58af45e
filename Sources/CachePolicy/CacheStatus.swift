import RawStructuredFieldValues

/// The `Cache-Status` entry passsage adds to every response the cache handled (RFC 9211), e.g.
/// `passsage; hit; ttl=120` or `passsage; fwd=uri-miss; stored`.
public struct CacheStatus: Sendable, Equatable {
    /// RFC 9211 §2.2 `fwd` values passsage uses.
    public enum Forward: String, Sendable, Equatable {
        /// Not the cache's to handle (policy NoCache).
        case bypass
        /// The method is not cached.
        case method
        /// Nothing stored for this URL.
        case uriMiss = "uri-miss"
        /// Stored, but for another variant (`Vary`).
        case varyMiss = "vary-miss"
        /// Stored, but stale.
        case stale
        /// Stored and usable, but the request asked to go forward.
        case request
    }

    public static let cacheName = "passsage"

    public var hit = false
    public var forward: Forward?
    /// The status the forwarded request got (`fwd-status`), e.g. 304 after a revalidation.
    public var forwardStatus: Int?
    /// Seconds of freshness left (`ttl`); negative when stale.
    public var ttl: Int64?
    public var stored = false
    /// Why, in a word (`detail`): e.g. `no-store`, `stale-if-error`, `stale-while-revalidate`.
    public var detail: String?

    public init(hit: Bool = false, forward: Forward? = nil, forwardStatus: Int? = nil, ttl: Int64? = nil,
                stored: Bool = false, detail: String? = nil) {
        self.hit = hit
        self.forward = forward
        self.forwardStatus = forwardStatus
        self.ttl = ttl
        self.stored = stored
        self.detail = detail
    }

    /// The field value, serialised as an RFC 9651 list of one item.
    public var fieldValue: String {
        // The plain hit, on every hot hit: the same bytes the serializer writes (tested), without it.
        if hit, forward == nil, forwardStatus == nil, !stored, detail == nil {
            guard let ttl else { return Self.cacheName + ";hit" }
            // RFC 9651 integers have at most 15 digits; past that the serializer decides.
            if ttl > -1_000_000_000_000_000, ttl < 1_000_000_000_000_000 { return Self.cacheName + ";hit;ttl=" + String(ttl) }
        }
        return serializedFieldValue
    }

    /// `fieldValue` through the RFC 9651 serializer.
    var serializedFieldValue: String {
        var parameters = OrderedMap<String, RFC9651BareItem>()
        if hit { parameters["hit"] = .bool(true) }
        if let forward { parameters["fwd"] = .token(forward.rawValue) }
        if let forwardStatus { parameters["fwd-status"] = .integer(Int64(forwardStatus)) }
        if let ttl { parameters["ttl"] = .integer(ttl) }
        if stored { parameters["stored"] = .bool(true) }
        // A detail that is no valid token (it never is, by construction) goes as a string.
        if let detail { parameters["detail"] = Self.isToken(detail) ? .token(detail) : .string(detail) }
        var serializer = StructuredFieldValueSerializer()
        let item = Item(bareItem: RFC9651BareItem.token(Self.cacheName), parameters: parameters)
        guard let bytes = try? serializer.writeListFieldValue([.item(item)]) else { return Self.cacheName }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// sf-token: starts with ALPHA or `*`, then tchar, `:` or `/`.
    private static func isToken(_ text: String) -> Bool {
        guard let first = text.utf8.first, (first >= 0x41 && first <= 0x5a) || (first >= 0x61 && first <= 0x7a) || first == 0x2a
        else { return false }
        return text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || "!#$%&'*+-.^_`|~:/".utf8.contains(byte)
        }
    }
}
