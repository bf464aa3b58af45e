/// A single HTTP byte range as a client asks for it (RFC 9110 §14.1.2), before the size is known.
public enum ByteRange: Sendable, Hashable, CustomStringConvertible {
    /// `bytes=first-last`, both inclusive.
    case closed(first: Int64, last: Int64)
    /// `bytes=first-`: from `first` to the end.
    case from(Int64)
    /// `bytes=-length`: the last `length` bytes.
    case suffix(Int64)

    /// The value of a `Range` request header.
    public var headerValue: String {
        switch self {
        case .closed(let first, let last): "bytes=\(first)-\(last)"
        case .from(let first): "bytes=\(first)-"
        case .suffix(let length): "bytes=-\(length)"
        }
    }

    public var description: String { headerValue }

    /// Whether the range is well-formed on its own (first ≤ last, no negatives).
    public var isValid: Bool {
        switch self {
        case .closed(let first, let last): first >= 0 && last >= first
        case .from(let first): first >= 0
        case .suffix(let length): length >= 0
        }
    }

    /// The inclusive byte span this range selects from an object of `size` bytes, clamped as
    /// RFC 9110 says; nil when it is unsatisfiable (starts past the end, or selects nothing).
    public func resolve(size: Int64) -> ClosedRange<Int64>? {
        guard isValid, size > 0 else { return nil }
        switch self {
        case .closed(let first, let last):
            guard first < size else { return nil }
            return first...min(last, size - 1)
        case .from(let first):
            guard first < size else { return nil }
            return first...(size - 1)
        case .suffix(let length):
            guard length > 0 else { return nil }
            return max(0, size - length)...(size - 1)
        }
    }
}

/// A parsed `Content-Range: bytes first-last/complete` response header.
public struct ContentRange: Sendable, Hashable {
    public var first: Int64
    public var last: Int64
    /// The full size, or nil for `*`.
    public var completeLength: Int64?

    public init(first: Int64, last: Int64, completeLength: Int64?) {
        self.first = first
        self.last = last
        self.completeLength = completeLength
    }

    public var length: Int64 { last - first + 1 }

    /// Parses `bytes a-b/n` or `bytes a-b/*`; nil for anything else or inconsistent numbers.
    public init?(headerValue: String) {
        let value = headerValue.trimmingSpaces()
        guard value.hasPrefix("bytes ") else { return nil }
        let spec = value.dropFirst("bytes ".count)
        let halves = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let bounds = halves[0].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]),
              first >= 0, last >= first else { return nil }
        var complete: Int64? = nil
        if halves[1] != "*" {
            guard let n = Int64(halves[1]), n > last else { return nil }
            complete = n
        }
        self.init(first: first, last: last, completeLength: complete)
    }
}

extension String {
    /// Leading and trailing spaces and tabs removed (no Foundation needed).
    package func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let c = scalars.first, c == " " || c == "\t" { scalars.removeFirst() }
        while let c = scalars.last, c == " " || c == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
