/// Percent-decoding (RFC 3986 §2.1) without Foundation: S3 listing keys and credentials in URLs.
public enum PercentDecoding {
    /// `text` with each `%XX` replaced by its byte, and `+` by a space when `plusIsSpace`
    /// (form encoding). Nil for a malformed escape or bytes that are not UTF-8.
    public static func decode(_ text: some StringProtocol, plusIsSpace: Bool = false) -> String? {
        var out = [UInt8]()
        var bytes = Array(text.utf8)[...]
        while let c = bytes.popFirst() {
            if plusIsSpace, c == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(c)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
