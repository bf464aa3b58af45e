import CachePolicy
import DataPlane
import ForwardProxy
import NIOConcurrencyHelpers
import NIOHTTP1

/// What goes to the data plane: stored bodies, revalidations, fetches, and the fallbacks of the
/// policies that serve the cache when upstream fails.
extension CacheSource {
    /// A stored entry: from metadata alone for redirects and satisfied client conditionals, else
    /// its body from the data plane (with the client's range). `validators` with `background`
    /// ask the data plane to revalidate it after answering.
    func serveStored(_ entry: CacheDocument.Entry, id: String, freshness: Freshness, status: CacheStatus,
                             lookup: Lookup, validators: Validators?, background: Bool = false) async -> ResponsePlan {
        if entry.manifest == nil || ClientConditionals.notModified(lookup.headers, stored: entry.stored.headers) {
            return .local(localAnswer(entry, freshness: freshness, status: status, request: lookup))
        }
        var request = storedBodyRequest(entry, id: id, lookup: lookup)
        if background, let validators {
            Self.applyTimeouts(effectivePolicy(lookup, entry: entry), to: &request)
            guard await destinationAllowed(lookup) else { return .relay }
            request.ifNoneMatch = validators.entityTag
            request.ifModifiedSince = validators.lastModified
            request.backgroundRevalidate = true
            request.storeFields = storeFields(lookup, requestTime: Self.now(), stored: nil)
        }
        let response = await dataPlane.serve(request)
        if response.isDataPlaneUnavailable { return .relay }
        if response.headers.first(name: "X-Xs3lerator-Cache-Hit") != "true" {
            // The stored body is gone or damaged: fetch it like a stale entry, vetted and checked.
            return await fetch(lookup, forward: .stale, requestTime: Self.now(), variant: id == lookup.key.id ? nil : id)
        }
        return stream(response, entry: entry, freshness: freshness, status: status, lookup: lookup)
    }

