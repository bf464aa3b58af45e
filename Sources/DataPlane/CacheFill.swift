import ChunkManifest
import DownloadEngine
import Logging
import MetadataStore
import NIOConcurrencyHelpers
import NIOHTTP1
import StorageCore

/// One keyed download being cached: the engine's download, shared by every request for the key
/// while it runs, and its sink, which hashes each completed chunk, stores it under its SHA-256,
/// and writes the manifest last, only once every chunk is stored. A failure anywhere writes no
/// manifest; the readers still get their bytes from the download's files.
final class CacheFill: Sendable, StoredChunkSource {
    enum Outcome: Sendable {
        case cached(Manifest)
        case failed(String)
    }

    let key: String
    let download: ChunkedDownload
    /// The upstream's response headers, filtered, without framing: every reader's response
    /// starts from them.
    let headers: HTTPHeaders
    let size: Int64
    /// The caller's fields, written with the manifest in the same update (`storeFields`).
    let fields: MetadataFields
    private let chunks: ChunkStore
    private let ids: NIOLockedValueBox<[ChunkID?]>
    private let outcome = Completion<Outcome>()
    private let storeFailure = NIOLockedValueBox<String?>(nil)

    /// Fields removed before `fields` are written (`StoreDirective.clearing`).
    let clearing: [String]
    /// Written as `manifest_tag` with the manifest (`DataPlaneRequest.tagsFills`).
    let tag: String?
    /// Which requests may share this download: those that send what the creator sent for the
    /// headers the response varies on.
    let varySelector: VarySelector

    init(key: String, download: ChunkedDownload, headers: HTTPHeaders, fields: MetadataFields = [:], clearing: [String] = [],
         varySelector: VarySelector = VarySelector(response: [:], request: [:]), tag: String? = nil, chunks: ChunkStore) {
        self.key = key
        self.download = download
        var headers = headers
        if let tag { headers.replaceOrAdd(name: CacheFill.tagHeader, value: tag) }
        self.headers = headers
        self.tag = tag
        self.fields = fields
        self.clearing = clearing
        self.varySelector = varySelector
        self.size = download.plan.totalSize
        self.chunks = chunks
        self.ids = NIOLockedValueBox(Array(repeating: nil, count: download.plan.count))
    }

    /// Waits for the manifest to be written (or for the fill to fail); nil if cancelled first.
    func finished() async -> Outcome? { await outcome.value }

    /// The sink: stores chunks as they complete (uploads bounded by the store's limiter), then
    /// writes the manifest into `metadata`. Runs until the whole object is cached or failed.
    func runSink(metadata: any MetadataStore, logger: Logger) async {
        let plan = download.plan
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<plan.count {
                    let chunk = try await download.completedChunk(index)
                    group.addTask {
                        let id: ChunkID
                        do {
                            id = try await self.chunks.store(chunk)
                        } catch {
                            self.storeFailure.withLockedValue { if $0 == nil { $0 = "\(error)" } }
                            // Stops the loop above at once: it waits on the sink's state too.
                            self.download.abandonSink()
                            throw error
                        }
                        self.ids.withLockedValue { $0[index] = id }
                        self.download.markStored(index)
                    }
                }
                try await group.waitForAll()
            }
            let stored = ids.withLockedValue { $0.compactMap { $0 } }
            let manifest = try Manifest(chunkSize: plan.chunkSize, totalSize: plan.totalSize, chunks: stored)
            var document = fields
            document["manifest_b64"] = .string(ManifestCodec.encodeBase64(manifest))
            if let tag { document["manifest_tag"] = .string(tag) }
            try await Self.write(document, clearing: clearing, to: key, in: metadata)
            logger.debug("cached", metadata: ["key": "\(key)", "size": "\(plan.totalSize)", "chunks": "\(stored.count)"])
            outcome.complete(.cached(manifest))
        } catch {
            download.abandonSink()
            let reason = storeFailure.withLockedValue { $0 } ?? "\(error)"
            logger.warning("not cached: no manifest written", metadata: ["key": "\(key)", "error": "\(reason)"])
            outcome.complete(.failed(reason))
        }
    }

    // MARK: StoredChunkSource

    /// A reader behind the download's files reads the stored copy, verified.
    func read(chunk index: Int, range: Range<Int64>) async throws -> ByteStream {
        guard let id = ids.withLockedValue({ $0[index] }) else {
            throw ChunkUnavailable(kind: .missing, chunk: "#\(index) of \(key)", detail: "released before it was stored")
        }
        return try await chunks.open(id, length: download.plan.length(of: index)).stream(range: range)
    }
}

/// A value set once, awaited by any number of tasks.
final class Completion<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextID = 0
    }

    private let state = NIOLockedValueBox(State())

    func complete(_ value: Value) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value once set; nil if the waiting task is cancelled first.
    var value: Value? {
        get async {
            let id = state.withLockedValue { state -> Int in
                state.nextID += 1
                return state.nextID
            }
            return await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                    let ready = state.withLockedValue { state -> Value?? in
                        if let value = state.value { return .some(value) }
                        if Task.isCancelled { return .some(nil) }
                        state.waiters[id] = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
            }
        }
    }

    /// The value if it is set, without waiting.
    var current: Value? { state.withLockedValue { $0.value } }
}

extension CacheFill {
    /// The response header that reports a download's `manifest_tag`.
    static let tagHeader = "X-Xs3lerator-Fill-Tag"

    /// A fresh fill tag: 128 random bits, hex.
    static func newTag() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Writes a stored entry's document: first removes `clearing` (so objects are replaced, not
    /// merged), then merges `document`.
    static func write(_ document: MetadataFields, clearing: [String], to key: String, in metadata: any MetadataStore) async throws {
        if !clearing.isEmpty {
            try await metadata.upsert(key, fields: Dictionary(uniqueKeysWithValues: clearing.map { ($0, JSONValue.null) }))
        }
        try await metadata.upsert(key, fields: document)
    }
}

/// The request headers a response varies on, as the request that started its download sent them.
struct VarySelector: Sendable {
    /// Lower-case names from `Vary`; nil for `Vary: *` (no other request may share).
    let names: [String]?
    let values: [String]

    init(response: HTTPHeaders, request: HTTPHeaders) {
        var names: [String] = []
        for value in response[canonicalForm: "vary"] {
            let name = value.lowercased()
            if name == "*" {
                self.names = nil
                self.values = []
                return
            }
            if !names.contains(name) { names.append(name) }
        }
        self.names = names
        self.values = names.map { request[canonicalForm: $0].joined(separator: ", ") }
    }

    func matches(_ request: HTTPHeaders) -> Bool {
        guard let names else { return false }
        return names.map { request[canonicalForm: $0].joined(separator: ", ") } == values
    }
}
