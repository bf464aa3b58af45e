import StorageCore

/// What a client's `Range` header asks for (RFC 9110 §14.2).
public enum RangeRequest: Sendable, Hashable {
    /// No header, or one that is ignored: another unit, a malformed value, or several ranges
    /// (which we do not serve as multipart). The whole object is sent with 200.
    case whole
    /// One well-formed range; whether it can be satisfied depends on the size.
    case single(ByteRange)

    /// Parses a `Range` header value. Ignoring what cannot be served is what RFC 9110 allows;
    /// only a well-formed range that misses the object earns a 416.
    public init(headerValue: String?) {
        guard let raw = headerValue?.trimmingSpaces(), raw.hasPrefix("bytes=") else {
            self = .whole
            return
        }
        let spec = String(raw.dropFirst("bytes=".count)).trimmingSpaces()
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else {
            self = .whole
            return
        }
        let first = String(spec[..<dash]).trimmingSpaces()
        let last = String(spec[spec.index(after: dash)...]).trimmingSpaces()
        func number(_ text: String) -> Int64? {
            guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int64(text)
        }
        switch (number(first), number(last)) {
        case (let a?, let b?) where a <= b: self = .single(.closed(first: a, last: b))
        case (let a?, nil) where last.isEmpty: self = .single(.from(a))
        case (nil, let n?) where first.isEmpty: self = .single(.suffix(n))
        default: self = .whole
        }
    }

    /// The inclusive span to send for an object of `size` bytes: `.whole` is everything (nil for
    /// an empty object); `.unsatisfiable` means 416.
    public func resolve(size: Int64) -> Resolution {
        switch self {
        case .whole:
            return size > 0 ? .full(0...(size - 1)) : .empty
        case .single(let range):
            guard let span = range.resolve(size: size) else { return .unsatisfiable }
            return span == 0...(size - 1) ? .full(span) : .partial(span)
        }
    }

    public enum Resolution: Sendable, Hashable {
        /// 200 with no body.
        case empty
        /// 200 with the whole object.
        case full(ClosedRange<Int64>)
        /// 206 with this span.
        case partial(ClosedRange<Int64>)
        /// 416 with `Content-Range: bytes */size`.
        case unsatisfiable
    }
}
