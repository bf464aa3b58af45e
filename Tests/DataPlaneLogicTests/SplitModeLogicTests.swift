import AsyncHTTPClient
import ChunkManifest
import DataPlane
import MetadataStore
import NIOHTTP1
@testable import ProxyCache
@testable import RemoteDataPlane
import Testing
import Xs3leratorService

/// Split mode's pure parts: the contract headers passsage sends and xs3lerator parses (one rule on
/// each side, checked together), the store hook's view of a ranged answer, the fill tags, and the
/// availability that decides when a dependency is tried again.
@Suite("Split mode: contract round trip, fill tags, availability")
struct SplitModeLogicTests {
    static let configuration = RemoteDataPlaneConfiguration(url: "http://xs3:8090/", authToken: "secret")

    @Test("what RemoteDataPlane sends is what xs3lerator parses, field by field")
    func contractRoundTrip() throws {
        let manifest = try Manifest(chunkSize: 1 << 20, totalSize: 10, chunks: [ChunkID(algorithm: .sha256, hex: String(repeating: "ab", count: 32))!])
        var request = DataPlaneRequest(url: "https://pypi.org/simple/x/", headers: ["Accept": "text/html", "Range": "bytes=9-",
                                                                                    "X-Xs3lerator-Cache-Key": "forged",
                                                                                    "X-Passsage-Policy": "NoCache"],
                                       range: "bytes=0-99", cacheKey: "https/pypi.org/key", cacheSkip: true, manifest: manifest,
                                       ifNoneMatch: "\"v1\"", ifModifiedSince: "Sat, 21 Nov 2026 00:00:00 GMT", staleIfError: true,
                                       connectTimeout: .milliseconds(2500), readTimeout: .some(nil))
        request.cacheOnly = true
        request.unvariedKey = "https/pypi.org/plain"
        request.storeFields = { _, _ in nil }
        let headers = RemoteDataPlane.contractHeaders(request, configuration: Self.configuration)
        let contract = ContractHeaders(headers)
        #expect(contract.cacheKey == "https/pypi.org/key", "the client's forged key is gone")
        #expect(contract.unvariedKey == "https/pypi.org/plain")
        #expect(headers[canonicalForm: "x-xs3lerator-cache-key"].count == 1)
        #expect(!headers.contains(name: "x-passsage-policy"))
        #expect(contract.cacheSkip && contract.cacheOnly && contract.staleIfError && contract.sharedCache)
        #expect(!contract.backgroundRevalidate && !contract.tlsSkipVerify && !contract.followRedirects)
        #expect(try contract.manifest.map(ManifestCodec.decodeBase64) == manifest)
        #expect(contract.ifNoneMatch == "\"v1\"" && contract.ifModifiedSince == "Sat, 21 Nov 2026 00:00:00 GMT")
        #expect(contract.connectTimeout == .milliseconds(2500))
        #expect(contract.readTimeout == .some(nil), "no read timeout travels as 0")
        #expect(headers.first(name: "X-Xs3lerator-Auth") == "secret")
        #expect(headers[canonicalForm: "range"] == ["bytes=0-99"], "the range the data plane answers, not the client's raw one")
        #expect(headers.first(name: "accept") == "text/html")

        let plain = RemoteDataPlane.contractHeaders(DataPlaneRequest(url: "https://example.org/", readTimeout: .some(.seconds(30))),
                                                    configuration: RemoteDataPlaneConfiguration(url: "http://xs3"))
        let parsed = ContractHeaders(plain)
        #expect(parsed == { var expected = ContractHeaders(); expected.readTimeout = .some(.seconds(30)); return expected }())
        #expect(!plain.contains(name: "x-xs3lerator-auth") && !plain.contains(name: "range"))
    }

    @Test("a manifest too large for a header is left to xs3lerator's own lookup")
    func largeManifestsAreNotInlined() throws {
        let chunks = (0..<2000).map { index in
            let hex = String(index % 256, radix: 16)
            return ChunkID(algorithm: .sha256, hex: String(repeating: hex.count == 1 ? "0" + hex : hex, count: 32))!
        }
        let manifest = try Manifest(chunkSize: 1 << 20, totalSize: 2000 << 20, chunks: chunks)
        let headers = RemoteDataPlane.contractHeaders(DataPlaneRequest(url: "https://example.org/big", cacheKey: "k", manifest: manifest),
                                                      configuration: Self.configuration)
        #expect(!headers.contains(name: "x-xs3lerator-manifest"))
        #expect(headers.first(name: "x-xs3lerator-cache-key") == "k")
    }