    /// A conditional request upstream for a stored entry. A 304 serves the entry; with
    /// `staleIfError` a failure does too (a 404 or 410 as well, under StaleIfError); anything else
    /// is relayed and stored if it may be.
    func revalidate(_ entry: CacheDocument.Entry, id: String, freshness: Freshness, validators: Validators,
                    staleIfError: Bool, reason: CacheDecision.ForwardReason, lookup: Lookup,
                    requestTime: Int64) async -> ResponsePlan {
        guard await destinationAllowed(lookup) else { return .relay }
        let policy = effectivePolicy(lookup, entry: entry)
        let stored = NIOLockedValueBox<Bool?>(nil)
        // A 200 may replace the entry, so a range goes only without If-Range (`upstreamRange`).
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers, range: Self.upstreamRange(lookup.headers),
                                       cacheKey: id, manifest: entry.manifest,
                                       ifNoneMatch: validators.entityTag, ifModifiedSince: validators.lastModified,
                                       staleIfError: staleIfError)
        request.hitPieceSize = settings.hitPieceSize
        Self.applyTimeouts(policy, to: &request)
        request.storeFields = storeFields(lookup, requestTime: requestTime, stored: stored,
                                          keepingEntryOnFailure: staleIfError ? policy.policy : nil)
        let response = await dataPlane.serve(request)
        if response.isDataPlaneUnavailable { return .relay }
        let forward = Self.forward(reason)
        switch response.headers.first(name: "X-Xs3lerator-Revalidated") {
        case "true":
            // The origin said 304: the entry is fresh again from now (bug 7 aside, only a real
            // validation refreshes it).
            await refresh(id)
            var refreshed = entry.stored
            refreshed.responseTime = Self.now()
            refreshed.initialAge = 0
            let renewed = Freshness.of(refreshed, now: refreshed.responseTime, heuristicLimit: settings.heuristicLimit)
            return stream(response, entry: CacheDocument.Entry(stored: refreshed, manifest: entry.manifest,
                                                               contentSize: entry.contentSize),
                          freshness: renewed, status: CacheStatus(forward: forward, forwardStatus: 304, ttl: renewed.remaining),
                          lookup: lookup)
        case "stale-error":
            return stream(response, entry: entry, freshness: freshness,
                          status: CacheStatus(hit: true, forward: forward, ttl: freshness.lifetime - freshness.age,
                                              detail: "stale-if-error"),
                          lookup: lookup)
        default:
            if staleIfError, Self.fallsBack(status: response.status, policy: policy.policy),
               let plan = await serveFallback(entry, id: id, freshness: freshness, forward: forward,
                                              failedStatus: response.status, lookup: lookup) {
                return plan
            }
            await storeIfRedirect(response, lookup: lookup, requestTime: requestTime, stored: stored)
            return relayFromDataPlane(response, status: CacheStatus(forward: forward, forwardStatus: Int(response.status.code),
                                                                    stored: stored.withLockedValue { $0 } == true),
                                      lookup: lookup)
        }
    }

    /// Why a decision goes upstream with the entry as its fallback, or nil when it has none.
    static func fallbackReason(_ decision: CacheDecision) -> CacheDecision.ForwardReason? {
        switch decision {
        case .refetch(let reason, true), .revalidate(_, true, let reason): reason
        default: nil
        }
    }

    /// A HEAD whose entry is its fallback (StaleIfError, AlwaysUpstream, `stale-if-error`): asked
    /// upstream through the data plane; a failure is answered from the entry's metadata, anything
    /// else relayed as it came.
    func headWithFallback(_ decided: Decided, lookup: Lookup) async -> ResponsePlan {
        guard let entry = decided.entry, let freshness = decided.freshness,
              let reason = Self.fallbackReason(decided.decision) else { return .relay }
        guard await destinationAllowed(lookup) else { return .relay }
        let policy = effectivePolicy(lookup, entry: entry)
        var request = DataPlaneRequest(url: lookup.url, method: .HEAD, headers: lookup.headers)
        Self.applyTimeouts(policy, to: &request)
        let response = await dataPlane.serve(request)
        if response.isDataPlaneUnavailable { return .relay }
        let forward = Self.forward(reason)
        if Self.fallsBack(status: response.status, policy: policy.policy) {
            let status = CacheStatus(hit: true, forward: forward, forwardStatus: Int(response.status.code),
                                     ttl: freshness.lifetime - freshness.age, detail: "stale-if-error")
            return .local(localAnswer(entry, freshness: freshness, status: status, request: lookup))
        }
        return relayFromDataPlane(response, status: CacheStatus(forward: forward, forwardStatus: Int(response.status.code)),
                                  lookup: lookup)
    }

    /// Whether an upstream answer counts as a failure a policy's fallback covers: a 5xx (the data
    /// plane's own 502 and 504 for unreachable and silent origins among them), and under
    /// StaleIfError a 404 or 410 too (a mirror that dropped a file the CI still asks for).
    static func fallsBack(status: HTTPResponseStatus, policy: CachePolicy) -> Bool {
        status.code >= 500 || (policy == .staleIfError && (status == .notFound || status == .gone))
    }

    /// The stored entry in place of a failed upstream answer, or nil when its body is not there
    /// any more (the failure is then relayed).
    func serveFallback(_ entry: CacheDocument.Entry, id: String, freshness: Freshness, forward: CacheStatus.Forward,
                       failedStatus: HTTPResponseStatus, lookup: Lookup) async -> ResponsePlan? {
        let status = CacheStatus(hit: true, forward: forward, forwardStatus: Int(failedStatus.code),
                                 ttl: freshness.lifetime - freshness.age, detail: "stale-if-error")
        if entry.manifest == nil || ClientConditionals.notModified(lookup.headers, stored: entry.stored.headers) {
            return .local(localAnswer(entry, freshness: freshness, status: status, request: lookup))
        }
        let request = storedBodyRequest(entry, id: id, lookup: lookup)
        let response = await dataPlane.serve(request)
        guard !response.isDataPlaneUnavailable, response.headers.first(name: "X-Xs3lerator-Cache-Hit") == "true" else { return nil }
        return stream(response, entry: entry, freshness: freshness, status: status, lookup: lookup)
    }

    /// A read of the stored body and nothing else (`cacheOnly`), with the client's range.
    func storedBodyRequest(_ entry: CacheDocument.Entry, id: String, lookup: Lookup) -> DataPlaneRequest {
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers,
                                       range: ClientConditionals.range(lookup.headers, stored: entry.stored.headers),
                                       cacheKey: id, manifest: entry.manifest)
        request.cacheOnly = true
        request.hitPieceSize = settings.hitPieceSize
        return request
    }

    /// The policy once the entry's Content-Type is known.
    func effectivePolicy(_ lookup: Lookup, entry: CacheDocument.Entry?) -> ResolvedPolicy {
        guard let entry else { return lookup.resolution.resolvedForMiss }
        return lookup.resolution.resolved(for: entry.stored)
    }

    /// A rule's timeouts, as the data plane takes them: a zero read timeout disables it.
    static func applyTimeouts(_ policy: ResolvedPolicy, to request: inout DataPlaneRequest) {
        guard let timeouts = policy.timeouts else { return }
        if let connect = timeouts.connect { request.connectTimeout = connect }
        if let read = timeouts.read { request.readTimeout = .some(read == .zero ? nil : read) }
    }

    /// `variant`: the id the vary index selects for this request, if the URL has one; downloads are
    /// then shared per variant, otherwise per URL and `Accept-Encoding`. `fallback`: a stored entry
    /// (and its id) to serve if upstream fails.
    func fetch(_ lookup: Lookup, forward: CacheStatus.Forward, requestTime: Int64, variant: String?,
               fallback: (entry: CacheDocument.Entry, id: String, freshness: Freshness)? = nil) async -> ResponsePlan {
        guard await destinationAllowed(lookup) else { return .relay }
        let hadVaryIndex = variant != nil
        let policy = effectivePolicy(lookup, entry: fallback?.entry)
        let stored = NIOLockedValueBox<Bool?>(nil)
        var request = DataPlaneRequest(url: lookup.url, headers: lookup.headers, range: Self.upstreamRange(lookup.headers),
                                       cacheKey: variant ?? lookup.downloadKey, cacheSkip: true)
        // Shared per Accept-Encoding, stored by URL when the response turns out not to vary.
        if variant == nil, lookup.downloadKey != lookup.key.id { request.unvariedKey = lookup.key.id }
        Self.applyTimeouts(policy, to: &request)
        request.storeFields = storeFields(lookup, requestTime: requestTime, stored: stored,
                                          keepingEntryOnFailure: fallback == nil ? nil : policy.policy)
        let response = await dataPlane.serve(request)
        if response.isDataPlaneUnavailable { return .relay }
        if let fallback, Self.fallsBack(status: response.status, policy: policy.policy),
           let plan = await serveFallback(fallback.entry, id: fallback.id, freshness: fallback.freshness, forward: forward,
                                          failedStatus: response.status, lookup: lookup) {
            return plan
        }
        await storeIfRedirect(response, lookup: lookup, requestTime: requestTime, stored: stored)
        let verdict = stored.withLockedValue { $0 } == true
        if verdict { await updateVaryIndex(lookup, vary: response.headers[canonicalForm: "vary"].map(String.init),
                                           hadVaryIndex: hadVaryIndex) }
        return relayFromDataPlane(response, status: CacheStatus(forward: forward, stored: verdict), lookup: lookup)
    }

    /// A redirect has no body for the data plane's sink: its document is written here, replacing
    /// the entry (a fallback redirect gets the new `Location`); `stored` records the verdict.
    func storeIfRedirect(_ response: DataPlaneResponse, lookup: Lookup, requestTime: Int64,
                         stored: NIOLockedValueBox<Bool?>) async {
        guard (300..<400).contains(response.status.code), response.status != .notModified else { return }
        let kept = await storeRedirect(response, lookup: lookup, requestTime: requestTime)
        stored.withLockedValue { $0 = kept }
    }

    /// Records the `Vary` an origin sent for the URL, so later lookups select the variant; removes
    /// the record when a response no longer varies.
    func updateVaryIndex(_ lookup: Lookup, vary: [String], hadVaryIndex: Bool) async {
        do {
            if vary.isEmpty {
                if hadVaryIndex { try await metadata.delete(lookup.key.varyIndexID) }
            } else {
                try await metadata.upsert(lookup.key.varyIndexID, fields: [
                    "doc_type": .string("vary_index"), "vary": .string(vary.joined(separator: ", ")),
                ])
            }
        } catch {
            logger.warning("updating the vary index failed", metadata: ["key": "\(lookup.key.varyIndexID)", "error": "\(error)"])
        }
    }

    /// The destination check the relay makes, made before the data plane goes upstream: a denied
    /// one is left to the relay, which refuses it with its usual answer.
    func destinationAllowed(_ lookup: Lookup) async -> Bool {
        do {
            _ = try await destinations.resolve(host: lookup.host, port: lookup.port, timeout: settings.destinationCheckTimeout,
                                               on: lookup.eventLoop).get()
            return true
        } catch {
            return false
        }
    }
}
