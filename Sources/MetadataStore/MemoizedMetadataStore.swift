import NIOConcurrencyHelpers
import NIOCore
import Recency

/// A metadata store that remembers recently read documents, and recently confirmed absences, in
/// memory: a hot entry's lookup becomes a dictionary access instead of a query and a JSON decode.
///
/// It stays coherent with every write that goes through it. A write forgets the ids it touches
/// when it starts and again when it ends, and a read that overlapped a write of one of its ids
/// does not remember that id (it may have seen the old document). Writes made elsewhere (another
/// process sharing the store) are seen once `lifetime` has passed. Bounded in entries and in the
/// approximate bytes the documents take.
public final class MemoizedMetadataStore: MetadataStore {
    public let base: any MetadataStore
    let lifetime: TimeAmount
    let byteLimit: Int

    private struct Remembered: Sendable {
        /// nil: the store had no such document.
        var document: MetadataFields?
        var bytes: Int
        /// Uptime nanoseconds. Kept here, not as the LRU's expiry, so expired entries leave
        /// through `forget` and their bytes are counted out.
        var expires: UInt64
        /// What a caller derived from the document (`peek(_:deriving:)`), kept as long as it.
        var derived: (any Sendable)?
    }

    private struct Read: Sendable {
        var ids: Set<String>
        /// Ids written while the read ran: not remembered from it.
        var tainted: Set<String>
    }

    private struct State: Sendable {
        var documents: LRUCache<String, Remembered>
        var bytes = 0
        /// Writes in flight per id.
        var writing: [String: Int] = [:]
        var reads: [UInt64: Read] = [:]
        var nextRead: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>

    /// `capacity` documents and about `byteLimit` bytes of them at most, each for `lifetime`.
    public init(_ base: any MetadataStore, capacity: Int = 16_384, byteLimit: Int = 32 << 20,
                lifetime: TimeAmount = .seconds(60)) {
        self.base = base
        self.lifetime = lifetime
        self.byteLimit = byteLimit
        self.state = NIOLockedValueBox(State(documents: LRUCache(capacity: max(1, capacity))))
    }

    /// The remembered documents for `ids` (a nil value: known to be absent), or nil unless every
    /// id is remembered. Never waits.
    public func peek(_ ids: [String]) -> [String: MetadataFields?]? {
        let now = NIODeadline.now().uptimeNanoseconds
        return state.withLockedValue { state in
            var found: [String: MetadataFields?] = [:]
            for id in ids {
                guard let remembered = state.documents.value(for: id, now: 0) else { return nil }
                guard remembered.expires > now else {
                    Self.forget(id, in: &state)
                    return nil
                }
                found[id] = remembered.document
            }
            return found
        }
    }

    /// Like `peek`, with a value derived from each document kept beside it: `derive` runs once
    /// per remembered document (the cache keeps its decoded entries this way), under the memo's
    /// lock, so it must be quick and must not wait.
    public func peek<Derived: Sendable>(_ ids: [String], deriving derive: (MetadataFields?) -> Derived)
        -> [String: (document: MetadataFields?, derived: Derived)]? {
        let now = NIODeadline.now().uptimeNanoseconds
        return state.withLockedValue { state in
            var found: [String: (document: MetadataFields?, derived: Derived)] = [:]
            for id in ids {
                guard var remembered = state.documents.value(for: id, now: 0) else { return nil }
                guard remembered.expires > now else {
                    Self.forget(id, in: &state)
                    return nil
                }
                if let derived = remembered.derived as? Derived {
                    found[id] = (remembered.document, derived)
                } else {
                    let derived = derive(remembered.document)
                    remembered.derived = derived
                    state.documents.insert(remembered, for: id, expires: .max)
                    found[id] = (remembered.document, derived)
                }
            }
            return found
        }
    }

    /// How many documents (and absences) are remembered.
    public var rememberedCount: Int { state.withLockedValue { $0.documents.count } }

    /// Forgets `ids` now, before a write about them is even started (the cache's invalidation,
    /// so a request that follows on the same connection is not answered from memory).
    public func forget(_ ids: [String]) {
        state.withLockedValue { state in Self.written(Set(ids), in: &state) }
    }

