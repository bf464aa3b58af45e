import AWSCore
import AsyncHTTPClient
import Crypto
import Logging
import NIOCore
import NIOHTTP1
import ObjectStore
import StorageCore

/// One S3 call: what to send, and which statuses count as success.
struct S3Call: Sendable {
    var operation: String
    var method: HTTPMethod
    var key: String?
    var query: [(String, String)] = []
    var headers: [(String, String)] = []
    var body: S3Body = .empty
    var accepted: Set<UInt> = [200]
    /// GetObject and uploads may run long; they rely on the read timeout instead of a deadline.
    var isStreaming = false
}

/// A request body that can be produced again for a retry, with its length and SHA-256.
struct S3Body: Sendable {
    var length: Int64
    var sha256Hex: String
    var make: @Sendable () throws -> ByteStream

    static let empty = S3Body(length: 0, sha256Hex: SigV4Signer.emptyPayloadHash, make: { .empty })

    static func bytes(_ buffer: ByteBuffer) -> S3Body {
        S3Body(length: Int64(buffer.readableBytes), sha256Hex: SigV4Signer.hex(buffer.withUnsafeReadableBytes { SHA256.hash(data: $0) }),
               make: { ByteStream(buffers: [buffer]) })
    }
}

/// Signs, sends and retries S3 calls; turns failures into `ObjectStoreError`s.
struct S3Transport: Sendable {
    let configuration: S3Configuration
    let credentials: any AWSCredentialProvider
    let httpClient: HTTPClient
    let signer: SigV4Signer
    let logger: Logger

    /// Sends `call`, retrying throttling, 5xx and connection failures within the retry policy.
    /// The caller owns the returned response's body.
    func send(_ call: S3Call) async throws -> HTTPClientResponse {
        try await withRetries(configuration.retry, isRetryable: { ($0 as? ObjectStoreError)?.isRetryable ?? false }) { attempt in
            do {
                return try await sendOnce(call)
            } catch let error as ObjectStoreError {
                if error.isRetryable {
                    logger.debug("S3 call will be retried", metadata: ["operation": "\(call.operation)", "attempt": "\(attempt)", "error": "\(error)"])
                }
                throw error
            }
        }
    }

    /// Sends `call` and reads past its (small) body, so the connection can be reused.
    func sendDiscardingBody(_ call: S3Call) async throws -> HTTPHeaders {
        let response = try await send(call)
        _ = try await readSmallBody(response.body, call: call)
        return response.headers
    }

    /// Sends `call` and reads its (small) answer, checking for an `<Error>` in a 200 body, which
    /// CompleteMultipartUpload may return.
    func sendExpectingXML(_ call: S3Call) async throws -> (HTTPClientResponse, XMLElement?) {
        try await withRetries(configuration.retry, isRetryable: { ($0 as? ObjectStoreError)?.isRetryable ?? false }) { _ in
            let response = try await sendOnce(call)
            let text = try await readSmallBody(response.body, call: call)
            let document = text.isEmpty ? nil : XMLElement.parse(text)
            if let document, document.localName == "Error" {
                throw S3ErrorMapping.error(status: response.status.code, document: document, headers: response.headers,
                                           call: call, statusIsSuccess: true)
            }
            return (response, document)
        }
    }

