import Logging
import MetadataStore
import NIOConcurrencyHelpers
import StorageCore

/// The `last_access` of the entries the cache finds, batched: each lookup that finds an entry
/// records it in memory (the last time per id wins), and one bulk update writes them every
/// `interval` and once more on shutdown (bug 25: the original lost the pending batch when it
/// stopped). A failed flush is logged and dropped; it is advisory, nothing serves from it.
public final class AccessTimes: Sendable {
    let metadata: any MetadataStore
    let interval: Duration
    let logger: Logger
    /// Ids kept between flushes at most; touches past it wait for the next flush.
    static let pendingLimit = 100_000
    private let pending = NIOLockedValueBox([String: Int64]())

    public init(metadata: any MetadataStore, interval: Duration = .seconds(30), logger: Logger) {
        self.metadata = metadata
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
            logger.warning("writing last_access failed; dropped", metadata: ["documents": "\(updates.count)", "error": "\(error)"])
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
