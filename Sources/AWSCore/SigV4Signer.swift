import Crypto
import StorageCore

/// AWS Signature Version 4 for one service and region, as S3 expects it (no path normalisation,
/// no double encoding). Pure: the caller passes the time and the credentials.
public struct SigV4Signer: Sendable {
    public let service: String
    public let region: String

    public init(service: String, region: String) {
        self.service = service
        self.region = region
    }

    /// The hex SHA-256 of an empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The `Authorization` header value. `headers` are exactly the headers to sign (at least `host`,
    /// `x-amz-date` and, for S3, `x-amz-content-sha256`); `canonicalURI` is the already-encoded path
    /// as it goes on the wire; `query` holds raw (unencoded) names and values.
    public func authorization(method: String, canonicalURI: String, query: [(String, String)],
                              headers: [(String, String)], payloadHash: String,
                              credentials: AWSCredentials, amzDate: String) -> String {
        let (canonical, signedHeaders) = canonicalRequest(method: method, canonicalURI: canonicalURI, query: query,
                                                          headers: headers, payloadHash: payloadHash)
        let scope = credentialScope(amzDate: amzDate)
        let toSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Array(canonical.utf8))))"
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(toSign.utf8),
                                                                  using: signingKey(secret: credentials.secretAccessKey, amzDate: amzDate)))
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// The canonical request text and the `SignedHeaders` list.
    public func canonicalRequest(method: String, canonicalURI: String, query: [(String, String)],
                                 headers: [(String, String)], payloadHash: String) -> (String, String) {
        var grouped = [String: [String]]()
        for (name, value) in headers {
            grouped[name.lowercased(), default: []].append(Self.collapseSpaces(value))
        }
        let names = grouped.keys.sorted(by: Self.bytewiseLess)
        let canonicalHeaders = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let text = [method.uppercased(), canonicalURI.isEmpty ? "/" : canonicalURI, Self.canonicalQuery(query),
                    canonicalHeaders, signedHeaders, payloadHash].joined(separator: "\n")
        return (text, signedHeaders)
    }

    /// `yyyymmdd/region/service/aws4_request`.
    public func credentialScope(amzDate: String) -> String {
        "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
    }

    private func signingKey(secret: String, amzDate: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(secret)".utf8))
        for part in [String(amzDate.prefix(8)), region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return key
    }

    // MARK: Encoding rules

    /// Query string in canonical form, which is also how we put it on the wire: names and values
    /// encoded (including `/`), sorted by name then value, `name=` for empty values.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 == $1.0 ? bytewiseLess($0.1, $1.1) : bytewiseLess($0.0, $1.0) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Percent-encodes every UTF-8 byte except `A-Z a-z 0-9 - . _ ~` (and `/` if `keepSlash`),
    /// with upper-case hex, as AWS specifies.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func collapseSpaces(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    static func bytewiseLess(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in digest { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex(_ digest: SHA256.Digest) -> String { hex(Array(digest)) }
    public static func hex(_ code: HashedAuthenticationCode<SHA256>) -> String { hex(Array(code)) }
}

/// Timestamps in the forms AWS uses, computed without locale-dependent formatters.
public enum AWSTimestamp {
    /// `yyyyMMdd'T'HHmmss'Z'` for `x-amz-date`.
    public static func amzDate(epochSeconds: Int64) -> String {
        let (y, m, d, hh, mm, ss) = civil(epochSeconds)
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "T" + pad(hh, 2) + pad(mm, 2) + pad(ss, 2) + "Z"
    }

    /// `yyyy-MM-dd'T'HH:mm:ss+00:00`, the form the original writes into metadata documents.
    public static func iso8601(epochSeconds: Int64) -> String {
        let (y, m, d, hh, mm, ss) = civil(epochSeconds)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(hh, 2)):\(pad(mm, 2)):\(pad(ss, 2))+00:00"
    }

    /// Parses ISO 8601 UTC timestamps as AWS returns them (`2026-11-21T12:00:00Z`, optional
    /// fraction, `Z` or `+00:00`) into epoch seconds.
    public static func parseISO8601(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= b.count else { return nil }
            var v: Int64 = 0
            for c in b[range] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard b.count >= 19, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let y = number(0..<4), let mo = number(5..<7), let d = number(8..<10),
              let h = number(11..<13), let mi = number(14..<16), let s = number(17..<19),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        var rest = b[19...]
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst().drop(while: { $0 >= 48 && $0 <= 57 })
        }
        var offset: Int64 = 0
        if rest.elementsEqual("Z".utf8) || rest.isEmpty {
            offset = 0
        } else if rest.count == 6, let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            let tail = Array(rest)
            guard tail[3] == UInt8(ascii: ":"),
                  let oh = Int64(String(decoding: tail[1...2], as: UTF8.self)),
                  let om = Int64(String(decoding: tail[4...5], as: UTF8.self)) else { return nil }
            offset = (oh * 3600 + om * 60) * (sign == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        return days(fromCivil: y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    static func civil(_ epoch: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64) { Timestamps.civil(epoch) }

    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        Timestamps.days(fromCivil: year, month, day)
    }
}
