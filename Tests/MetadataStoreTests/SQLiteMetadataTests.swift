import Foundation
import MetadataStore
import TestSupport
import Testing

/// SQLite-only behaviour: two processes on one file, and the schema version.
@Suite struct SQLiteMetadataTests {
    @Test func twoProcessesShareOneFileWithoutLosingWrites() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/metadata.sqlite"
        let writer = builtExecutable("sqlite-metadata-writer")
        let count = 400

        // Two writer processes race each other (and this process, which reads as they write).
        async let first = run(writer, [path, "passsage", String(count)], timeout: 120)
        async let second = run(writer, [path, "xs3lerator", String(count)], timeout: 120)
        let reader = try await SQLiteMetadataStore.open(path: path)
        var reads = 0
        while reads < 500 {
            reads += 1
            guard let shared = try? await reader.get(["shared"])["shared"] else {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            // Every read sees a whole document: each writer's counter is a plain integer.
            for value in (shared["writers"]?.objectValue ?? [:]).values { #expect(value.intValue != nil) }
            if shared["writers"]?.objectValue?.count == 2 { break }
        }
        let results = try await [first, second]
        for result in results { #expect(result.status == 0, "\(result.stdout)\(result.stderr)") }

        let ids = ["passsage", "xs3lerator"].flatMap { name in (0..<count).map { "\(name)/doc-\($0)" } }
        let documents = try await reader.get(ids + ["shared"])
        try await reader.close()
        #expect(documents.count == ids.count + 1)
        #expect(documents["shared"] == ["writers": ["passsage": .int(Int64(count - 1)), "xs3lerator": .int(Int64(count - 1))]])
        #expect(documents["xs3lerator/doc-17"] == ["writer": "xs3lerator", "n": 17, "last_access": 17])
        #expect(documents["passsage/doc-399"] == ["writer": "passsage", "n": 399, "last_access": 399])
    }

    @Test func newerSchemaVersionIsRefused() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/metadata.sqlite"
        let first = try await SQLiteMetadataStore.open(path: path)
        try await first.ensureSchema()
        try await first.upsert("a", fields: ["n": 1])
        try await first.close()

        let sqlite = try await run("/usr/bin/env", ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version = 99'); c.commit()", path])
        #expect(sqlite.status == 0, "\(sqlite.stderr)")

        let second = try await SQLiteMetadataStore.open(path: path)
        let refused = try await metadataError { try await second.ensureSchema() }
        try await second.close()
        #expect(refused.message.contains("schema version 99"))
    }

    @Test func unopenablePathSaysWhich() async throws {
        do {
            _ = try await SQLiteMetadataStore.open(path: "/nonexistent-dir/sub/metadata.sqlite")
            Issue.record("opening a file in a missing directory succeeded")
        } catch let error as MetadataStoreError {
            #expect(error.message.contains("/nonexistent-dir/sub/metadata.sqlite"))
        }
    }
}
