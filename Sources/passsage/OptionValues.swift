import ArgumentParser
import ForwardProxy
import NIOCore

/// A duration option: `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds. `0` is allowed and
/// means "no limit" where the option says so.
struct DurationValue: ExpressibleByArgument, Equatable {
    let amount: TimeAmount

    init(amount: TimeAmount) {
        self.amount = amount
    }

    init?(argument: String) {
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

    static var defaultCompletionKind: CompletionKind { .default }
}

/// Reads option values from the command line, then the environment, then a default, and reports a
/// bad value with the option and variable it came from.
struct EnvironmentResolver {
    let environment: [String: String]

    func value<T: ExpressibleByArgument>(_ cli: T?, _ variable: String, option: String) throws -> T? {
        if let cli { return cli }
        guard let raw = environment[variable], !raw.isEmpty else { return nil }
        guard let parsed = T(argument: raw) else {
            throw UsageError("invalid value '\(raw)' for \(option) (from \(variable))")
        }
        return parsed
    }

    func flag(_ cli: Bool, _ variable: String, option: String) throws -> Bool {
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
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum OptionChecks {
    static func port(_ value: Int, option: String, allowZero: Bool = true) throws -> Int {
        guard (allowZero ? 0 : 1)...65535 ~= value else {
            throw UsageError("invalid value '\(value)' for \(option): expected a port number from \(allowZero ? 0 : 1) to 65535")
        }
        return value
    }

    /// `--public-proxy-url`: an http(s) URL with a host, as it is exported verbatim by the script.
    static func proxyURL(_ value: String, option: String) throws -> String {
        let lower = value.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
              value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "'") && $0 != UInt8(ascii: "\"") }),
              value.split(separator: "/", omittingEmptySubsequences: true).count >= 2
        else {
            throw UsageError("invalid value '\(value)' for \(option): expected a URL such as http://proxy.example:8080")
        }
        return value.hasSuffix("/") ? String(value.dropLast()) : value
    }

    static func hostList(_ value: String, option: String) throws -> [String] {
        let hosts = value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        for host in hosts where !host.utf8.allSatisfy({ byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "*"), UInt8(ascii: "["), UInt8(ascii: "]"):
                return true
            default:
                return false
            }
        }) {
            throw UsageError("invalid host '\(host)' in \(option)")
        }
        return hosts
    }
}
