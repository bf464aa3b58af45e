/// A minimal XML reader for the small, well-formed documents AWS returns (errors, listings,
/// multipart results, STS credentials). Elements, text and the five standard entities plus
/// numeric references; no DTDs, namespaces are kept as part of names.
public struct XMLElement: Sendable, Hashable {
    public var name: String
    public var text: String
    public var children: [XMLElement]

    /// The first child named `name` (namespace prefixes ignored).
    public func child(_ name: String) -> XMLElement? {
        children.first { $0.localName == name }
    }

    public func children(named name: String) -> [XMLElement] {
        children.filter { $0.localName == name }
    }

    /// Text of the first descendant along `path`, e.g. `["Credentials", "AccessKeyId"]`.
    public func text(at path: [String]) -> String? {
        var node = self
        for name in path {
            guard let next = node.child(name) else { return nil }
            node = next
        }
        return node.text
    }

    public var localName: String {
        guard let colon = name.lastIndex(of: ":") else { return name }
        return String(name[name.index(after: colon)...])
    }

    /// Parses a document; nil if it is not well-formed enough to trust.
    public static func parse(_ text: String) -> XMLElement? {
        var parser = XMLParserState(bytes: Array(text.utf8))
        return parser.parseDocument()
    }
}

private struct XMLParserState {
    let bytes: [UInt8]
    var index = 0

    mutating func parseDocument() -> XMLElement? {
        skipMisc()
        guard let root = parseElement() else { return nil }
        skipMisc()
        return index == bytes.count ? root : nil
    }

    /// Skips whitespace, `<?...?>` declarations, comments and `<!DOCTYPE ...>`.
    mutating func skipMisc() {
        while true {
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            if starts(with: "<?") { skip(past: "?>") }
            else if starts(with: "<!--") { skip(past: "-->") }
            else if starts(with: "<!") { skip(past: ">") }
            else { return }
        }
    }

    mutating func parseElement() -> XMLElement? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "<") else { return nil }
        index += 1
        let name = readName()
        guard !name.isEmpty else { return nil }
        // Attributes are read past, not kept: AWS answers carry their data in elements.
        while index < bytes.count, bytes[index] != UInt8(ascii: ">") {
            if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                let quote = bytes[index]
                index += 1
                while index < bytes.count, bytes[index] != quote { index += 1 }
            }
            if index < bytes.count - 1, bytes[index] == UInt8(ascii: "/"), bytes[index + 1] == UInt8(ascii: ">") {
                index += 2
                return XMLElement(name: name, text: "", children: [])
            }
            index += 1
        }
        guard index < bytes.count else { return nil }
        index += 1
        var element = XMLElement(name: name, text: "", children: [])
        var text = [UInt8]()
        while index < bytes.count {
            if starts(with: "</") {
                index += 2
                guard readName() == name else { return nil }
                while index < bytes.count, isSpace(bytes[index]) { index += 1 }
                guard index < bytes.count, bytes[index] == UInt8(ascii: ">") else { return nil }
                index += 1
                guard let decoded = decodeEntities(text) else { return nil }
                element.text = element.children.isEmpty ? decoded : decoded.trimmingXMLSpace()
                return element
            } else if starts(with: "<!--") {
                skip(past: "-->")
            } else if starts(with: "<![CDATA[") {
                index += 9
                let start = index
                skip(past: "]]>")
                guard index <= bytes.count, index - 3 >= start else { return nil }
                // CDATA is literal; protect its ampersands from entity decoding.
                for c in bytes[start..<(index - 3)] {
                    if c == UInt8(ascii: "&") { text += Array("&amp;".utf8) } else { text.append(c) }
                }
            } else if bytes[index] == UInt8(ascii: "<") {
                guard let child = parseElement() else { return nil }
                element.children.append(child)
            } else {
                text.append(bytes[index])
                index += 1
            }
        }
        return nil
    }

    mutating func readName() -> String {
        let start = index
        while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">"),
              bytes[index] != UInt8(ascii: "/") { index += 1 }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    func starts(with literal: String) -> Bool {
        let l = Array(literal.utf8)
        return index + l.count <= bytes.count && Array(bytes[index..<index + l.count]) == l
    }

    mutating func skip(past literal: String) {
        while index < bytes.count, !starts(with: literal) { index += 1 }
        index = min(bytes.count, index + literal.utf8.count)
    }

    func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 10 || c == 13 }

    func decodeEntities(_ raw: [UInt8]) -> String? {
        var out = [UInt8]()
        var i = 0
        while i < raw.count {
            guard raw[i] == UInt8(ascii: "&") else { out.append(raw[i]); i += 1; continue }
            guard let semicolon = raw[i...].firstIndex(of: UInt8(ascii: ";")), semicolon - i <= 10 else { return nil }
            let entity = String(decoding: raw[(i + 1)..<semicolon], as: UTF8.self)
            switch entity {
            case "amp": out.append(UInt8(ascii: "&"))
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                let scalarValue: UInt32?
                if entity.hasPrefix("#x") { scalarValue = UInt32(entity.dropFirst(2), radix: 16) }
                else if entity.hasPrefix("#") { scalarValue = UInt32(entity.dropFirst(1)) }
                else { scalarValue = nil }
                guard let value = scalarValue, let scalar = Unicode.Scalar(value) else { return nil }
                out += Array(String(Character(scalar)).utf8)
            }
            i = semicolon + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func trimmingXMLSpace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }

    /// Escapes text for an XML element body.
    public var xmlEscaped: String {
        var out = ""
        for c in self {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
