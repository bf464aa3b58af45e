import AWSCore
import NIOCore
import ObjectStore
import StorageCore

/// Create, upload parts (a few at a time), complete; abort on any failure so no half-finished
/// upload lingers. The object appears only when Complete succeeds.
struct MultipartUpload {
    let store: S3ObjectStore
    let key: String
    let source: PayloadSource
    let length: Int64

    func run() async throws {
        let transport = store.transport
        let (_, created) = try await transport.sendExpectingXML(
            S3Call(operation: "CreateMultipartUpload", method: .POST, key: key, query: [("uploads", "")]))
        guard let uploadID = created?.child("UploadId")?.text, !uploadID.isEmpty else {
            throw ObjectStoreError(.other, operation: "CreateMultipartUpload", key: key, code: "BadResponse", message: "no UploadId")
        }
        do {
            let etags = try await uploadParts(uploadID: uploadID)
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (index, etag) in etags.enumerated() {
                xml += "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(etag.xmlEscaped)</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            _ = try await transport.sendExpectingXML(
                S3Call(operation: "CompleteMultipartUpload", method: .POST, key: key, query: [("uploadId", uploadID)],
                       headers: [("content-type", "application/xml")], body: .bytes(ByteBuffer(string: xml))))
        } catch {
            _ = try? await transport.sendDiscardingBody(
                S3Call(operation: "AbortMultipartUpload", method: .DELETE, key: key, query: [("uploadId", uploadID)], accepted: [204, 200]))
            throw error
        }
    }

    /// Part size grows past the configured one if needed to stay within S3's 10,000 parts.
    var partSize: Int64 {
        max(store.configuration.partSize, (length + 9_999) / 10_000)
    }

    private func uploadParts(uploadID: String) async throws -> [String] {
        let partSize = self.partSize
        let count = Int((length + partSize - 1) / partSize)
        let limit = store.configuration.partConcurrency
        var etags = [String?](repeating: nil, count: count)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var next = 0
            func startNext() {
                let index = next
                next += 1
                let range = Int64(index) * partSize..<min(Int64(index + 1) * partSize, length)
                group.addTask {
                    let body = try await source.body(range: range)
                    let headers = try await store.transport.sendDiscardingBody(
                        S3Call(operation: "UploadPart", method: .PUT, key: key,
                               query: [("partNumber", String(index + 1)), ("uploadId", uploadID)], body: body, isStreaming: true))
                    guard let etag = headers.first(name: "etag") else {
                        throw ObjectStoreError(.other, operation: "UploadPart", key: key, code: "BadResponse", message: "part \(index + 1) has no ETag")
                    }
                    return (index, etag)
                }
            }
            while next < min(limit, count) { startNext() }
            while let (index, etag) = try await group.next() {
                etags[index] = etag
                if next < count { startNext() }
            }
        }
        return etags.map { $0! }
    }
}
