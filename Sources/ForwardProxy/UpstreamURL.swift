/// Makes a request target acceptable to URL parsers without changing its meaning.
enum UpstreamURL {
    /// Percent-encodes bytes that RFC 3986 never allows in a URL (spaces, quotes, `<>{}|\^` and
    /// backtick, controls, non-ASCII). Existing `%XX` escapes are left alone, so nothing is decoded
    /// or double-encoded.
    static func encodeInvalidCharacters(_ text: String) -> String {
        guard text.utf8.contains(where: needsEncoding) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for byte in text.utf8 {
            if needsEncoding(byte) {
                out += "%" + hexDigit(byte >> 4) + hexDigit(byte & 0xF)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    private static func needsEncoding(_ byte: UInt8) -> Bool {
        switch byte {
        case 0...0x20, 0x7F...0xFF: return true
        case UInt8(ascii: "\""), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\\"), UInt8(ascii: "^"),
             UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"):
            return true
        default: return false
        }
    }

    private static func hexDigit(_ value: UInt8) -> String {
        String(value, radix: 16, uppercase: true)
    }
}