    // MARK: MetadataStore

    public func get(_ ids: [String]) async throws -> [String: MetadataFields] {
        if let known = peek(ids) { return known.compactMapValues { $0 } }
        let token = state.withLockedValue { state -> UInt64 in
            state.nextRead += 1
            let unique = Set(ids)
            state.reads[state.nextRead] = Read(ids: unique, tainted: unique.filter { state.writing[$0] != nil })
            return state.nextRead
        }
        let documents: [String: MetadataFields]
        do {
            documents = try await base.get(ids)
        } catch {
            _ = state.withLockedValue { $0.reads.removeValue(forKey: token) }
            throw error
        }
        let expires = NIODeadline.now().uptimeNanoseconds + UInt64(max(0, lifetime.nanoseconds))
        let sizes = Dictionary(uniqueKeysWithValues: Set(ids).map { ($0, Self.approximateBytes(of: documents[$0], id: $0)) })
        state.withLockedValue { state in
            guard let read = state.reads.removeValue(forKey: token) else { return }
            for id in read.ids where !read.tainted.contains(id) {
                let size = sizes[id] ?? 0
                guard size <= byteLimit / 8 else { continue }
                Self.forget(id, in: &state)
                while state.documents.count >= state.documents.capacity || state.bytes + size > byteLimit,
                      let oldest = state.documents.removeOldest() {
                    state.bytes -= oldest.value.bytes
                }
                state.documents.insert(Remembered(document: documents[id], bytes: size, expires: expires), for: id, expires: .max)
                state.bytes += size
            }
        }
        return documents
    }

    public func upsert(_ id: String, fields: MetadataFields) async throws {
        try await writing([id]) { try await base.upsert(id, fields: fields) }
    }

    public func bulkUpdate(_ updates: [MetadataUpdate]) async throws -> [MetadataItemFailure] {
        try await writing(updates.map(\.id)) { try await base.bulkUpdate(updates) }
    }

    public func delete(_ id: String) async throws {
        try await writing([id]) { try await base.delete(id) }
    }

    public func ensureSchema() async throws { try await base.ensureSchema() }

    public func checkHealth() async throws { try await base.checkHealth() }

    public func scan(fields: [String], pageSize: Int, _ page: ([String: MetadataFields]) async throws -> Void) async throws {
        try await base.scan(fields: fields, pageSize: pageSize, page)
    }

    // MARK: Coherence

    private func writing<T>(_ ids: [String], _ body: () async throws -> T) async throws -> T {
        let unique = Set(ids)
        state.withLockedValue { state in
            for id in unique { state.writing[id, default: 0] += 1 }
            Self.written(unique, in: &state)
        }
        defer {
            state.withLockedValue { state in
                for id in unique {
                    let left = (state.writing[id] ?? 1) - 1
                    state.writing[id] = left > 0 ? left : nil
                }
                Self.written(unique, in: &state)
            }
        }
        return try await body()
    }

    /// `ids` are being (or have been) written: forgotten, and tainted in every read in flight.
    private static func written(_ ids: Set<String>, in state: inout State) {
        for id in ids { forget(id, in: &state) }
        for (token, read) in state.reads where !read.ids.isDisjoint(with: ids) {
            state.reads[token]!.tainted.formUnion(read.ids.intersection(ids))
        }
    }

    private static func forget(_ id: String, in state: inout State) {
        if let old = state.documents.removeValue(for: id) { state.bytes -= old.bytes }
    }

    /// Roughly what a document costs in memory: its strings' bytes plus a fixed cost per value.
    static func approximateBytes(of document: MetadataFields?, id: String) -> Int {
        func size(_ value: JSONValue) -> Int {
            switch value {
            case .string(let text): return 32 + text.utf8.count
            case .array(let items): return 32 + items.reduce(0) { $0 + size($1) }
            case .object(let fields): return 32 + fields.reduce(0) { $0 + 32 + $1.key.utf8.count + size($1.value) }
            default: return 16
            }
        }
        return 64 + id.utf8.count + (document.map { size(.object($0)) } ?? 0)
    }
}
