import ChunkManifest
import DownloadEngine
import MetadataStore
import NIOCore
import StorageCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Revalidating a cached entry (reference §6), with either validator.
extension DataPlane {
    /// A conditional GET upstream with the entry's validators: 304 serves the cache
    /// (`X-Xs3lerator-Revalidated: true`), a 200 replaces the entry, and with Stale-If-Error an
    /// upstream failure (5xx, refused, timeout) serves the cache (`stale-error`).
    func revalidate(_ request: DataPlaneRequest, key: String) async -> DataPlaneResponse {
        if request.backgroundRevalidate { return await revalidateInBackground(request, key: key) }
        let upstream = upstreamRequest(request, keyed: true, validators: (request.ifNoneMatch, request.ifModifiedSince))
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(upstream)
        } catch {
            if request.staleIfError, let stale = await serveCached(request, key: key, revalidated: "stale-error") {
                metrics.revalidated(.staleOnError)
                return stale
            }
            metrics.revalidated(.failed)
            return failure(classify(error, upstream), keyed: true)
        }
        if response.status == .notModified {
            if let cached = await serveCached(request, key: key, revalidated: "true") {
                metrics.revalidated(.notModified)
                return cached
            }
            // Nothing usable is cached after all: fetch it unconditionally.
            return await miss(request, key: key)
        }
        if response.status.code >= 500, request.staleIfError,
           let stale = await serveCached(request, key: key, revalidated: "stale-error") {
            metrics.revalidated(.staleOnError)
            return stale
        }
        metrics.revalidated(response.status == .ok ? .modified : .failed)
        // A 200 replaces the entry; the range requests of its download carry no conditionals.
        return await store(response, request: request, key: key, upstream: upstream, registered: false)
    }

    private func serveCached(_ request: DataPlaneRequest, key: String, revalidated: String) async -> DataPlaneResponse? {
        guard case .served(let response) = await hit(request, key: key, extraHeaders: ["X-Xs3lerator-Revalidated": revalidated]) else {
            return nil
        }
        return response
    }

    /// Serves the cache at once and revalidates it in the background, once per key however many
    /// requests ask meanwhile. With nothing cached it fetches now (the original answered 404).
    private func revalidateInBackground(_ request: DataPlaneRequest, key: String) async -> DataPlaneResponse {
        guard case .served(let response) = await hit(request, key: key,
                                                     extraHeaders: ["X-Xs3lerator-Background-Revalidate": "accepted"]) else {
            if request.cacheOnly {
                return .text(.gatewayTimeout, "not in the cache\n", headers: ["X-Xs3lerator-Cache-Hit": "false"])
            }
            return await miss(request, key: key)
        }
        let limit = configuration.maximumBackgroundRefreshes
        guard revalidating.withLockedValue({ $0.count < limit && $0.insert(key).inserted }) else { return response }
        var refreshRequest = request
        refreshRequest.range = nil
        // Nobody waits on a background refresh, so "no read timeout" would let a stalled origin
        // hold its connection for ever: it gets the default one (or 5 minutes) instead.
        if case .some(.none) = request.readTimeout { refreshRequest.readTimeout = .some(configuration.upstreamReadTimeout ?? .seconds(300)) }
        let refresh = refreshRequest
        background.run { [self] in
            await refreshInBackground(refresh, key: key)
            _ = revalidating.withLockedValue { $0.remove(key) }
        }
        return response
    }

    private func refreshInBackground(_ request: DataPlaneRequest, key: String) async {
        let upstream = upstreamRequest(request, keyed: true, validators: (request.ifNoneMatch, request.ifModifiedSince))
        let response: UpstreamResponse
        do {
            response = try await fetcher.send(upstream)
        } catch {
            metrics.revalidated(.failed)
            logger.info("background revalidation failed; the cached entry stays", metadata: ["key": "\(key)", "error": "\(error)"])
            return
        }
        switch response.status {
        case .notModified:
            metrics.revalidated(.notModified)
            do {
                try await storage?.metadata.upsert(key, fields: ["stored_at": .string(Timestamp.iso8601(secondsSinceEpoch: Timestamp.now()))])
            } catch {
                logger.warning("background revalidation: refreshing stored_at failed", metadata: ["key": "\(key)", "error": "\(error)"])
            }
        case .ok:
            metrics.revalidated(.modified)
            // Cached like a miss, with no client: the reader this answer holds is dropped at
            // once and the sink finishes on its own.
            guard case .create = await fills.claim(key) else { return }
            _ = await store(response, request: request, key: key, upstream: upstream, registered: true)
            if let fill = fills.active(key) { _ = await fill.finished() }
        default:
            metrics.revalidated(.failed)
        }
    }
}

/// UTC timestamps in the form the original writes (`2026-03-05T09:50:00+00:00`).
enum Timestamp {
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    static func iso8601(secondsSinceEpoch seconds: Int64) -> String {
        Timestamps.formatISO8601(seconds)
    }
}
