import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DownloadPlanning
import NIOCore

/// A duration option: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds. `0` is allowed and
/// means "no limit" where the option says so.
public struct DurationValue: ExpressibleByArgument, Equatable, Sendable {
    public let amount: TimeAmount

    /// The same span as a Swift `Duration`.
    public var duration: Duration { .nanoseconds(amount.nanoseconds) }

    public init(amount: TimeAmount) {
        self.amount = amount
    }

    public init?(argument: String) {
        let text = argument.lowercased().filter { $0 != " " && $0 != "\t" }
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale <= 86_400 * 365 else { return nil }
        amount = .nanoseconds(Int64((value * scale * 1e9).rounded()))
    }

    public static var defaultCompletionKind: CompletionKind { .default }

    /// A span as the options take it: `30s`, `1500ms`, `0` (how `check-config` reports them).
    public static func describe(nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0" }
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        return "\(nanoseconds)ns"
    }

    public static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return describe(nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// A byte-size option: `32MiB` (binary), `5MB` or `5m` (decimal), `1048576`.
public struct ByteSizeValue: ExpressibleByArgument, Sendable {
    public let bytes: Int64

    public init?(argument: String) {
        guard let bytes = ByteSize.parse(argument) else { return nil }
        self.bytes = bytes
    }
}

/// Reads option values from the command line, then the environment, then a default, and reports a
/// bad value with the option and variable it came from.
public struct EnvironmentResolver: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    public func value<T: ExpressibleByArgument>(_ cli: T?, _ variable: String, option: String) throws -> T? {
        if let cli { return cli }
        guard let raw = environment[variable], !raw.isEmpty else { return nil }
        guard let parsed = T(argument: raw) else {
            throw UsageError("invalid value '\(raw)' for \(option) (from \(variable))")
        }
        return parsed
    }

    public func flag(_ cli: Bool, _ variable: String, option: String) throws -> Bool {
        if cli { return true }
        guard let raw = environment[variable]?.lowercased(), !raw.isEmpty else { return false }
        switch raw {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw UsageError("invalid value '\(raw)' for \(option) (from \(variable)); use true or false")
        }
    }
}

/// A bad option value: reported on one line, exit code 2.
public struct UsageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum PortOption {
    public static func check(_ value: Int, option: String, allowZero: Bool = true) throws -> Int {
        guard (allowZero ? 0 : 1)...65535 ~= value else {
            throw UsageError("invalid value '\(value)' for \(option): expected a port number from \(allowZero ? 0 : 1) to 65535")
        }
        return value
    }
}

extension AsyncParsableCommand {
    /// Like ArgumentParser's `main`, but every usage error is one line on stderr
    /// (`<program>: error: ...`) with exit code 2, and a failure to start is exit code 1.
    public static func runReportingErrors(program: String) async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as UsageError {
            fail(program, "\(error)", code: 2)
        } catch {
            switch exitCode(for: error) {
            case .success:
                exit(withError: error)
            case .validationFailure:
                fail(program, message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments", code: 2)
            default:
                fail(program, message(for: error).isEmpty ? "\(error)" : message(for: error), code: 1)
            }
        }
    }
}

private func fail(_ program: String, _ message: String, code: Int32) -> Never {
    let line = Array("\(program): error: \(message)\n".utf8)
    #if canImport(Darwin)
    _ = line.withUnsafeBytes { Darwin.write(2, $0.baseAddress, $0.count) }
    Darwin.exit(code)
    #else
    _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    Glibc.exit(code)
    #endif
}
