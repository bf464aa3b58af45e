import Foundation
import MetadataStore
import NIOConcurrencyHelpers
import NIOCore
import TestSupport
import Testing

/// A store whose reads wait at a gate the test opens, to race a write against a read.
final class GatedStore: MetadataStore {
    let base: any MetadataStore
    private let gate = NIOLockedValueBox<(closed: Bool, waiters: [CheckedContinuation<Void, Never>], reads: Int)>((false, [], 0))

    init(_ base: any MetadataStore) { self.base = base }

    func close() { gate.withLockedValue { $0.closed = true } }

    func open() {
        let waiters = gate.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closed = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var reads: Int { gate.withLockedValue { $0.reads } }
    var waitingReads: Int { gate.withLockedValue { $0.waiters.count } }

    func get(_ ids: [String]) async throws -> [String: MetadataFields] {
        let documents = try await base.get(ids)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = gate.withLockedValue { state -> Bool in
                state.reads += 1
                if state.closed { state.waiters.append(continuation) }
                return state.closed
            }
            if !wait { continuation.resume() }
        }
        return documents
    }

    func ensureSchema() async throws { try await base.ensureSchema() }
    func upsert(_ id: String, fields: MetadataFields) async throws { try await base.upsert(id, fields: fields) }
    func bulkUpdate(_ updates: [MetadataUpdate]) async throws -> [MetadataItemFailure] { try await base.bulkUpdate(updates) }
    func delete(_ id: String) async throws { try await base.delete(id) }
    func checkHealth() async throws { try await base.checkHealth() }
    func scan(fields: [String], pageSize: Int, _ page: ([String: MetadataFields]) async throws -> Void) async throws {
        try await base.scan(fields: fields, pageSize: pageSize, page)
    }
}

@Suite("Metadata memo")
struct MemoizedMetadataTests {
    @Test("a read is remembered, absences too; the next read of the same ids never reaches the store")
    func remembersReadsAndAbsences() async throws {
        try await withMetadataStore(.sqlite) { sqlite in
            try await sqlite.ensureSchema()
            try await sqlite.upsert("a", fields: ["n": 1])
            let gated = GatedStore(sqlite)
            let memo = MemoizedMetadataStore(gated)
            #expect(memo.peek(["a", "missing"]) == nil)
            #expect(try await memo.get(["a", "missing"]) == ["a": ["n": 1]])
            let known = try #require(memo.peek(["a", "missing"]))
            #expect(known["a"]! == ["n": 1] && known["missing"]! == nil)
            #expect(try await memo.get(["missing", "a"]) == ["a": ["n": 1]])
            #expect(gated.reads == 1)
            #expect(memo.peek(["a", "b"]) == nil, "one unknown id: nothing is answered from memory")
        }
    }

    @Test("every write forgets what it touches: upsert, bulk update and delete are read back new")
    func writesAreSeen() async throws {
        try await withMetadataStore(.sqlite) { sqlite in
            try await sqlite.ensureSchema()
            let memo = MemoizedMetadataStore(sqlite)
            _ = try await memo.get(["a", "b"])
            try await memo.upsert("a", fields: ["n": 1])
            #expect(memo.peek(["a"]) == nil)
            #expect(try await memo.get(["a", "b"]) == ["a": ["n": 1]])
            _ = try await memo.bulkUpdate([MetadataUpdate(id: "b", fields: ["m": 2], createIfMissing: true),
                                           MetadataUpdate(id: "a", fields: ["n": 3])])
            #expect(try await memo.get(["a", "b"]) == ["a": ["n": 3], "b": ["m": 2]])
            try await memo.delete("a")
            #expect(try await memo.get(["a", "b"]) == ["b": ["m": 2]])
        }
    }

    @Test("a read that overlaps a write of its id is not remembered (it may hold the old document)")
    func racingReadIsNotRemembered() async throws {
        try await withMetadataStore(.sqlite) { sqlite in
            try await sqlite.ensureSchema()
            try await sqlite.upsert("a", fields: ["v": "old"])
            let gated = GatedStore(sqlite)
            let memo = MemoizedMetadataStore(gated)
            gated.close()
            // The read has its (old) document and waits; the write goes through meanwhile.
            async let stale = memo.get(["a", "other"])
            try await waitUntil(timeout: 10, "the read to wait") { gated.waitingReads == 1 }
            try await memo.upsert("a", fields: ["v": "new"])
            gated.open()
            #expect(try await stale["a"] == ["v": "old"])
            let known = memo.peek(["other"])
            #expect(known != nil, "ids the write did not touch are remembered")
            #expect(memo.peek(["a"]) == nil, "the raced id is not")
            #expect(try await memo.get(["a"]) == ["a": ["v": "new"]])
        }
    }

    @Test("bounded in entries and bytes; entries expire after their lifetime")
    func boundedAndExpiring() async throws {
        try await withMetadataStore(.sqlite) { sqlite in
            try await sqlite.ensureSchema()
            let big = String(repeating: "x", count: 10_000)
            for index in 0..<50 { try await sqlite.upsert("doc-\(index)", fields: ["big": .string(big)]) }
            let byBytes = MemoizedMetadataStore(sqlite, capacity: 1_000, byteLimit: 100_000)
            for index in 0..<50 { _ = try await byBytes.get(["doc-\(index)"]) }
            #expect(byBytes.rememberedCount <= 10 && byBytes.rememberedCount >= 5, "\(byBytes.rememberedCount)")
            #expect(byBytes.peek(["doc-49"]) != nil && byBytes.peek(["doc-0"]) == nil, "the least recently used go first")

            let byCount = MemoizedMetadataStore(sqlite, capacity: 8)
            for index in 0..<50 { _ = try await byCount.get(["doc-\(index)"]) }
            #expect(byCount.rememberedCount == 8)

            let short = MemoizedMetadataStore(sqlite, lifetime: .milliseconds(50))
            _ = try await short.get(["doc-1"])
            #expect(short.peek(["doc-1"]) != nil)
            try await waitUntil(timeout: 10, "the entry to expire") { short.peek(["doc-1"]) == nil }
            #expect(short.rememberedCount == 0)
        }
    }
}
