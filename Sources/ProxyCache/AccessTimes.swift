import Logging
import MetadataStore
import NIOConcurrencyHelpers
import StorageCore

/// The `last_access` of the entries the cache finds, batched: each lookup that finds an entry
/// records it in memory (the last time per id wins), and one bulk update writes them every
/// `interval` and once more on shutdown (bug 25: the original lost the pending batch when it
/// stopped). A failed flush is logged and kept for the next one.
public final class AccessTimes: Sendable {
    let metadata: any MetadataStore
    let interval: Duration
    let logger: Logger
    /// Ids kept between flushes at most; touches past it wait for the next flush.
    static let pendingLimit = 100_000
    private let pending = NIOLockedValueBox([String: Int64]())

    /// `metadata`: the store itself, not a memo in front of it. Nothing serves from `last_access`,
    /// so its writes must not make the memo forget the hot entries every interval.
    public init(metadata: any MetadataStore, interval: Duration = .seconds(30), logger: Logger) {
        self.metadata = (metadata as? MemoizedMetadataStore)?.base ?? metadata
        self.interval = interval
        self.logger = logger
    }

    func touch(_ id: String, at time: Int64) {
        pending.withLockedValue { pending in
            if pending.count < Self.pendingLimit || pending[id] != nil { pending[id] = time }
        }
    }

    var pendingCount: Int { pending.withLockedValue { $0.count } }

    /// Writes what is pending (documents that no longer exist are skipped by the store).
    public func flush() async {
        let batch = pending.withLockedValue { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !batch.isEmpty else { return }
        let updates = batch.map { MetadataUpdate(id: $0.key, fields: ["last_access": .string(Timestamps.formatISO8601($0.value))]) }
        do {
            _ = try await metadata.bulkUpdate(updates)
        } catch {
            // Kept for the next flush (the one at shutdown included), unless touched again since.
            pending.withLockedValue { pending in
                for (id, time) in batch where pending[id] == nil && pending.count < Self.pendingLimit { pending[id] = time }
            }
            logger.warning("writing last_access failed; kept for the next flush", metadata: ["documents": "\(updates.count)", "error": "\(error)"])
        }
    }

    /// Flushes every `interval` until cancelled. The last batch is the owner's to `flush` once this
    /// has returned (a store call made in a cancelled task would be cancelled too).
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            await flush()
        }
    }
}
