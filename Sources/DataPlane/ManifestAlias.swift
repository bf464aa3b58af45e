import ChunkManifest
import MetadataStore
import NIOCore
import NIOHTTP1

/// Manifest aliases (reference §3.9): a second key for the same chunks, for passsage's Vary
/// variants.
extension DataPlane {
    /// Copies `source`'s manifest to `target` (only `manifest_b64` and its `manifest_tag`; the
    /// rest of the target's document stays). Waits, up to the configured timeout, for a download of `source` that
    /// is still in flight. The chunks are shared, never copied; nothing deletes chunks inline,
    /// so refreshing either key never breaks the other.
    public func linkManifest(source: String, target: String) async -> DataPlaneResponse {
        guard let storage else { return .text(.notFound, "not found: this data plane has no cache\n") }
        if let fill = fills.active(source) {
            let finished = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await fill.finished() != nil }
                group.addTask { [timeout = configuration.linkWaitTimeout] in
                    try? await Task.sleep(for: timeout)
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            guard finished else {
                return .text(.gatewayTimeout, "timeout: \(source) is still downloading after \(configuration.linkWaitTimeout)\n")
            }
        }
        let document: MetadataFields?
        do {
            document = try await storage.metadata.get([source])[source]
        } catch {
            return .text(.internalServerError, "internal error: reading the manifest of \(source): \(error)\n")
        }
        guard let encoded = document?["manifest_b64"]?.stringValue, !encoded.isEmpty,
              let manifest = try? ManifestCodec.decodeBase64(encoded) else {
            return .text(.notFound, "not found: no manifest for \(source)\n")
        }
        var fields: MetadataFields = ["manifest_b64": .string(ManifestCodec.encodeBase64(manifest))]
        if let tag = document?["manifest_tag"]?.stringValue { fields["manifest_tag"] = .string(tag) }
        do {
            try await storage.metadata.upsert(target, fields: fields)
        } catch {
            return .text(.internalServerError, "internal error: writing the manifest of \(target): \(error)\n")
        }
        return DataPlaneResponse(status: .noContent, headers: [:])
    }
}
