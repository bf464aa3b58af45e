import CachePolicy
import DataPlane
import ForwardProxy
import MetadataStore
import NIOConcurrencyHelpers
import NIOHTTP1
import StorageCore

/// What the cache writes: documents for responses it may store, redirects, refreshed
/// `stored_at`, invalidations.
extension CacheSource {
    /// Marks what the cache holds for `urls` invalid: entries stored before now are not served again.
    func invalidate(_ urls: [String]) async {
        let now = Self.now()
        var updates: [MetadataUpdate] = []
        for url in urls {
            guard let key = invalidationKey(url) else { continue }
            for id in [key.id, key.varyIndexID] {
                updates.append(MetadataUpdate(id: id, fields: ["invalidated_at": .int(now)], createIfMissing: false))
            }
        }
        guard !updates.isEmpty else { return }
        do {
            // Items for documents that do not exist fail, as they should: nothing to invalidate.
            _ = try await metadata.bulkUpdate(updates)
        } catch {
            logger.warning("invalidation failed", metadata: ["urls": "\(urls)", "error": "\(error)"])
        }
    }

    /// The key a URL's entries are under, with the parameters its rule strips.
    func invalidationKey(_ url: String) -> CacheKey? {
        guard let request = PolicyRequest(method: "GET", url: url) else { return nil }
        return cacheKey(url, stripping: resolver.resolve(request).resolved.stripQuery)
    }

    // MARK: Storing

    /// The data plane's store hook: the document fields when RFC 9111 lets a shared cache store
    /// the response, nil otherwise (the data plane then relays it uncached).
    /// A varying response is stored as the variant this request selects; any other under the
    /// URL's id, whatever key its download was shared under. A `content_type` rule that says
    /// NoCache keeps the response out. `keepingEntryOnFailure`: the policy whose fallback may
    /// serve the stored entry, which a failure (`fallsBack`) must then not replace.
    func storeFields(_ lookup: Lookup, requestTime: Int64, stored: NIOLockedValueBox<Bool?>?,
                     keepingEntryOnFailure fallbackPolicy: CachePolicy? = nil)
        -> @Sendable (HTTPResponseStatus, HTTPHeaders) -> StoreDirective? {
        { status, headers in
            let policy = lookup.resolution.resolved(contentType: headers.first(name: "content-type"))
            if policy.policy == .noCache || fallbackPolicy.map({ Self.fallsBack(status: status, policy: $0) }) == true {
                stored?.withLockedValue { $0 = false }
                return nil
            }
            let vary = headers[canonicalForm: "vary"].map(String.init)
            let target = vary.isEmpty ? lookup.key.id : lookup.variantID(vary: vary)
            guard let target, Storability.refusal(method: "GET", requestHeaders: lookup.headers, status: Int(status.code),
                                                  responseHeaders: headers,
                                                  keepingRedirectFallbacks: policy.redirectFallback) == nil else {
                stored?.withLockedValue { $0 = false }
                return nil
            }
            stored?.withLockedValue { $0 = true }
            let responseTime = Self.now()
            var fields = CacheDocument.fields(
                status: Int(status.code), headers: Storability.headersToStore(headers), responseTime: responseTime,
                initialAge: StoredResponse.initialAge(headers: headers, requestTime: requestTime, responseTime: responseTime),
                url: lookup.url, contentSize: headers.first(name: "content-length").flatMap { Int64($0) })
            if !vary.isEmpty {
                fields["vary"] = .string(vary.joined(separator: ", "))
                if let selected = CacheKey.varyRequestString(vary: vary, requestHeaders: lookup.headers) {
                    fields["vary_request"] = .string(selected)
                }
            }
            return StoreDirective(key: target, fields: fields, clearing: ["headers"])
        }
    }

    /// Redirects have no body for the data plane to store: their document is written here.
    func storeRedirect(_ response: DataPlaneResponse, lookup: Lookup, requestTime: Int64) async -> Bool {
        guard let directive = storeFields(lookup, requestTime: requestTime, stored: nil)(response.status, response.headers) else {
            return false
        }
        do {
            // A redirect replaces whatever body was stored before.
            var document = directive.fields
            document["manifest_b64"] = .null
            let id = directive.key ?? lookup.key.id
            // Headers are replaced, not merged with the previous entry's.
            try await metadata.upsert(id, fields: Dictionary(uniqueKeysWithValues: directive.clearing.map { ($0, JSONValue.null) }))
            try await metadata.upsert(id, fields: document)
            return true
        } catch {
            logger.warning("storing a redirect failed", metadata: ["key": "\(lookup.key.id)", "error": "\(error)"])
            return false
        }
    }

    func refresh(_ key: String) async {
        do {
            try await metadata.upsert(key, fields: ["stored_at": .string(Timestamps.formatISO8601(Self.now())), "initial_age": .int(0)])
        } catch {
            logger.warning("refreshing stored_at failed", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }
}

/// Invalidates the cache's entries for a successful unsafe request's target and the same-origin
/// `Location` / `Content-Location` of its response (RFC 9111 §4.4).
struct Invalidator: RelayObserver {
    let source: CacheSource
    let method: String
    let url: String

    func responded(status: HTTPResponseStatus, headers: HTTPHeaders) {
        let targets = Invalidation.targets(method: method, status: Int(status.code), requestURL: url,
                                           location: headers.first(name: "location"),
                                           contentLocation: headers.first(name: "content-location"))
        guard !targets.isEmpty else { return }
        // Forgotten here, on the event loop, before the client can send its next request; the
        // write that marks them invalid follows.
        source.memo?.forget(targets.compactMap(source.invalidationKey).flatMap { [$0.id, $0.varyIndexID] })
        Task { await source.invalidate(targets) }
    }
}
