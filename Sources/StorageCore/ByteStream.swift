import NIOCore

/// A one-pass, pull-based stream of body bytes. Pulling is the backpressure: nothing is read from
/// a file or socket until the consumer asks for the next buffer.
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    private let makeBase: @Sendable () -> any AsyncIteratorProtocol<ByteBuffer, any Error>

    /// Wraps any sequence of buffers (an async-http-client body, a file reader, ...).
    public init<Base: AsyncSequence & Sendable>(_ base: Base)
    where Base.Element == ByteBuffer, Base.Failure == any Error {
        self.makeBase = { base.makeAsyncIterator() }
    }

    /// Wraps a sequence whose failure type is more specific than `any Error`.
    public init<Base: AsyncSequence & Sendable>(erasing base: Base) where Base.Element == ByteBuffer {
        self.makeBase = { ErasedIterator(base: base.makeAsyncIterator()) }
    }

    /// Buffers already in memory.
    public init(buffers: [ByteBuffer]) {
        self.makeBase = { ArrayIterator(buffers: buffers) }
    }

    public static let empty = ByteStream(buffers: [])

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: makeBase())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<ByteBuffer, any Error>

        public mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }

    /// Fails with `error(received)` if the stream ends with a byte count other than `expected`,
    /// or as soon as it goes past it. A truncated body must never pass for a complete one.
    public func verifyingLength(
        _ expected: Int64,
        error: @escaping @Sendable (_ received: Int64) -> any Error
    ) -> ByteStream {
        let base = self
        return ByteStream(LengthCheckedSequence(base: base, expected: expected, makeError: error))
    }

    /// Reads the whole stream into one buffer. For tests and small control-plane bodies only.
    public func collect(upTo limit: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        for try await part in self {
            guard result.readableBytes + part.readableBytes <= limit else {
                throw ByteStreamTooLarge(limit: limit)
            }
            var part = part
            result.writeBuffer(&part)
        }
        return result
    }
}

public struct ByteStreamTooLarge: Error, Sendable, CustomStringConvertible {
    public let limit: Int
    public var description: String { "body is larger than \(limit) bytes" }
}

private struct ArrayIterator: AsyncIteratorProtocol {
    var buffers: [ByteBuffer]
    var index = 0
    mutating func next() async throws -> ByteBuffer? {
        guard index < buffers.count else { return nil }
        defer { index += 1 }
        return buffers[index]
    }
}

private struct ErasedIterator<Base: AsyncIteratorProtocol>: AsyncIteratorProtocol where Base.Element == ByteBuffer {
    var base: Base
    mutating func next() async throws -> ByteBuffer? { try await base.next() }
}

private struct LengthCheckedSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let base: ByteStream
    let expected: Int64
    let makeError: @Sendable (Int64) -> any Error

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), expected: expected, makeError: makeError)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: ByteStream.AsyncIterator
        let expected: Int64
        let makeError: @Sendable (Int64) -> any Error
        var received: Int64 = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let part = try await base.next() else {
                if received != expected { throw makeError(received) }
                return nil
            }
            received += Int64(part.readableBytes)
            if received > expected { throw makeError(received) }
            return part
        }
    }
}

extension ByteStream {
    /// Replaces any error the underlying stream throws with `transform(error)`.
    public func mappingErrors(_ transform: @escaping @Sendable (any Error) -> any Error) -> ByteStream {
        ByteStream(ErrorMappingSequence(base: self, transform: transform))
    }
}

private struct ErrorMappingSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let base: ByteStream
    let transform: @Sendable (any Error) -> any Error

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), transform: transform) }

    struct Iterator: AsyncIteratorProtocol {
        var base: ByteStream.AsyncIterator
        let transform: @Sendable (any Error) -> any Error
        mutating func next() async throws -> ByteBuffer? {
            do { return try await base.next() } catch { throw transform(error) }
        }
    }
}
