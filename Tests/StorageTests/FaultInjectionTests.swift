import Crypto
import Foundation
import NIOHTTP1
import NIOCore
import ObjectStore
import S3ObjectStore
import StorageCore
import TestSupport
import Testing

/// Throttling, 5xx and dropped connections injected between the S3 client and moto (signature
/// checking on) by `FaultProxy`: retried within the policy and then successful, or, when they do
/// not stop, surfaced as typed errors within the bound.
@Suite(.serialized) struct FaultInjectionTests {
    /// The budget is generous so that the attempts counted below do not depend on machine load;
    /// the budget itself is tested on its own.
    static let policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50), totalBudget: .seconds(120))

    @Test func transientFaultsAreRetriedAndThenSucceed() async throws {
        try await withFaultProxy(retry: Self.policy) { proxy, store in
            // One PUT refused four ways in a row, then let through.
            proxy.inject(1, .error(.serviceUnavailable, code: "SlowDown"), when: isMethod(.PUT))
            proxy.inject(1, .error(.internalServerError, code: "InternalError"), when: isMethod(.PUT))
            proxy.inject(1, .error(.tooManyRequests, code: "TooManyRequests"), when: isMethod(.PUT))
            proxy.inject(1, .dropConnection, when: isMethod(.PUT))
            try await store.put("faults/small", payload: .buffer(ByteBuffer(string: "survived")), length: 8)
            #expect(proxy.injectedCount == 4)

            proxy.inject(2, .error(.serviceUnavailable, code: "SlowDown"), when: isMethod(.GET))
            #expect(try await text(store.get("faults/small")) == "survived")
            proxy.inject(1, .error(.badGateway, code: "BadGateway"), when: isMethod(.HEAD))
            #expect(try await store.head("faults/small").size == 8)
            proxy.inject(1, .error(.serviceUnavailable, code: "SlowDown"), when: isMethod(.GET))
            #expect(try await store.listAll(prefix: "faults").map(\.key) == ["faults/small"])
            proxy.inject(1, .error(.internalServerError, code: "InternalError"), when: isMethod(.POST))
            #expect(try await store.delete(["faults/small"]).isEmpty)
            #expect(proxy.injectedCount == 9)
            await #expect(throws: ObjectStoreError.self) { _ = try await store.head("faults/small") }
        }
    }

    @Test func multipartPartsAndCompletionAreRetriedOnTheirOwn() async throws {
        try await withFaultProxy(retry: Self.policy, multipartThreshold: 6 << 20) { proxy, store in
            let length = (12 << 20) + 5
            let content = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 12)) })
            let expected = hexDigest(content.withUnsafeReadableBytes { SHA256.hash(data: $0) })
            proxy.inject(2, .error(.serviceUnavailable, code: "SlowDown"), when: queryContains("partNumber=2"))
            proxy.inject(1, .dropConnection, when: queryContains("partNumber=3"))
            // CompleteMultipartUpload may answer 200 with an <Error> inside; that is retried too.
            proxy.inject(1, .error(.ok, code: "InternalError"), when: { $0.method == .POST && $0.query.contains("uploadId=") })
            try await store.put("faults/multipart", payload: .buffers([content]), length: Int64(length))
            #expect(proxy.injectedCount == 4)
            let (count, digest) = try await drain(try await store.get("faults/multipart").body)
            #expect(count == Int64(length))
            #expect(digest == expected)
            #expect(try await store.head("faults/multipart").etag?.hasSuffix("-3") == true)
        }
    }

    @Test func permanentErrorsSurfaceTypedWithinTheBound() async throws {
        try await withFaultProxy(retry: Self.policy) { proxy, store in
            try await store.put("faults/object", payload: .buffer(ByteBuffer(string: "x")), length: 1)

            // Throttling that never ends: exactly maxAttempts tries, then the last error as is.
            proxy.inject(1000, .error(.serviceUnavailable, code: "SlowDown"), when: isMethod(.GET))
            let throttled = try await objectStoreError { _ = try await store.get("faults/object") }
            #expect(throttled.kind == .throttled)
            #expect(throttled.code == "SlowDown")
            #expect(throttled.httpStatus == 503)
            #expect(throttled.requestID == "FAULT\(Self.policy.maxAttempts)")
            #expect(proxy.injectedCount == Self.policy.maxAttempts)
            proxy.clearFaults()

            // Access denied is not retried.
            proxy.inject(1000, .error(.forbidden, code: "AccessDenied"), when: isMethod(.GET))
            let denied = try await objectStoreError { _ = try await store.get("faults/object") }
            #expect(denied.kind == .accessDenied)
            #expect(proxy.injectedCount == Self.policy.maxAttempts + 1)
            proxy.clearFaults()

            // A connection that always drops ends as a transient connection error.
            proxy.inject(1000, .dropConnection, when: isMethod(.HEAD))
            let dropped = try await objectStoreError { _ = try await store.head("faults/object") }
            #expect(dropped.kind == .transient)
            #expect(dropped.code == "ConnectionError")
            #expect(proxy.injectedCount == 2 * Self.policy.maxAttempts + 1)
            proxy.clearFaults()
            #expect(try await text(store.get("faults/object")) == "x")
        }
    }

    @Test func theTimeBudgetEndsRetriesBeforeTheAttemptsRunOut() async throws {
        let slow = RetryPolicy(maxAttempts: 100, baseDelay: .milliseconds(200), maxDelay: .milliseconds(400), totalBudget: .seconds(2))
        try await withFaultProxy(retry: slow) { proxy, store in
            proxy.inject(1000, .error(.internalServerError, code: "InternalError"))
            let started = ContinuousClock.now
            let error = try await objectStoreError { _ = try await store.head("faults/anything") }
            let elapsed = ContinuousClock.now - started
            #expect(error.kind == .transient)
            #expect(proxy.injectedCount >= 2)
            #expect(proxy.injectedCount < 100)
            // No new attempt starts after the budget; the last one is quick here.
            #expect(elapsed < .seconds(8), "\(elapsed)")
        }
    }
}

/// A moto_server, a fault proxy in front of it, and an S3 store that talks to the proxy.
func withFaultProxy(retry: RetryPolicy, multipartThreshold: Int64 = 12 << 20,
                    _ body: (FaultProxy, S3ObjectStore) async throws -> Void) async throws {
    let moto = try await MotoServer.start()
    let proxy: FaultProxy
    let store: S3ObjectStore
    do {
        proxy = try await FaultProxy.start(upstream: moto.endpoint)
        store = try moto.makeStore(endpoint: proxy.endpoint, multipartThreshold: multipartThreshold, retry: retry)
    } catch {
        await moto.stop()
        throw error
    }
    try await withTeardown({ try await body(proxy, store) }) {
        try? await store.shutdown()
        await proxy.stop()
        await moto.stop()
    }
}

func isMethod(_ method: HTTPMethod) -> @Sendable (TestHTTPRequest) -> Bool {
    { $0.method == method }
}

func queryContains(_ text: String) -> @Sendable (TestHTTPRequest) -> Bool {
    { $0.query.contains(text) }
}

/// The object-store error `body` throws; anything else fails the test.
func objectStoreError(_ body: () async throws -> Void) async throws -> ObjectStoreError {
    try await thrownError(ObjectStoreError.self, body)
}
