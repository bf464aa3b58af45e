import FakeElasticsearch
import Foundation
import MetadataStore
import StorageCore
import TestSupport
import Testing

/// Elasticsearch-only behaviour: the index it creates, retries, errors that name the call,
/// authentication and cluster health.
@Suite struct ElasticsearchMetadataTests {
    @Test func indexIsCreatedWithTheOriginalSettingsAndMapping() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.ensureSchema()
            try await store.ensureSchema()
            #expect(fake.requestCount("create index") == 2)
            #expect(fake.createIndexBodies.count == 1)
            let created = try #require(fake.createIndexBodies.first)
            let body = try #require(try JSONSerialization.jsonObject(with: created) as? [String: Any])
            let settings = try #require(body["settings"] as? [String: Any])
            #expect(settings["number_of_shards"] as? Int == 9)
            #expect(settings["number_of_replicas"] as? Int == 1)
            #expect(settings["refresh_interval"] as? String == "60s")
            let mappings = try #require(body["mappings"] as? [String: Any])
            #expect(mappings["dynamic"] as? Bool == false)
            let properties = try #require(mappings["properties"] as? [String: Any])
            #expect(Set(properties.keys) == ["status_code", "url", "extension", "content_size", "stored_at", "last_access",
                                             "headers", "vary", "vary_request", "doc_type", "manifest_b64"])
        }
    }

    @Test func documentIDsArePercentEncodedInPaths() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.ensureSchema()
            let id = "https://host/a b/c?d=e#f"
            try await store.upsert(id, fields: ["url": .string(id), "stale": nil])
            // The fake decoded the path back to the exact id; ES keeps the null, reads drop it.
            #expect(fake.storedSource(index: "passsage_meta", id: id) == "{\"stale\":null,\"url\":\"\(id)\"}")
            #expect(try await store.get([id])[id] == ["url": .string(id)])
            #expect(ElasticsearchMetadataStore.encodeID("a/b c.d") == "a%2Fb%20c%2Ed")
        }
    }

    @Test func conflictsAndThrottlingAreRetried() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.ensureSchema()
            fake.injectFailures(2, call: "_update", status: 409, type: "version_conflict_engine_exception")
            try await store.upsert("a", fields: ["n": 1])
            #expect(fake.requestCount("_update") == 3)

            fake.injectFailures(1, call: "_mget", status: 429, type: "es_rejected_execution_exception")
            #expect(try await store.get(["a"]) == ["a": ["n": 1]])
            #expect(fake.requestCount("_mget") == 2)

            fake.injectFailures(1, call: "_bulk", status: 503, type: "unavailable_shards_exception")
            #expect(try await store.bulkUpdate([MetadataUpdate(id: "a", fields: ["n": 2])]).isEmpty)
            #expect(fake.requestCount("_bulk") == 2)
            #expect(try await store.get(["a"]) == ["a": ["n": 2]])
        }
    }

    @Test func permanentFailuresNameTheCallWithinTheRetryBound() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.ensureSchema()
            fake.injectFailures(100, call: "_mget", status: 503, type: "unavailable_shards_exception")
            let unavailable = try await metadataError { _ = try await store.get(["a"]) }
            #expect(unavailable.call == "_mget")
            #expect(unavailable.kind == .transient)
            #expect(unavailable.status == 503)
            #expect(unavailable.message.contains("unavailable_shards_exception"))
            #expect(fake.requestCount("_mget") == quickRetries.maxAttempts)

            // A bad request is not retried.
            fake.injectFailures(1, call: "_update", status: 400, type: "mapper_parsing_exception")
            let invalid = try await metadataError { try await store.upsert("a", fields: ["n": 1]) }
            #expect(invalid.kind == .invalidInput)
            #expect(invalid.call == "_update")
            #expect(fake.requestCount("_update") == 1)
        }
    }

    @Test func bulkItemConflictIsReportedAndTheRestApplies() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.ensureSchema()
            try await store.upsert("a", fields: ["n": 1])
            try await store.upsert("b", fields: ["n": 1])
            fake.injectFailures(1, call: "bulk item", id: "b", status: 409, type: "version_conflict_engine_exception")
            let failures = try await store.bulkUpdate([MetadataUpdate(id: "a", fields: ["n": 2]), MetadataUpdate(id: "b", fields: ["n": 2])])
            #expect(failures.map(\.id) == ["b"])
            #expect(failures.first?.type == "version_conflict_engine_exception")
            #expect(try await store.get(["a", "b"]) == ["a": ["n": 2], "b": ["n": 1]])
        }
    }

    @Test func basicAndAPIKeyAuthentication() async throws {
        try await withFakeElasticsearch(authentication: .basic(username: "elastic", password: "s3cret"),
                                        client: .basic(username: "elastic", password: "s3cret")) { _, store in
            try await store.ensureSchema()
            try await store.checkHealth()
        }
        try await withFakeElasticsearch(authentication: .apiKey("aWQ6a2V5"), client: .apiKey("aWQ6a2V5")) { _, store in
            try await store.ensureSchema()
        }
        // The URL's user information (percent-encoded) is Basic authentication, and leaves the URL.
        try await withFakeElasticsearch(authentication: .basic(username: "elastic", password: "s3cret:@/")) { fake, _ in
            let address = fake.url.replacingOccurrences(of: "http://", with: "http://elastic:s3cret%3A%40%2F@")
            let store = try ElasticsearchMetadataStore(configuration: .init(url: address + "/", retry: quickRetries))
            #expect(store.configuration.url == fake.url)
            try await withTeardown({ try await store.ensureSchema() }) { try? await store.shutdown() }
        }
        try await withFakeElasticsearch(authentication: .basic(username: "elastic", password: "s3cret"),
                                        client: .basic(username: "elastic", password: "wrong")) { fake, store in
            let refused = try await metadataError { try await store.ensureSchema() }
            #expect(refused.kind == .unauthorized)
            #expect(refused.call == "create index")
            #expect(refused.status == 401)
            #expect(fake.requestCount("create index") == 0)
        }
    }

    @Test func credentialsInTheURL() throws {
        typealias Configuration = ElasticsearchMetadataStore.Configuration
        let plain = try Configuration(url: "https://es.example:9200/prefix/")
        #expect(plain.url == "https://es.example:9200/prefix")
        guard case .none = plain.authentication else { Issue.record("no credentials, no authentication"); return }
        let basic = try Configuration(url: "https://user%20name:pa%3Ass@es.example:9200/a@b")
        #expect(basic.url == "https://es.example:9200/a@b", "an @ in the path is not user information")
        guard case .basic("user name", "pa:ss") = basic.authentication else {
            Issue.record("\(basic.authentication)")
            return
        }
        let userOnly = try Configuration(url: "http://reader@es.example")
        guard case .basic("reader", "") = userOnly.authentication else { Issue.record("\(userOnly.authentication)"); return }
        #expect(throws: MetadataStoreError.self) {
            try Configuration(url: "https://u:p@es.example", authentication: .apiKey("aWQ6a2V5"))
        }
        let upper = try Configuration(url: "HTTPS://u:p@ES.example:9200")
        #expect(upper.url == "https://ES.example:9200")
        let ipv6 = try Configuration(url: "http://u:p@[::1]:9200/")
        #expect(ipv6.url == "http://[::1]:9200")
        guard case .none = try Configuration(url: "http://@es.example").authentication else {
            Issue.record("empty user information is no credentials")
            return
        }
        // Malformed credentials fail, and no message repeats the password.
        for url in ["elastic:s3cret@es.example:9200", "https://elastic:s3/cret@es.example:9200",
                    "https://:s3cret@es.example", "https://elastic:s3cret%zz@es.example"] {
            do {
                _ = try Configuration(url: url)
                Issue.record("accepted \(url)")
            } catch let error as MetadataStoreError {
                #expect(!error.message.contains("s3"), "\(url): \(error.message)")
            }
        }
    }

    @Test func redClusterFailsTheHealthCheck() async throws {
        try await withFakeElasticsearch { fake, store in
            try await store.checkHealth()
            fake.setClusterStatus("red")
            let red = try await metadataError { try await store.checkHealth() }
            #expect(red.call == "cluster health")
            #expect(red.message.contains("red"))
        }
    }

    @Test func unreachableClusterIsATransientErrorNamingTheURL() async throws {
        let store = try ElasticsearchMetadataStore(configuration: .init(url: "http://127.0.0.1:9", connectTimeout: .milliseconds(500),
                                                                        retry: .none))
        let error = try await metadataError { try await store.checkHealth() }
        try await store.shutdown()
        #expect(error.kind == .transient)
        #expect(error.message.contains("127.0.0.1:9"))
    }

    @Test func badConfigurationIsRefused() {
        #expect(throws: MetadataStoreError.self) { try ElasticsearchMetadataStore.Configuration(url: "localhost:9200") }
        #expect(throws: MetadataStoreError.self) { try ElasticsearchMetadataStore.Configuration(url: "http://es", index: "Passsage") }
        #expect(throws: MetadataStoreError.self) { try ElasticsearchMetadataStore.Configuration(url: "http://es", shards: 0) }
    }
}