    private func sendOnce(_ call: S3Call) async throws -> HTTPClientResponse {
        let target = S3RequestTarget(configuration: configuration, key: call.key, query: call.query)
        let creds: AWSCredentials
        do {
            creds = try await credentials.credentials()
        } catch {
            throw ObjectStoreError(.accessDenied, operation: call.operation, key: call.key, code: "NoCredentials",
                                   message: "\(error)")
        }
        let amzDate = AWSTimestamp.amzDate(epochSeconds: Int64(epochSeconds()))
        var signed: [(String, String)] = [("host", target.host), ("x-amz-date", amzDate),
                                          ("x-amz-content-sha256", call.body.sha256Hex)]
        if let token = creds.sessionToken { signed.append(("x-amz-security-token", token)) }
        signed += call.headers
        let authorization = signer.authorization(method: call.method.rawValue, canonicalURI: target.path, query: target.query,
                                                 headers: signed, payloadHash: call.body.sha256Hex,
                                                 credentials: creds, amzDate: amzDate)
        var request = HTTPClientRequest(url: target.url(scheme: configuration.endpoint.scheme))
        request.method = call.method
        for (name, value) in signed { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Authorization", value: authorization)
        if call.body.length > 0 || call.method == .PUT || call.method == .POST {
            let stream: ByteStream
            do { stream = try call.body.make() } catch {
                throw ObjectStoreError(.other, operation: call.operation, key: call.key, code: "PayloadUnreadable", message: "\(error)")
            }
            request.body = .stream(stream, length: .known(call.body.length))
        }
        let response: HTTPClientResponse
        do {
            let deadline: NIODeadline = call.isStreaming ? .distantFuture : .now() + TimeAmount(configuration.requestTimeout)
            response = try await httpClient.execute(request, deadline: deadline, logger: logger)
        } catch let error as ObjectStoreError {
            throw error
        } catch {
            throw S3ErrorMapping.connectionError(error, call: call)
        }
        if call.accepted.contains(response.status.code) { return response }
        let text = call.method == .HEAD ? "" : ((try? await readSmallBody(response.body, call: call)) ?? "")
        throw S3ErrorMapping.error(status: response.status.code, document: XMLElement.parse(text),
                                   headers: response.headers, call: call, statusIsSuccess: false)
    }

    func readSmallBody(_ body: HTTPClientResponse.Body, call: S3Call) async throws -> String {
        do {
            return String(buffer: try await body.collect(upTo: 4 << 20))
        } catch {
            throw S3ErrorMapping.connectionError(error, call: call)
        }
    }
}

enum S3ErrorMapping {
    static func error(status: UInt, document: XMLElement?, headers: HTTPHeaders, call: S3Call,
                      statusIsSuccess: Bool) -> ObjectStoreError {
        let errorNode = document.flatMap { $0.localName == "Error" ? $0 : $0.child("Error") }
        let code = errorNode?.child("Code")?.text ?? defaultCode(status)
        let message = errorNode?.child("Message")?.text ?? "HTTP \(status)"
        let requestID = errorNode?.child("RequestId")?.text ?? headers.first(name: "x-amz-request-id")
        let kind: ObjectStoreError.Kind
        switch (status, code) {
        case (_, "SlowDown"), (_, "Throttling"), (_, "ThrottlingException"), (_, "RequestLimitExceeded"), (429, _), (503, _):
            kind = .throttled
        case (_, "InternalError"), (_, "RequestTimeout"), (_, "ServiceUnavailable"), (500...599, _):
            kind = .transient
        case (404, _), (_, "NoSuchKey"), (_, "NoSuchBucket"), (_, "NoSuchUpload"):
            kind = .notFound
        case (403, _), (_, "AccessDenied"), (_, "SignatureDoesNotMatch"), (_, "InvalidAccessKeyId"), (_, "ExpiredToken"):
            kind = .accessDenied
        case (416, _), (_, "InvalidRange"):
            kind = .invalidRange
        default:
            kind = statusIsSuccess ? .transient : .other
        }
        return ObjectStoreError(kind, operation: call.operation, key: call.key, code: code, message: message,
                                requestID: requestID, httpStatus: Int(status))
    }

    static func connectionError(_ error: any Error, call: S3Call) -> ObjectStoreError {
        if let error = error as? ObjectStoreError { return error }
        return ObjectStoreError(.transient, operation: call.operation, key: call.key, code: "ConnectionError",
                                message: "\(error)")
    }

    private static func defaultCode(_ status: UInt) -> String {
        switch status {
        case 404: "NotFound"
        case 403: "AccessDenied"
        case 416: "InvalidRange"
        case 503: "SlowDown"
        default: "HTTP\(status)"
        }
    }
}
