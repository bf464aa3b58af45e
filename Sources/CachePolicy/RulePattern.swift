import Synchronization

/// A regular expression from a rule (Swift `Regex` syntax), searched case-insensitively.
///
/// `Regex` is not `Sendable`: each compiled copy is used by one thread at a time, taken from and
/// returned to a small pool (it grows to the number of threads matching at once).
public final class RulePattern: Sendable, CustomStringConvertible {
    public let source: String
    private let pool: Mutex<[Compiled]>

    private struct Compiled: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
    }

    /// Throws the compiler's message for a bad pattern.
    public init(_ source: String) throws {
        self.source = source
        pool = Mutex([Compiled(regex: try Regex(source).ignoresCase())])
    }

    public func matches(_ text: String) -> Bool {
        let taken = pool.withLock { $0.popLast() }
        // The source compiled once, so it compiles again.
        guard let compiled = taken ?? (try? Regex(source).ignoresCase()).map(Compiled.init) else { return false }
        defer { pool.withLock { $0.append(compiled) } }
        return text.contains(compiled.regex)
    }

    public var description: String { source }
}

extension RulePattern: Equatable {
    public static func == (left: RulePattern, right: RulePattern) -> Bool { left.source == right.source }
}
