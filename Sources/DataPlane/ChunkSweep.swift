import ChunkManifest
import Logging
import MetadataStore
import ObjectStore

/// Garbage collection of chunks: chunks are content-addressed and shared (aliases, refreshed
/// entries, equal content under other keys), so nothing deletes them inline. `sweep` deletes
/// the ones no manifest names, once they are older than a grace age.
///
/// Safe against a miss uploading at the same moment: manifests are read **before** chunks are
/// listed, so a manifest written later names chunks that are either newly uploaded (younger than
/// the grace) or were found present and, when older than half the grace, uploaded again to
/// renew them (`ChunkStore.store`). That holds for downloads shorter than half the grace.
public enum ChunkSweep {
    public struct Report: Sendable {
        /// Documents that carry a manifest, and chunk keys they name.
        public var manifests = 0
        public var referenced = 0
        /// Manifests that could not be decoded (their entries are unusable anyway).
        public var unreadableManifests = 0
        public var listed = 0
        /// Unreferenced and older than the grace: deleted with `--delete`, else only listed.
        public var unreferenced: [ObjectSummary] = []
        /// Unreferenced but younger than the grace (perhaps a download in progress): kept.
        public var young = 0
        public var deleted = 0
        public var failures: [ObjectDeleteFailure] = []
    }

    /// Splits `objects` into those to delete and a count of young ones kept. Pure.
    public static func classify(_ objects: [ObjectSummary], referenced: Set<String>, now: Int64,
                                grace: Duration) -> (unreferenced: [ObjectSummary], young: Int) {
        let cutoff = now - grace.components.seconds
        var unreferenced = [ObjectSummary]()
        var young = 0
        for object in objects where !referenced.contains(object.key) {
            if let modified = object.lastModified, modified < cutoff {
                unreferenced.append(object)
            } else {
                young += 1
            }
        }
        return (unreferenced, young)
    }

    public static func run(storage: DataPlaneStorage, grace: Duration, delete: Bool, now: Int64,
                           logger: Logger) async throws -> Report {
        var report = Report()
        var referenced = Set<String>()
        try await storage.metadata.scan(fields: ["manifest_b64"], pageSize: 1000) { page in
            for (id, fields) in page {
                guard case .string(let encoded)? = fields["manifest_b64"], !encoded.isEmpty else { continue }
                report.manifests += 1
                do {
                    let manifest = try ManifestCodec.decodeBase64(encoded)
                    for chunk in manifest.chunks { referenced.insert(try storage.layout.key(forHex: chunk.hex)) }
                } catch {
                    report.unreadableManifests += 1
                    logger.warning("sweep: unreadable manifest", metadata: ["key": "\(id)", "error": "\(error)"])
                }
            }
        }
        report.referenced = referenced.count
        let objects = try await storage.objects.listAll(prefix: storage.layout.prefix)
        report.listed = objects.count
        (report.unreferenced, report.young) = classify(objects, referenced: referenced, now: now, grace: grace)
        if delete {
            var start = 0
            while start < report.unreferenced.count {
                let batch = report.unreferenced[start..<min(start + 1000, report.unreferenced.count)].map(\.key)
                start += batch.count
                let failures = try await storage.objects.delete(batch)
                report.failures += failures
                report.deleted += batch.count - failures.count
            }
        }
        return report
    }
}
