/// Where per-response metadata lives: one JSON document per cache key, including the chunk
/// manifest (`manifest_b64`). Implementations: Elasticsearch (production), SQLite (embedded
/// default). Every implementation passes the same contract tests.
///
/// Field updates merge like an Elasticsearch partial update: objects merge recursively, other
/// values replace, and a `null` value removes the field. Documents read back never contain nulls.
public protocol MetadataStore: Sendable {
    /// Creates the index or table (and migrates it) if needed. Safe to call on every start.
    func ensureSchema() async throws

    /// The documents for `ids` in one round trip; missing ids are absent from the result.
    func get(_ ids: [String]) async throws -> [String: MetadataFields]

    /// Merges `fields` into document `id`, creating it if missing.
    func upsert(_ id: String, fields: MetadataFields) async throws

    /// Applies many partial updates in one round trip. Items that fail (for example an update of
    /// a missing document without `createIfMissing`) are returned, not thrown; the rest apply.
    func bulkUpdate(_ updates: [MetadataUpdate]) async throws -> [MetadataItemFailure]

    /// Deletes document `id`; a missing document is not an error.
    func delete(_ id: String) async throws

    /// Throws unless the store is reachable and usable.
    func checkHealth() async throws

    /// Every document, in pages of at most `pageSize`, each document with only `fields`. For
    /// maintenance (xs3lerator's `sweep`); documents written while it runs may be missed.
    func scan(fields: [String], pageSize: Int, _ page: ([String: MetadataFields]) async throws -> Void) async throws
}

public typealias MetadataFields = [String: JSONValue]

public struct MetadataUpdate: Sendable, Hashable {
    public var id: String
    public var fields: MetadataFields
    /// Create the document when it does not exist (`doc_as_upsert`); otherwise that item fails.
    public var createIfMissing: Bool

    public init(id: String, fields: MetadataFields, createIfMissing: Bool = false) {
        self.id = id
        self.fields = fields
        self.createIfMissing = createIfMissing
    }
}

public struct MetadataItemFailure: Sendable, Hashable, CustomStringConvertible {
    public var id: String
    /// `document_missing_exception`, `version_conflict_engine_exception`, ...
    public var type: String
    public var reason: String

    public init(id: String, type: String, reason: String) {
        self.id = id
        self.type = type
        self.reason = reason
    }

    public var isMissingDocument: Bool { type == "document_missing_exception" }
    public var description: String { "\(id): \(type): \(reason)" }
}

/// A failed metadata call, naming the call and why.
public struct MetadataStoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The index or table does not exist: `ensureSchema` has not run.
        case schemaMissing
        case unauthorized
        case conflict
        case throttled
        case transient
        case invalidInput
        case other
    }

    public var kind: Kind
    /// The call that failed, e.g. `_mget` or `sqlite upsert`.
    public var call: String
    public var status: Int?
    public var message: String

    public init(_ kind: Kind, call: String, status: Int? = nil, message: String) {
        self.kind = kind
        self.call = call
        self.status = status
        self.message = message
    }

    public var isRetryable: Bool { kind == .throttled || kind == .transient || kind == .conflict }

    public var description: String {
        "metadata \(call) failed: \(kind.rawValue)\(status.map { " (HTTP \($0))" } ?? ""): \(message)"
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// Elasticsearch partial-update semantics: objects merge recursively, null removes.
    public func merging(patch: MetadataFields) -> MetadataFields {
        var result = self
        for (name, value) in patch {
            switch (result[name], value) {
            case (_, .null):
                result[name] = nil
            case (.object(let old)?, .object(let new)):
                result[name] = .object(old.merging(patch: new))
            case (_, .object(let new)):
                result[name] = .object([:].merging(patch: new))
            default:
                result[name] = value
            }
        }
        return result
    }

    /// The same document without null values, at any depth.
    public var withoutNulls: MetadataFields {
        var result = MetadataFields()
        for (name, value) in self {
            switch value {
            case .null: continue
            case .object(let inner): result[name] = .object(inner.withoutNulls)
            default: result[name] = value
            }
        }
        return result
    }
}