    @Test("timeouts travel in seconds, fractions kept")
    func timeoutSeconds() {
        #expect(RemoteDataPlane.seconds(.seconds(30)) == "30")
        #expect(RemoteDataPlane.seconds(.milliseconds(1500)) == "1.5")
        #expect(RemoteDataPlane.seconds(.milliseconds(250)) == "0.25")
    }

    @Test("the store hook sees a 206 cut from a whole download as the 200 being stored, with its full length")
    func rangedAnswersAreStoredWhole() {
        let (status, headers) = RemoteDataPlane.upstreamView(
            status: .partialContent,
            headers: ["Content-Range": "bytes 0-99/5000", "Content-Length": "100", "ETag": "\"e\"", "X-Xs3lerator-Fill-Tag": "t"])
        #expect(status == .ok)
        #expect(headers.first(name: "content-length") == "5000" && !headers.contains(name: "content-range"))
        #expect(!headers.contains(name: "x-xs3lerator-fill-tag") && headers.first(name: "etag") == "\"e\"")
        let (whole, same) = RemoteDataPlane.upstreamView(status: .ok, headers: ["Content-Length": "7"])
        #expect(whole == .ok && same.first(name: "content-length") == "7")
    }

    static func document(manifestTag: JSONValue?, fieldsTag: JSONValue?) throws -> MetadataFields {
        let manifest = try Manifest(chunkSize: 1 << 20, totalSize: 3, chunks: [ChunkID(algorithm: .sha256, hex: String(repeating: "cd", count: 32))!])
        var document = CacheDocument.fields(status: 200, headers: ["Content-Length": "3"], responseTime: 1_800_000_000, initialAge: 0,
                                            url: "https://example.org/x", contentSize: 3)
        document["manifest_b64"] = .string(ManifestCodec.encodeBase64(manifest))
        document["manifest_tag"] = manifestTag
        document["fields_tag"] = fieldsTag
        return document
    }

