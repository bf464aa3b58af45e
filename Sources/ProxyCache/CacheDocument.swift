import CachePolicy
import ChunkManifest
import MetadataStore
import NIOHTTP1
import StorageCore

/// A cache entry's metadata document, in the original's `passsage_meta` shape (reference §6.3):
/// `status_code`, `headers` (lower-case names), `stored_at`, `url`, `content_size`, `doc_type`,
/// and the data plane's `manifest_b64`. passsage adds `initial_age` (RFC 9111 §4.2.3), which the
/// original did not keep. Written by the data plane together with the manifest, in one update.
enum CacheDocument {
    /// The fields of a response being stored.
    static func fields(status: Int, headers: HTTPHeaders, responseTime: Int64, initialAge: Int64, url: String,
                       contentSize: Int64?) -> MetadataFields {
        var stored: [String: JSONValue] = [:]
        for (name, value) in headers {
            let lowered = name.lowercased()
            if case .string(let earlier)? = stored[lowered] {
                stored[lowered] = .string(earlier + ", " + value)
            } else {
                stored[lowered] = .string(value)
            }
        }
        var fields: MetadataFields = [
            "doc_type": .string("metadata"),
            "status_code": .int(Int64(status)),
            "headers": .object(stored),
            "stored_at": .string(Timestamps.formatISO8601(responseTime)),
            "last_access": .string(Timestamps.formatISO8601(responseTime)),
            "initial_age": .int(initialAge),
            "url": .string(String(url.prefix(512))),
            // Written with the manifest in one update here; split mode sets both (`tagsMatch`).
            "manifest_tag": .null,
            "fields_tag": .null,
        ]
        if let contentSize { fields["content_size"] = .int(contentSize) }
        return fields
    }

    /// Whether the manifest and the other fields were written for the same download. In split
    /// mode xs3lerator writes `manifest_b64` with its `manifest_tag` and passsage the rest with
    /// `fields_tag`, in two updates in either order; until both carry the same tag the document
    /// pairs headers with another download's bytes and is not served. Written in one update
    /// (embedded), both are null.
    static func tagsMatch(_ document: MetadataFields) -> Bool {
        document["manifest_tag"]?.stringValue == document["fields_tag"]?.stringValue
    }

    /// What a stored document holds for serving.
    struct Entry: Sendable {
        var stored: StoredResponse
        /// nil for entries without a body (redirects).
        var manifest: Manifest?
        var contentSize: Int64?
    }

    /// The entry in `document`, or nil when it lacks what serving needs: a status, headers (absent
    /// for a moment while an entry is replaced), a `stored_at`, and for statuses with a body a manifest (a document with metadata but no
    /// manifest is a download that never completed; one with a manifest alone was written by
    /// xs3lerator without passsage).
    static func entry(_ document: MetadataFields) -> Entry? {
        // Split mode keeps the headers under their download's tag (see `tagsMatch`).
        let taggedHeaders = document["fields_tag"]?.stringValue.flatMap { document["headers_by_tag"]?.objectValue?[$0]?.objectValue }
        guard let status = document["status_code"]?.intValue,
              let storedAt = document["stored_at"]?.stringValue.flatMap(Timestamps.parseISO8601),
              let stored = taggedHeaders ?? document["headers"]?.objectValue else { return nil }
        var headers = HTTPHeaders()
        for name in stored.keys.sorted() {
            if let value = stored[name]?.stringValue { headers.add(name: name, value: value) }
        }
        var manifest: Manifest?
        if let encoded = document["manifest_b64"]?.stringValue, !encoded.isEmpty {
            manifest = try? ManifestCodec.decodeBase64(encoded)
        }
        let hasBody = !(300..<400).contains(Int(status))
        if hasBody, manifest == nil || !tagsMatch(document) { return nil }
        let initialAge = document["initial_age"]?.intValue ?? 0
        return Entry(stored: StoredResponse(status: Int(status), headers: headers, responseTime: storedAt, initialAge: initialAge),
                     manifest: manifest, contentSize: document["content_size"]?.intValue ?? manifest?.totalSize)
    }
}
