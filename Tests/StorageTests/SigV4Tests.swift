import AWSCore
import FoundationEssentials
import S3ObjectStore
import Testing

/// Vectors produced once by botocore's own S3 client (Fixtures/make_sigv4_vectors.py) at a fixed
/// time; our signer and request builder must reproduce them byte for byte.
@Suite("SigV4 against botocore")
struct SigV4Tests {
    struct Vectors: Decodable {
        struct Vector: Decodable {
            var name: String
            var method: String
            var region: String
            var sessionToken: String?
            var bucket: String
            var key: String?
            var host: String
            var path: String
            var query: [[String]]
            var rawQuery: String
            var signedHeaders: [String: String]
            var authorization: String
        }
        var accessKey: String
        var secretKey: String
        var date: String
        var vectors: [Vector]
    }

    static let vectors: Vectors = {
        let directory = String(#filePath).split(separator: "/").dropLast().joined(separator: "/")
        let data = try! Data(contentsOf: URL(fileURLWithPath: "/\(directory)/Fixtures/sigv4-vectors.json"))
        return try! JSONDecoder().decode(Vectors.self, from: data)
    }()

    @Test func coversTheAwkwardCases() {
        let names = Set(Self.vectors.vectors.map(\.name))
        for required in ["get-space", "get-plus-equals", "get-utf8", "upload-part", "abort-multipart", "list-prefix", "head-token"] {
            #expect(names.contains(required))
        }
    }

    @Test(arguments: vectors.vectors.map(\.name))
    func matchesBotocore(name: String) throws {
        let vector = Self.vectors.vectors.first { $0.name == name }!
        let isAWS = vector.host.hasSuffix("amazonaws.com")
        let configuration = try S3Configuration(bucket: vector.bucket, region: vector.region,
                                                endpoint: isAWS ? nil : "http://127.0.0.1:5055")
        let query = vector.query.map { ($0[0], $0[1]) }
        let target = S3RequestTarget(configuration: configuration, key: vector.key, query: query)
        #expect(target.host == vector.host)
        #expect(target.path == vector.path)
        // What we put on the wire is the canonical query, which S3 accepts in any order.
        #expect(SigV4Signer.canonicalQuery(query) == SigV4Signer.canonicalQuery(
            vector.rawQuery.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (percentDecode(String(parts[0])), percentDecode(parts.count > 1 ? String(parts[1]) : ""))
            }))
        let credentials = AWSCredentials(accessKeyID: Self.vectors.accessKey, secretAccessKey: Self.vectors.secretKey,
                                         sessionToken: vector.sessionToken)
        let signer = SigV4Signer(service: "s3", region: vector.region)
        let authorization = signer.authorization(
            method: vector.method, canonicalURI: target.path, query: query,
            headers: vector.signedHeaders.map { ($0.key, $0.value) },
            payloadHash: vector.signedHeaders["x-amz-content-sha256"]!, credentials: credentials, amzDate: Self.vectors.date)
        #expect(authorization == vector.authorization)
    }

    @Test func encodingRules() {
        #expect(SigV4Signer.uriEncode("a b+c=d/é~", keepSlash: true) == "a%20b%2Bc%3Dd/%C3%A9~")
        #expect(SigV4Signer.uriEncode("a/b", keepSlash: false) == "a%2Fb")
        #expect(SigV4Signer.canonicalQuery([("uploads", ""), ("b", "2"), ("a", "z"), ("a", "y")]) == "a=y&a=z&b=2&uploads=")
    }

    @Test func timestamps() {
        #expect(AWSTimestamp.amzDate(epochSeconds: 0) == "19700101T000000Z")
        #expect(AWSTimestamp.amzDate(epochSeconds: 1_772_704_200) == "20260305T095000Z")
        #expect(AWSTimestamp.iso8601(epochSeconds: 1_772_704_200) == "2026-03-05T09:50:00+00:00")
        #expect(AWSTimestamp.amzDate(epochSeconds: 951_782_400) == "20000229T000000Z")
        #expect(AWSTimestamp.parseISO8601("2026-03-05T09:50:00Z") == 1_772_704_200)
        #expect(AWSTimestamp.parseISO8601("2026-03-05T09:50:00.123456+00:00") == 1_772_704_200)
        #expect(AWSTimestamp.parseISO8601("2026-03-05T10:50:00+01:00") == 1_772_704_200)
        #expect(AWSTimestamp.parseISO8601("2026-13-05T09:50:00Z") == nil)
        #expect(AWSTimestamp.parseISO8601("yesterday") == nil)
    }
}

func percentDecode(_ text: String) -> String {
    var out = [UInt8]()
    var bytes = Array(text.utf8)[...]
    while let c = bytes.popFirst() {
        if c == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
            out.append(v)
            bytes = bytes.dropFirst(2)
        } else {
            out.append(c)
        }
    }
    return String(decoding: out, as: UTF8.self)
}
