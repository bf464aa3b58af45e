import AWSCore
import Crypto
import ObjectStore
import S3ObjectStore
import StorageCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// Streams one file into an object store and back in a process of its own, so that its peak
// resident memory (VmHWM) measures the stores alone, not whatever else a test process runs.
// Usage: object-store-streamer local ROOT FILE SIZE
//        object-store-streamer s3 ENDPOINT BUCKET ACCESS_KEY SECRET FILE SIZE MULTIPART_THRESHOLD
// Prints: sha256 bytes baselineRSS peakRSS etag

func memory(_ field: String) -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix(field + ":") {
            return (text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
    }
    return 0
}

let arguments = CommandLine.arguments
let store: any ObjectStore
let file: String
let size: Int64
var s3: S3ObjectStore?
switch arguments.dropFirst().first {
case "local" where arguments.count == 5:
    store = try LocalDirectoryObjectStore(root: arguments[2])
    (file, size) = (arguments[3], Int64(arguments[4]) ?? 0)
case "s3" where arguments.count == 9:
    let configuration = try S3Configuration(bucket: arguments[3], endpoint: arguments[2],
                                            multipartThreshold: Int64(arguments[8]) ?? 0, partSize: 5 << 20)
    let client = S3ObjectStore(configuration: configuration,
                               credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: arguments[4], secretAccessKey: arguments[5])))
    (store, s3) = (client, client)
    (file, size) = (arguments[6], Int64(arguments[7]) ?? 0)
default:
    print("usage: object-store-streamer local ROOT FILE SIZE | s3 ENDPOINT BUCKET ACCESS SECRET FILE SIZE THRESHOLD")
    exit(2)
}
let baseline = memory("VmRSS")
try await store.put("big/object", payload: .file(path: file), length: size)
let download = try await store.get("big/object")
var hasher = SHA256()
var count: Int64 = 0
for try await buffer in download.body {
    count += Int64(buffer.readableBytes)
    buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
}
let digest = hasher.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
let etag = try await store.head("big/object").etag ?? "-"
try await s3?.shutdown()
print(digest, count, baseline, memory("VmHWM"), etag)
