import HTTPRules
import NIOHTTP1

/// The Cache-Control directives of one message (RFC 9111 §5.2), from all of its field lines.
///
/// Parsing follows the RFC rather than the original's comma split: names are case-insensitive,
/// arguments may be tokens or quoted strings (with commas and escapes inside), empty list elements
/// are skipped. Where a directive is repeated with disagreeing arguments, or an argument is not
/// what the directive needs, the accessors take the most restrictive reading (§4.2.1: "the most
/// restrictive directive should be honored"; invalid freshness information means stale).
public struct CacheControl: Sendable, Equatable {
    /// Each directive by lower-case name, with its argument (unquoted) if it had one. Repeated
    /// directives keep every argument, in order.
    public private(set) var directives: [String: [String?]] = [:]

    public init() {}

    public init(_ headers: HTTPHeaders) {
        self.init(fieldValues: headers[canonicalForm: "cache-control"].map(String.init))
    }

    public init(fieldValues: [String]) {
        for value in fieldValues { parse(value) }
    }

    public var isEmpty: Bool { directives.isEmpty }

    public func has(_ name: String) -> Bool { directives[name] != nil }

    // MARK: Flags

    public var noStore: Bool { has("no-store") }
    public var noCache: Bool { has("no-cache") }
    public var isPrivate: Bool { has("private") }
    public var isPublic: Bool { has("public") }
    public var mustRevalidate: Bool { has("must-revalidate") }
    public var proxyRevalidate: Bool { has("proxy-revalidate") }
    public var immutable: Bool { has("immutable") }
    public var onlyIfCached: Bool { has("only-if-cached") }

    /// The field names of a qualified `no-cache="Set-Cookie, X-Foo"` (lower-case); empty when
    /// unqualified.
    public var noCacheFields: [String] { fieldNames("no-cache") }

    /// The field names of a qualified `private="..."` (lower-case); empty when unqualified.
    public var privateFields: [String] { fieldNames("private") }

    // MARK: Delta-seconds, most restrictive reading

    /// `max-age`; an invalid value, or occurrences that disagree, read as 0 (stale, or
    /// "revalidate" in a request).
    public var maxAge: Int? { restrictiveDelta("max-age", invalid: 0, pick: Self.agreeingOrZero) }
    /// `s-maxage`; as `max-age`.
    public var sharedMaxAge: Int? { restrictiveDelta("s-maxage", invalid: 0, pick: Self.agreeingOrZero) }
    /// `stale-while-revalidate` (RFC 5861); invalid grants nothing.
    public var staleWhileRevalidate: Int? { restrictiveDelta("stale-while-revalidate", invalid: nil, pick: min) }
    /// `stale-if-error` (RFC 5861); invalid grants nothing.
    public var staleIfError: Int? { restrictiveDelta("stale-if-error", invalid: nil, pick: min) }
    /// Request `min-fresh`; invalid asks for more freshness than any entry has.
    public var minFresh: Int? { restrictiveDelta("min-fresh", invalid: Self.deltaLimit, pick: max) }

    public enum MaxStale: Sendable, Equatable {
        /// `max-stale` without a value: any staleness.
        case any
        case seconds(Int)
    }

    /// Request `max-stale`; an invalid value grants nothing.
    public var maxStale: MaxStale? {
        guard let arguments = directives["max-stale"] else { return nil }
        if arguments.allSatisfy({ $0 == nil }) { return .any }
        guard let seconds = restrictiveDelta("max-stale", invalid: nil, pick: min) else { return nil }
        return .seconds(seconds)
    }

    private static func agreeingOrZero(_ first: Int, _ second: Int) -> Int { first == second ? first : 0 }

    /// RFC 9111 §1.2.2: larger delta-seconds are taken as 2^31.
    public static let deltaLimit = 2_147_483_648

    /// The directive's delta-seconds: nil when absent, `invalid` when an argument is missing or not
    /// digits, else `pick` over the values of its occurrences.
    private func restrictiveDelta(_ name: String, invalid: Int?, pick: (Int, Int) -> Int) -> Int? {
        guard let arguments = directives[name] else { return nil }
        var result: Int?
        for argument in arguments {
            guard let argument, let value = Self.deltaSeconds(argument) else { return invalid }
            result = result.map { pick($0, value) } ?? value
        }
        return result
    }

    /// `1*DIGIT`, saturating at 2^31.
    static func deltaSeconds(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for byte in text.utf8 {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = min(value * 10 + Int(byte - 0x30), deltaLimit)
        }
        return value
    }

    private func fieldNames(_ name: String) -> [String] {
        guard let arguments = directives[name] else { return [] }
        var names: [String] = []
        for argument in arguments {
            guard let argument else { continue }
            for field in argument.split(separator: ",") {
                let trimmed = String(field).trimmingASCIIWhitespace().lowercased()
                if !trimmed.isEmpty, !names.contains(trimmed) { names.append(trimmed) }
            }
        }
        return names
    }

    // MARK: Parsing

    private mutating func parse(_ value: String) {
        let bytes = Array(value.utf8)
        var index = 0
        while index < bytes.count {
            // One list element: name [= (token | quoted-string)], up to a comma outside quotes.
            while index < bytes.count, Self.isWhitespaceOrComma(bytes[index]) { index += 1 }
            let nameStart = index
            while index < bytes.count, Self.isTokenByte(bytes[index]) { index += 1 }
            let name = String(decoding: bytes[nameStart..<index], as: UTF8.self).lowercased()
            while index < bytes.count, Self.isWhitespace(bytes[index]) { index += 1 }
            var argument: String?
            var wellFormed = !name.isEmpty
            if index < bytes.count, bytes[index] == UInt8(ascii: "=") {
                index += 1
                while index < bytes.count, Self.isWhitespace(bytes[index]) { index += 1 }
                if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                    index += 1
                    var text: [UInt8] = []
                    var closed = false
                    while index < bytes.count {
                        let byte = bytes[index]
                        index += 1
                        if byte == UInt8(ascii: "\\"), index < bytes.count {
                            text.append(bytes[index])
                            index += 1
                        } else if byte == UInt8(ascii: "\"") {
                            closed = true
                            break
                        } else {
                            text.append(byte)
                        }
                    }
                    wellFormed = wellFormed && closed
                    argument = String(decoding: text, as: UTF8.self)
                } else {
                    let start = index
                    while index < bytes.count, Self.isTokenByte(bytes[index]) { index += 1 }
                    argument = String(decoding: bytes[start..<index], as: UTF8.self)
                }
            }
            // Anything else before the next comma makes the element malformed.
            while index < bytes.count, bytes[index] != UInt8(ascii: ",") {
                if !Self.isWhitespace(bytes[index]) { wellFormed = false }
                index += 1
            }
            if !name.isEmpty {
                // A malformed element still counts, with an argument no directive accepts, so
                // that e.g. `max-age=1 0` is invalid rather than missing.
                directives[name, default: []].append(wellFormed ? argument : "\u{0}")
            }
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
    private static func isWhitespaceOrComma(_ byte: UInt8) -> Bool { isWhitespace(byte) || byte == UInt8(ascii: ",") }

    /// RFC 9110 §5.6.2 tchar.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
