import MetadataStore
import Testing

/// What every metadata store must do, run against SQLite and against Elasticsearch (a fake node
/// answering in ES's documented shapes).
@Suite struct MetadataStoreContractTests {
    @Test(arguments: MetadataBackend.allCases)
    func schemaIsCreatedOnceAndCallsBeforeItSaySo(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            let early = try await metadataError { _ = try await store.get(["a"]) }
            #expect(early.kind == .schemaMissing, "\(early)")
            let earlyWrite = try await metadataError { try await store.upsert("a", fields: ["status_code": 200]) }
            #expect(earlyWrite.kind == .schemaMissing, "\(earlyWrite)")
            let earlyBulk = try await metadataError { _ = try await store.bulkUpdate([MetadataUpdate(id: "a", fields: ["x": 1])]) }
            #expect(earlyBulk.kind == .schemaMissing, "\(earlyBulk)")

            try await store.ensureSchema()
            try await store.ensureSchema()
            try await store.checkHealth()
            #expect(try await store.get(["a"]).isEmpty)
            #expect(try await store.get([]).isEmpty)
            #expect(try await store.bulkUpdate([]).isEmpty)
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func getFetchesManyDocumentsAndSkipsMissingOnes(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            let ids = (0..<1200).map { "https://files.example/pkg-\($0).whl" }
            let failures = try await store.bulkUpdate(ids.enumerated().map { index, id in
                MetadataUpdate(id: id, fields: ["status_code": 200, "content_size": .int(Int64(index))], createIfMissing: true)
            })
            #expect(failures.isEmpty)
            let missing = (0..<5).map { "https://files.example/absent-\($0)" }
            let documents = try await store.get(missing + ids)
            #expect(documents.count == ids.count)
            for (index, id) in ids.enumerated() {
                #expect(documents[id] == ["status_code": 200, "content_size": .int(Int64(index))])
            }
            #expect(missing.allSatisfy { documents[$0] == nil })
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func scanVisitsEveryDocumentOnceWithOnlyTheFieldsAsked(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            let ids = (0..<250).map { "https/host/\($0)+v" }
            _ = try await store.bulkUpdate(ids.enumerated().map { index, id in
                MetadataUpdate(id: id, fields: index % 3 == 0 ? ["status_code": 200] : ["status_code": 200, "manifest_b64": .string("m\(index)")],
                               createIfMissing: true)
            })
            var seen = [String: MetadataFields]()
            var pages = 0
            try await store.scan(fields: ["manifest_b64"], pageSize: 100) { page in
                pages += 1
                #expect(page.count <= 100)
                for (id, fields) in page {
                    #expect(seen[id] == nil, "\(id) seen twice")
                    seen[id] = fields
                }
            }
            #expect(seen.count == ids.count && pages >= 3)
            for (index, id) in ids.enumerated() {
                #expect(seen[id] == (index % 3 == 0 ? [:] : ["manifest_b64": .string("m\(index)")]), "\(id)")
            }
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func upsertMergesFieldsAndNullRemovesThem(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            let id = "https://pypi.org/simple/requests/"
            try await store.upsert(id, fields: [
                "status_code": 200, "url": .string(id), "headers": ["content-type": "text/html", "etag": "\"v1\""],
                "manifest_b64": "WFMzTQ==", "stale": nil,
            ])
            #expect(try await store.get([id])[id] == [
                "status_code": 200, "url": .string(id), "headers": ["content-type": "text/html", "etag": "\"v1\""],
                "manifest_b64": "WFMzTQ==",
            ])

            try await store.upsert(id, fields: [
                "status_code": 304, "url": nil, "headers": ["etag": "\"v2\"", "age": "0"],
                "content_size": 9_007_199_254_740_993, "ratio": 0.5, "vary": ["accept", "accept-encoding"],
                "nested": ["a": ["b": true]], "name": "naïve ✓",
            ])
            let merged = try #require(try await store.get([id])[id])
            #expect(merged == [
                "status_code": 304, "headers": ["content-type": "text/html", "etag": "\"v2\"", "age": "0"],
                "manifest_b64": "WFMzTQ==", "content_size": 9_007_199_254_740_993, "ratio": 0.5,
                "vary": ["accept", "accept-encoding"], "nested": ["a": ["b": true]], "name": "naïve ✓",
            ])

