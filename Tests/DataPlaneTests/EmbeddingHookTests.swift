import DataPlane
import Foundation
import MetadataStore
import NIOHTTP1
import TestOrigin
import TestSupport
import Testing

/// The hooks passsage's embedded cache uses: what is stored and where, cache-only hits, and which
/// requests may share a download.
@Suite("Data plane: embedding hooks")
struct EmbeddingHookTests {
    @Test("a stored entry's headers are replaced, not merged with the previous entry's")
    func headersAreReplaced() async throws {
        try await DataPlaneFixture.with { fixture in
            func store(_ headers: [String: JSONValue]) async throws {
                _ = await fixture.get("/object/3000", key: "k/replace") {
                    $0.cacheSkip = true
                    $0.storeFields = { _, _ in StoreDirective(fields: ["headers": .object(headers)], clearing: ["headers"]) }
                }
                try await waitUntil(timeout: 10, "the document") {
                    try await fixture.metadata.get(["k/replace"])["k/replace"]?["headers"] == .object(headers)
                }
            }
            try await store(["etag": .string("\"v1\""), "content-encoding": .string("gzip")])
            try await store(["etag": .string("\"v2\"")])
        }
    }

    @Test("storeFields may refuse (relayed uncached) or store under another id")
    func storeDecisions() async throws {
        try await DataPlaneFixture.with { fixture in
            let refused = await fixture.get("/object/2000", key: "k/refused") {
                $0.storeFields = { _, _ in nil }
            }
            #expect(refused.status == 200 && refused.sha256 == expected(0..<2000))
            let redirected = await fixture.get("/object/2001", key: "k/shared") {
                $0.storeFields = { _, _ in StoreDirective(key: "k/variant", fields: ["status_code": .int(200)]) }
            }
            #expect(redirected.status == 200)
            _ = try await fixture.waitForManifest("k/variant")
            #expect(try await fixture.metadata.get(["k/variant"])["k/variant"]?["status_code"] == .int(200))
            #expect(try await fixture.metadata.get(["k/refused", "k/shared"]).isEmpty, "nothing under the refused or shared keys")
        }
    }

    @Test("cacheOnly answers 504 instead of going upstream when the entry is not there")
    func cacheOnly() async throws {
        try await DataPlaneFixture.with { fixture in
            let answer = await fixture.get("/object/1000", key: "k/none") { $0.cacheOnly = true }
            #expect(answer.status == 504 && answer.header("X-Xs3lerator-Cache-Hit") == "false")
            #expect(fixture.origin.stats.requests("/object/1000") == 0)
        }
    }

    @Test("a request that differs in a header the response varies on does not join its download")
    func varyingJoinersGoAlone() async throws {
        try await DataPlaneFixture.with { fixture in
            let size: Int64 = 4 << 20
            let path = "/object/\(size)"
            // Slow enough that the second request arrives while the first downloads.
            let url = path + "?vary=ae&rate=\(2 << 20)"
            async let gzip = fixture.get(url, key: "k/vary") { $0.headers.add(name: "Accept-Encoding", value: "gzip") }
            try await waitUntil(timeout: 10, "the first download") { fixture.origin.stats.requests(path) >= 1 }
            let identity = await fixture.get(url, key: "k/vary") { $0.headers.add(name: "Accept-Encoding", value: "identity") }
            let first = await gzip
            #expect(first.sha256 == expected(1_000_000..<(1_000_000 + size)), "the gzip variant")
            #expect(identity.sha256 == expected(0..<size), "the identity variant, not the gzip one")
            #expect(fixture.origin.stats.plainRequests(path) == 2)
        }
    }
}
