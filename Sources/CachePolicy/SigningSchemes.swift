/// URL-signing schemes whose query parameters say who may fetch an object and until when, not
/// which object it is: the cache key leaves them out, so every signed URL of one object shares
/// an entry. A scheme is recognised by its signature parameter together with the parameters it
/// never goes without, and only its own parameters are left out: a `signature` or `policy`
/// parameter elsewhere stays in the key (the original stripped such generic names on every URL,
/// so unrelated URLs could collide: bug 17).
///
/// The cache does not check signatures: an entry fetched once with a valid one answers any
/// request for the same object (`docs/policies.md`).
enum SigningSchemes {
    struct Scheme {
        let name: String
        /// All of these present (lower-case) recognise the scheme.
        let recognisedBy: Set<String>
        /// What it leaves out of the key.
        let parameters: Set<String>
    }

    static let schemes: [Scheme] = [
        // AWS Signature Version 4 query authentication (S3 presigned URLs, other services), with
        // what SDKs add to the URLs they sign: the payload hash and their own user agent.
        Scheme(name: "aws-sigv4", recognisedBy: ["x-amz-signature", "x-amz-credential"],
               parameters: ["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
                            "x-amz-signedheaders", "x-amz-signature", "x-amz-security-token",
                            "x-amz-content-sha256", "x-amz-user-agent"]),
        // AWS Signature Version 2 query authentication (older S3 presigned URLs).
        Scheme(name: "aws-sigv2", recognisedBy: ["awsaccesskeyid", "signature"],
               parameters: ["awsaccesskeyid", "signature", "expires", "x-amz-security-token"]),
        // CloudFront signed URLs, canned or custom policy.
        Scheme(name: "cloudfront", recognisedBy: ["key-pair-id", "signature"],
               parameters: ["key-pair-id", "signature", "expires", "policy"]),
        // Azure shared access signatures (service, account and user delegation SAS). The
        // response-header overrides (`rscc`, `rsct`, …) change the response and stay.
        Scheme(name: "azure-sas", recognisedBy: ["sig", "sv"],
               parameters: ["sig", "sv", "ss", "srt", "sp", "se", "st", "spr", "sip", "sr", "si", "sdd", "ses",
                            "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid"]),
        // Google Cloud Storage V4 signed URLs.
        Scheme(name: "gcs-v4", recognisedBy: ["x-goog-signature", "x-goog-credential"],
               parameters: ["x-goog-algorithm", "x-goog-credential", "x-goog-date", "x-goog-expires",
                            "x-goog-signedheaders", "x-goog-signature"]),
        // Google Cloud Storage V2 signed URLs.
        Scheme(name: "gcs-v2", recognisedBy: ["googleaccessid", "signature"],
               parameters: ["googleaccessid", "signature", "expires"]),
    ]

    /// The parameters to leave out of a query whose (comparable) names are `names`.
    static func strippedNames(_ names: Set<String>) -> Set<String> {
        var stripped: Set<String> = []
        for scheme in schemes where scheme.recognisedBy.isSubset(of: names) {
            stripped.formUnion(scheme.parameters)
        }
        return stripped
    }

    /// A parameter name as compared: percent-decoded where it decodes to ASCII, lower-cased.
    static func comparableName(_ name: String) -> String {
        guard name.utf8.contains(UInt8(ascii: "%")) else { return name.lowercased() }
        var bytes: [UInt8] = []
        var iterator = Array(name.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let high = hexValue(iterator[iterator.startIndex]), let low = hexValue(iterator[iterator.startIndex + 1]),
               high < 8 {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self).lowercased()
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
