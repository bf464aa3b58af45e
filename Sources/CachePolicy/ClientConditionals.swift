import HTTPRules
import NIOHTTP1

/// A client's own conditionals against a stored response (RFC 9110 §13): evaluated by the cache
/// for the entries it serves, never sent upstream for them.
public enum ClientConditionals {
    /// Whether the client's `If-None-Match` (weak comparison), or failing that its
    /// `If-Modified-Since`, says it already has the stored response: answer 304.
    public static func notModified(_ request: HTTPHeaders, stored: HTTPHeaders) -> Bool {
        let noneMatch = request[canonicalForm: "if-none-match"]
        if !noneMatch.isEmpty {
            guard let etag = stored.first(name: "etag") else { return false }
            return noneMatch.contains { tag in tag == "*" || opaque(String(tag)) == opaque(etag) }
        }
        guard let since = request.first(name: "if-modified-since").flatMap({ HTTPDate.parse($0) }),
              let modified = stored.first(name: "last-modified").flatMap({ HTTPDate.parse($0) }) else { return false }
        return modified <= since
    }

    /// The client's `Range` if it is to be honoured: always without `If-Range`; with it only
    /// when it names the stored response exactly (a strong ETag, or the very `Last-Modified`).
    /// Otherwise nil: the whole response is sent (§13.1.5).
    public static func range(_ request: HTTPHeaders, stored: HTTPHeaders) -> String? {
        guard let range = request.first(name: "range") else { return nil }
        guard let condition = request.first(name: "if-range")?.trimmingASCIIWhitespace() else { return range }
        if condition.hasPrefix("\"") {
            return stored.first(name: "etag") == condition ? range : nil
        }
        if condition.hasPrefix("W/") { return nil }
        guard let date = HTTPDate.parse(condition), let modified = stored.first(name: "last-modified").flatMap({ HTTPDate.parse($0) })
        else { return nil }
        return date == modified ? range : nil
    }

    /// An entity tag without its weakness mark.
    private static func opaque(_ tag: String) -> String {
        let trimmed = tag.trimmingASCIIWhitespace()
        return trimmed.hasPrefix("W/") ? String(trimmed.dropFirst(2)) : trimmed
    }
}
