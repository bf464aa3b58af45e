import ArgumentParser
import CommandLineSupport

enum OptionChecks {
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
