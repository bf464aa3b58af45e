import NIOHTTP1

/// The `X-Xs3lerator-*` request headers passsage sends (reference §3.3), parsed. Booleans are
/// true only for the exact value `true`; values that are not visible ASCII count as absent.
public struct ContractHeaders: Sendable, Hashable {
    public var cacheKey: String?
    /// Where to store a response that has no `Vary` (else under `cacheKey`).
    public var unvariedKey: String?
    public var cacheSkip = false
    public var objectSize: Int64?
    public var tlsSkipVerify = false
    public var followRedirects = false
    /// Base64 manifest (used by the cache in part 2).
    public var manifest: String?
    public var ifNoneMatch: String?
    public var ifModifiedSince: String?
    public var staleIfError = false
    public var backgroundRevalidate = false
    /// Only values above 0 count.
    public var connectTimeout: Duration?
    /// `.some(nil)` is "no read timeout" (a value ≤ 0); nil is "use the default".
    public var readTimeout: Duration??
    /// Answer from the cache or not at all (504 with `X-Xs3lerator-Cache-Hit: false`).
    public var cacheOnly = false
    /// Store only what RFC 9111 lets a shared cache store (no `no-store`, `private`, or
    /// `Authorization` without permission): the caller is a shared cache and will not serve the rest.
    public var sharedCache = false
    public var linkManifestSource: String?
    public var linkManifestTarget: String?

    public static let prefix = "x-xs3lerator-"

    /// The longest timeout a caller can ask for. Larger values are clamped (and huge ones would
    /// overflow the conversion to milliseconds).
    public static let longestTimeout: Duration = .seconds(86_400)

    static func duration(seconds: Double) -> Duration {
        let limit = 86_400.0
        return .milliseconds(Int64(min(seconds, limit) * 1000))
    }

    public init() {}

    public init(_ headers: HTTPHeaders) {
        func value(_ name: String) -> String? {
            guard let raw = headers.first(name: "X-Xs3lerator-" + name) else { return nil }
            let trimmed = raw.trimmingCharacters(in: " \t")
            guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
            return trimmed
        }
        func flag(_ name: String) -> Bool { value(name) == "true" }
        func seconds(_ name: String) -> Double? {
            guard let text = value(name), let number = Double(text), number.isFinite else { return nil }
            return number
        }
        cacheKey = value("Cache-Key")
        unvariedKey = value("Unvaried-Key")
        cacheSkip = flag("Cache-Skip")
        objectSize = value("Object-Size").flatMap { Int64($0) }.flatMap { $0 >= 0 ? $0 : nil }
        tlsSkipVerify = flag("Tls-Skip-Verify")
        followRedirects = flag("Follow-Redirects")
        manifest = value("Manifest")
        ifNoneMatch = value("If-None-Match")
        ifModifiedSince = value("If-Modified-Since")
        staleIfError = flag("Stale-If-Error")
        backgroundRevalidate = flag("Background-Revalidate")
        if let connect = seconds("Connect-Timeout"), connect > 0 { connectTimeout = Self.duration(seconds: connect) }
        if let read = seconds("Read-Timeout") { readTimeout = read > 0 ? .some(Self.duration(seconds: read)) : .some(nil) }
        cacheOnly = flag("Cache-Only")
        sharedCache = flag("Shared-Cache")
        linkManifestSource = value("Link-Manifest-Source")
        linkManifestTarget = value("Link-Manifest-Target")
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}