    @Test("a document is an entry only when its manifest and its fields carry the same fill tag")
    func fillTags() throws {
        #expect(CacheDocument.entry(try Self.document(manifestTag: .null, fieldsTag: .null)) != nil, "embedded: one update, no tags")
        #expect(CacheDocument.entry(try Self.document(manifestTag: nil, fieldsTag: nil)) != nil)
        #expect(CacheDocument.entry(try Self.document(manifestTag: .string("a"), fieldsTag: .string("a"))) != nil)
        #expect(CacheDocument.entry(try Self.document(manifestTag: .string("b"), fieldsTag: .string("a"))) == nil,
                "new fields over the old download's bytes")
        #expect(CacheDocument.entry(try Self.document(manifestTag: .string("a"), fieldsTag: .null)) == nil,
                "a manifest whose fields were never written")
        #expect(CacheDocument.entry(try Self.document(manifestTag: nil, fieldsTag: .string("a"))) == nil,
                "fields whose download is not stored yet")
    }

    @Test("a dependency that fails is not tried again until its retry time, then probed once; success clears it")
    func availability() {
        var state = Availability()
        let start = ContinuousClock.now
        let second = Duration.seconds(1)
        let allowed1 = state.allows(at: start, retryAfter: second)
        #expect(allowed1 && !state.isDown)
        let wentDown = state.failed(at: start, retryAfter: second, error: "connection refused")
        #expect(wentDown, "the change to down")
        let allowed2 = state.allows(at: start + .milliseconds(500), retryAfter: second)
        #expect(!allowed2)
        let allowed3 = state.allows(at: start + .seconds(1), retryAfter: second)
        #expect(allowed3, "the probe")
        let allowed4 = state.allows(at: start + .milliseconds(1100), retryAfter: second)
        #expect(!allowed4, "one probe at a time")
        let again = state.failed(at: start + .milliseconds(1200), retryAfter: second, error: "again")
        #expect(!again, "still down, not a new change")
        let allowed5 = state.allows(at: start + .milliseconds(1500), retryAfter: second)
        #expect(!allowed5)
        state.countPassThrough()
        state.countPassThrough()
        let downFor = state.succeeded(at: start + .seconds(3))
        #expect(downFor == .seconds(3))
        let allowed6 = state.allows(at: start + .seconds(3), retryAfter: second)
        #expect(allowed6 && !state.isDown && state.passedThrough == 2)
        let allowed7 = state.allows(at: start + .seconds(3), retryAfter: second)
        #expect(allowed7, "up: every call")
        let already = state.succeeded(at: start + .seconds(4))
        #expect(already == nil, "already up")
    }

    @Test("only errors that say xs3lerator cannot be reached mark it down")
    func unreachability() {
        #expect(RemoteDataPlane.meansUnreachable(HTTPClientError.connectTimeout))
        #expect(RemoteDataPlane.meansUnreachable(HTTPClientError.remoteConnectionClosed))
        #expect(!RemoteDataPlane.meansUnreachable(HTTPClientError.readTimeout), "a slow origin behind it")
        #expect(!RemoteDataPlane.meansUnreachable(HTTPClientError.invalidURL))
        #expect(!RemoteDataPlane.meansUnreachable(CancellationError()))
    }

    @Test("split-mode fields carry their tag, and their headers under it; the document reads them back")
    func taggedFields() throws {
        let fields = CacheDocument.fields(status: 200, headers: ["Content-Type": "text/plain"], responseTime: 1_800_000_000,
                                          initialAge: 0, url: "https://example.org/x", contentSize: 3)
        var document = RemoteDataPlane.taggedFields(fields, tag: "t1")
        #expect(document["fields_tag"] == .string("t1") && document["headers"] == .null && document["manifest_tag"] == nil)
        let manifest = try Manifest(chunkSize: 1 << 20, totalSize: 3, chunks: [ChunkID(algorithm: .sha256, hex: String(repeating: "cd", count: 32))!])
        document["manifest_b64"] = .string(ManifestCodec.encodeBase64(manifest))
        document["manifest_tag"] = .string("t1")
        // Another writer's headers left under their own tag change nothing.
        document["headers_by_tag"] = .object(["t1": .object(["content-type": .string("text/plain")]),
                                              "t0": .object(["content-encoding": .string("gzip")])])
        let entry = try #require(CacheDocument.entry(document))
        #expect(entry.stored.headers.first(name: "content-type") == "text/plain")
        #expect(!entry.stored.headers.contains(name: "content-encoding"))
    }

    @Test("xs3lerator parses Cache-Only and Shared-Cache, true only for `true`")
    func newContractFlags() {
        let on = ContractHeaders(["X-Xs3lerator-Cache-Only": "true", "X-Xs3lerator-Shared-Cache": "true"])
        #expect(on.cacheOnly && on.sharedCache)
        let off = ContractHeaders(["X-Xs3lerator-Cache-Only": "yes", "X-Xs3lerator-Shared-Cache": "1"])
        #expect(!off.cacheOnly && !off.sharedCache)
    }

    @Test("bug 22: a document with a manifest alone (xs3lerator's half, nothing of passsage's) is never an entry")
    func bug22ManifestOnlyDocuments() throws {
        let manifest = try Manifest(chunkSize: 1 << 20, totalSize: 3, chunks: [ChunkID(algorithm: .sha256, hex: String(repeating: "ef", count: 32))!])
        let document: MetadataFields = ["manifest_b64": .string(ManifestCodec.encodeBase64(manifest)), "manifest_tag": .string("t")]
        #expect(CacheDocument.entry(document) == nil)
    }

    @Test("bug 20: an https xs3lerator URL keeps its scheme and default port; a trailing slash is not doubled")
    func bug20HTTPSURLs() {
        let secure = RemoteDataPlaneConfiguration(url: "https://xs3.internal/")
        #expect(RemoteDataPlane.target(for: "https://pypi.org/simple/", configuration: secure) == "https://xs3.internal/https://pypi.org/simple/")
        let plain = RemoteDataPlaneConfiguration(url: "http://xs3:8090")
        #expect(RemoteDataPlane.target(for: "http://a/b?c=d", configuration: plain) == "http://xs3:8090/http://a/b?c=d")
    }
}
