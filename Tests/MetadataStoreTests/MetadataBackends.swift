import FakeElasticsearch
import Foundation
import MetadataStore
import StorageCore
import TestSupport

enum MetadataBackend: String, CaseIterable, Sendable {
    case sqlite
    case elasticsearch
    /// SQLite behind passsage's in-memory memo: it must keep the same contract.
    case memoizedSQLite
}

/// Retries that do not slow the tests down. The time budget is generous so that the number of
/// attempts, which tests count, does not depend on how loaded the machine is.
let quickRetries = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(5), maxDelay: .milliseconds(20), totalBudget: .seconds(120))

/// Runs `body` against a fresh, empty store of `backend` (no schema yet): a SQLite file in a
/// temporary directory, or an index on a fake Elasticsearch node. Torn down afterwards.
func withMetadataStore(_ backend: MetadataBackend, _ body: (any MetadataStore) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteMetadataStore.open(path: directory + "/metadata.sqlite")
        try await withTeardown({ try await body(store) }) { try? await store.close() }
    case .elasticsearch:
        try await withFakeElasticsearch { fake, store in try await body(store) }
    case .memoizedSQLite:
        try await withMetadataStore(.sqlite) { store in try await body(MemoizedMetadataStore(store)) }
    }
}

/// A fake Elasticsearch node and a store pointed at it.
func withFakeElasticsearch(authentication: FakeElasticsearch.Authentication = .none,
                           client: ElasticsearchMetadataStore.Configuration.Authentication = .none,
                           retry: RetryPolicy = quickRetries,
                           _ body: (FakeElasticsearch, ElasticsearchMetadataStore) async throws -> Void) async throws {
    let fake = try await FakeElasticsearch.start(authentication: authentication)
    let store: ElasticsearchMetadataStore
    do {
        store = try ElasticsearchMetadataStore(configuration: .init(url: fake.url, authentication: client, retry: retry))
    } catch {
        await fake.stop()
        throw error
    }
    try await withTeardown({ try await body(fake, store) }) {
        try? await store.shutdown()
        await fake.stop()
    }
}

/// The metadata error `body` throws, or a test failure if it throws something else or nothing.
func metadataError(_ body: () async throws -> Void) async throws -> MetadataStoreError {
    try await thrownError(MetadataStoreError.self, body)
}
