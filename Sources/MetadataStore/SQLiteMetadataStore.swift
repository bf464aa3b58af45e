import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// Metadata in one SQLite file: a row per document id, the fields as JSON text. WAL mode with a
/// busy timeout, so passsage and xs3lerator can share the file from two processes. Merges run
/// inside SQLite (`json_patch`, RFC 7396), so each write is one atomic statement.
public final class SQLiteMetadataStore: MetadataStore {
    /// Version of the table layout; `ensureSchema` migrates older files and refuses newer ones.
    public static let schemaVersion = 1
    public let path: String
    private let connection: SQLiteConnection

    private init(path: String, connection: SQLiteConnection) {
        self.path = path
        self.connection = connection
    }

    /// Opens (creating if needed) the database file at `path`.
    public static func open(path: String, busyTimeout: Duration = .seconds(10),
                            logger: Logger = Logger(label: "passsage.sqlite")) async throws -> SQLiteMetadataStore {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw MetadataStoreError(.other, call: "sqlite open", message: "\(path): \(error)")
        }
        let store = SQLiteMetadataStore(path: path, connection: connection)
        let milliseconds = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        // busy_timeout first: the journal-mode switch itself may wait for another process.
        try await store.run("sqlite open", "PRAGMA busy_timeout = \(milliseconds)")
        try await store.run("sqlite open", "PRAGMA journal_mode = WAL")
        try await store.run("sqlite open", "PRAGMA synchronous = NORMAL")
        return store
    }

    public func close() async throws {
        try await connection.close()
    }

    public func ensureSchema() async throws {
        let version = try await rows("sqlite ensureSchema", "PRAGMA user_version").first?.column("user_version")?.integer ?? 0
        guard version <= Self.schemaVersion else {
            throw MetadataStoreError(.other, call: "sqlite ensureSchema",
                                     message: "\(path) has schema version \(version); this build knows up to \(Self.schemaVersion)")
        }
        try await run("sqlite ensureSchema", """
            CREATE TABLE IF NOT EXISTS documents (
                id TEXT PRIMARY KEY NOT NULL,
                fields TEXT NOT NULL CHECK (json_valid(fields))
            ) WITHOUT ROWID
            """)
        if version < Self.schemaVersion {
            try await run("sqlite ensureSchema", "PRAGMA user_version = \(Self.schemaVersion)")
        }
    }

    public func get(_ ids: [String]) async throws -> [String: MetadataFields] {
        var result = [String: MetadataFields]()
        var start = 0
        while start < ids.count {
            let batch = Array(ids[start..<min(start + 500, ids.count)])
            start += batch.count
            let placeholders = Array(repeating: "?", count: batch.count).joined(separator: ",")
            for row in try await rows("sqlite get", "SELECT id, fields FROM documents WHERE id IN (\(placeholders))",
                                      batch.map { .text($0) }) {
                guard let id = row.column("id")?.string, let text = row.column("fields")?.string else { continue }
                guard case .object(let fields)? = try? JSONValue.parse(Array(text.utf8)) else {
                    throw MetadataStoreError(.other, call: "sqlite get", message: "document \(id) is not a JSON object")
                }
                result[id] = fields.withoutNulls
            }
        }
        return result
    }

    public func upsert(_ id: String, fields: MetadataFields) async throws {
        try await run("sqlite upsert", Self.upsertSQL, [.text(id), .text(JSONValue.object(fields).jsonText)])
    }

    public func bulkUpdate(_ updates: [MetadataUpdate]) async throws -> [MetadataItemFailure] {
        var failures = [MetadataItemFailure]()
        for update in updates {
            let patch = JSONValue.object(update.fields).jsonText
            if update.createIfMissing {
                try await run("sqlite bulk", Self.upsertSQL, [.text(update.id), .text(patch)])
            } else {
                let updated = try await rows("sqlite bulk", "UPDATE documents SET fields = json_patch(fields, ?) WHERE id = ? RETURNING id",
                                             [.text(patch), .text(update.id)])
                if updated.isEmpty {
                    failures.append(MetadataItemFailure(id: update.id, type: "document_missing_exception",
                                                        reason: "[\(update.id)]: document missing"))
                }
            }
        }
        return failures
    }

    public func delete(_ id: String) async throws {
        try await run("sqlite delete", "DELETE FROM documents WHERE id = ?", [.text(id)])
    }

    public func scan(fields: [String], pageSize: Int, _ page: ([String: MetadataFields]) async throws -> Void) async throws {
        var after = ""
        while true {
            let rows = try await rows("sqlite scan", "SELECT id, fields FROM documents WHERE id > ? ORDER BY id LIMIT ?",
                                      [.text(after), .integer(max(1, pageSize))])
            guard !rows.isEmpty else { return }
            var documents = [String: MetadataFields]()
            for row in rows {
                guard let id = row.column("id")?.string, let text = row.column("fields")?.string else { continue }
                after = id
                guard case .object(let all)? = try? JSONValue.parse(Array(text.utf8)) else { continue }
                documents[id] = all.filter { fields.contains($0.key) }.withoutNulls
            }
            try await page(documents)
            if rows.count < pageSize { return }
        }
    }

    public func checkHealth() async throws {
        _ = try await rows("sqlite health", "SELECT count(*) AS n FROM sqlite_master")
    }

    // New documents go through json_patch too, so nulls in the first write are dropped. The
    // update patches with the raw ?2, not `excluded.fields`, whose nulls are already gone.
    private static let upsertSQL = """
        INSERT INTO documents (id, fields) VALUES (?1, json_patch('{}', ?2))
        ON CONFLICT (id) DO UPDATE SET fields = json_patch(documents.fields, ?2)
        """

    private func run(_ call: String, _ sql: String, _ binds: [SQLiteData] = []) async throws {
        _ = try await rows(call, sql, binds)
    }

    private func rows(_ call: String, _ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch {
            let text = "\(error)"
            let kind: MetadataStoreError.Kind = text.contains("no such table") ? .schemaMissing
                : (text.contains("locked") || text.contains("busy")) ? .transient : .other
            throw MetadataStoreError(kind, call: call, message: "\(path): \(text)")
        }
    }
}