            // Arrays replace; nested nulls remove just that field.
            try await store.upsert(id, fields: ["vary": ["accept"], "headers": ["age": nil], "nested": ["a": ["c": 1]]])
            let again = try #require(try await store.get([id])[id])
            #expect(again["vary"] == ["accept"])
            #expect(again["headers"] == ["content-type": "text/html", "etag": "\"v2\""])
            #expect(again["nested"] == ["a": ["b": true, "c": 1]])
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func bulkUpdateReportsFailingItemsAndAppliesTheRest(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            try await store.upsert("a", fields: ["stored_at": "2026-11-01T00:00:00Z", "status_code": 200])
            try await store.upsert("b", fields: ["stored_at": "2026-11-02T00:00:00Z"])
            let failures = try await store.bulkUpdate([
                MetadataUpdate(id: "a", fields: ["last_access": "2026-11-21T10:00:00Z"]),
                MetadataUpdate(id: "ghost", fields: ["last_access": "2026-11-21T10:00:00Z"]),
                MetadataUpdate(id: "new", fields: ["stored_at": "2026-11-21T10:00:00Z"], createIfMissing: true),
                MetadataUpdate(id: "b", fields: ["last_access": "2026-11-21T10:00:01Z", "stored_at": nil]),
            ])
            #expect(failures.count == 1)
            #expect(failures.first?.id == "ghost")
            #expect(failures.first?.isMissingDocument == true, "\(failures)")

            let documents = try await store.get(["a", "b", "ghost", "new"])
            #expect(documents["a"] == ["stored_at": "2026-11-01T00:00:00Z", "status_code": 200, "last_access": "2026-11-21T10:00:00Z"])
            #expect(documents["b"] == ["last_access": "2026-11-21T10:00:01Z"])
            #expect(documents["new"] == ["stored_at": "2026-11-21T10:00:00Z"])
            #expect(documents["ghost"] == nil)
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func deleteRemovesAndToleratesMissingDocuments(_ backend: MetadataBackend) async throws {
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            try await store.upsert("keep", fields: ["n": 1])
            try await store.upsert("drop", fields: ["n": 2])
            try await store.delete("drop")
            try await store.delete("drop")
            try await store.delete("never-existed")
            #expect(try await store.get(["keep", "drop"]) == ["keep": ["n": 1]])
        }
    }

    @Test(arguments: MetadataBackend.allCases)
    func awkwardIDsRoundTrip(_ backend: MetadataBackend) async throws {
        let ids = [
            "https://files.pythonhosted.org/packages/ab/cd/pkg-1.0-py3-none-any.whl",
            "with space/and+plus=equals&amp?query#fragment",
            "percent%2Fencoded%20already",
            "ключ/ü/日本語",
            "trailing/",
            "..",
            String(repeating: "long/", count: 100),
        ]
        try await withMetadataStore(backend) { store in
            try await store.ensureSchema()
            for (index, id) in ids.enumerated() {
                try await store.upsert(id, fields: ["n": .int(Int64(index))])
            }
            let failures = try await store.bulkUpdate(ids.map { MetadataUpdate(id: $0, fields: ["touched": true]) })
            #expect(failures.isEmpty, "\(failures)")
            let documents = try await store.get(ids)
            for (index, id) in ids.enumerated() {
                #expect(documents[id] == ["n": .int(Int64(index)), "touched": true], "\(id)")
            }
            for id in ids { try await store.delete(id) }
            #expect(try await store.get(ids).isEmpty)
        }
    }
}
