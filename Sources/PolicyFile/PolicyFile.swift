import CachePolicy
import CommandLineSupport
import HTTPRules
import Yams
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The policy file (`--policy-file`): declarative YAML for a `RuleSet`. Its shape is a
/// user-facing contract (`docs/policies.md`):
///
/// ```yaml
/// default_policy: Standard
/// include_defaults: true
/// rules:
///   - match: {host: "*.pythonhosted.org", path_prefix: /packages/, method: GET}
///     policy: NoRefresh
///     timeouts: {connect: 5s, read: 30s}
///     stale_while_revalidate: 60s
///     strip_query: [token]
/// ```
///
/// Anything it does not know is an error with its line, never silently ignored.
public enum PolicyFile {
    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(PolicyFileError) -> RuleSet {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PolicyFileError(file: path, line: nil, message: "cannot read the file (\(Self.reason(error)))")
        }
        do {
            return try parse(text)
        } catch {
            throw PolicyFileError(file: path, line: error.line, message: error.message)
        }
    }

    /// Parses a policy file's text.
    public static func parse(_ text: String) throws(PolicyFileError) -> RuleSet {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.translate(error)
        } catch {
            throw PolicyFileError(line: nil, message: "\(error)")
        }
        guard let root else { return RuleSet() }   // an empty file: the defaults
        var parser = Parser()
        return try parser.ruleSet(root)
    }

    private static func translate(_ error: YamlError) -> PolicyFileError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let detail = context.map { " (\($0.text))" } ?? ""
            return PolicyFileError(line: mark.line, message: "not valid YAML: \(problem)\(detail)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PolicyFileError(line: context.mark.line,
                                   message: "duplicate key \(duplicates.sorted().map { "'\($0)'" }.joined(separator: ", "))")
        default:
            return PolicyFileError(line: nil, message: "not valid YAML: \(error)")
        }
    }

    private static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        return text.count > 200 ? String(text.prefix(200)) : text
    }
}

/// What is wrong with a policy file, and where.
public struct PolicyFileError: Error, Equatable, CustomStringConvertible {
    public var file: String?
    /// 1-based.
    public var line: Int?
    public var message: String

    public init(file: String? = nil, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        let place = [file.map { "policy file \($0)" } ?? "policy file", line.map { "line \($0)" }]
            .compactMap { $0 }.joined(separator: ", ")
        return "\(place): \(message)"
    }
}

/// Node-by-node reading with line numbers for every complaint.
private struct Parser {
    static let policyNames = CachePolicy.allCases.map(\.rawValue).joined(separator: ", ")

    mutating func ruleSet(_ root: Node) throws(PolicyFileError) -> RuleSet {
        let top = try mapping(root, what: "the file", keys: ["default_policy", "include_defaults", "rules"])
        var set = RuleSet()
        if let node = top["default_policy"] { set.defaultPolicy = try policy(node) }
        if let node = top["include_defaults"] { set.includeDefaults = try bool(node, key: "include_defaults") }
        if let node = top["rules"] {
            guard case .sequence(let items) = node else {
                throw fail(node, "rules must be a list of rules")
            }
            for (index, item) in items.enumerated() {
                set.rules.append(try rule(item, number: index + 1))
            }
        }
        return set
    }

    func rule(_ node: Node, number: Int) throws(PolicyFileError) -> PolicyRule {
        let fields = try mapping(node, what: "a rule",
                                 keys: ["match", "policy", "timeouts", "stale_while_revalidate", "strip_query", "redirect_fallback"])
        guard let matchNode = fields["match"] else { throw fail(node, "rule \(number) has no match") }
        guard let policyNode = fields["policy"] else { throw fail(node, "rule \(number) has no policy") }
        var outcome = ResolvedPolicy(try policy(policyNode), origin: "rule \(number) (line \(line(node)))")
        if let timeouts = fields["timeouts"] {
            let parts = try mapping(timeouts, what: "timeouts", keys: ["connect", "read"])
            var value = UpstreamTimeouts()
            if let connect = parts["connect"] {
                let duration = try duration(connect, key: "connect")
                guard duration > .zero else { throw fail(connect, "timeouts.connect must be above zero") }
                value.connect = duration
            }
            if let read = parts["read"] { value.read = try duration(read, key: "read") }
            outcome.timeouts = value
        }
        if let window = fields["stale_while_revalidate"] {
            let duration = try duration(window, key: "stale_while_revalidate")
            outcome.staleWhileRevalidate = duration.components.seconds
        }
        if let strip = fields["strip_query"] {
            outcome.stripQuery = try strings(strip, key: "strip_query")
        }
        if let node = fields["redirect_fallback"] { outcome.redirectFallback = try bool(node, key: "redirect_fallback") }
        let match = try self.match(matchNode)
        if match.contentTypes != nil, outcome.timeouts != nil || outcome.staleWhileRevalidate != nil || !outcome.stripQuery.isEmpty {
            // A content type is known only after the request went upstream: too late for these.
            throw fail(node, "a rule that matches content_type can only choose a policy (timeouts, stale_while_revalidate and strip_query apply before the response is known)")
        }
        return PolicyRule(match, outcome)
    }

    func match(_ node: Node) throws(PolicyFileError) -> PolicyRule.Match {
        let keys = ["host", "path_prefix", "path_contains", "path_suffix", "path_regex", "url_regex", "regex",
                    "method", "header", "content_type"]
        let fields = try mapping(node, what: "match", keys: keys)
        guard !fields.isEmpty else {
            throw fail(node, "match needs at least one of \(keys.joined(separator: ", ")) (default_policy covers everything else)")
        }
        var match = PolicyRule.Match()
        if let host = fields["host"] {
            do {
                match.host = try HostPattern(parsing: try string(host, key: "host"), allowsGlob: true)
            } catch let error as HostPatternError {
                throw fail(host, error.description)
            } catch let error as PolicyFileError {
                throw error
            } catch {
                throw fail(host, "\(error)")
            }
        }
        if let node = fields["path_prefix"] { match.pathPrefix = try string(node, key: "path_prefix").lowercased() }
        if let node = fields["path_contains"] { match.pathContains = try string(node, key: "path_contains").lowercased() }
        if let node = fields["path_suffix"] { match.pathSuffix = try string(node, key: "path_suffix").lowercased() }
        if let node = fields["path_regex"] { match.pathRegex = try pattern(node, key: "path_regex") }
        if fields["url_regex"] != nil, fields["regex"] != nil {
            throw fail(node, "regex and url_regex are the same key; give one")
        }
        if let node = fields["url_regex"] ?? fields["regex"] { match.urlRegex = try pattern(node, key: "url_regex") }
        if let node = fields["method"] {
            let methods = try strings(node, key: "method").map { $0.uppercased() }
            for method in methods where method.isEmpty || !method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5a }) {
                throw fail(node, "method \"\(method)\" is not an HTTP method")
            }
            match.methods = methods
        }
        if let node = fields["header"] {
            guard case .mapping(let headers) = node else {
                throw fail(node, "header must map header names to regular expressions, e.g. {User-Agent: \"^pip/\"}")
            }
            for (name, value) in headers {
                let field = try string(name, key: "header name")
                guard !field.isEmpty, field.utf8.allSatisfy({ Self.isTokenByte($0) }) else {
                    throw fail(name, "\"\(field)\" is not a header name")
                }
                match.headers.append((name: field, pattern: try pattern(value, key: "header \(field)")))
            }
        }
        if let node = fields["content_type"] {
            let types = try strings(node, key: "content_type").map { $0.lowercased() }
            for type in types where !Self.isMediaTypePattern(type) {
                throw fail(node, "content_type \"\(type)\" is not a media type (type/subtype or type/*)")
            }
            match.contentTypes = types
        }
        return match
    }

    // MARK: Values

    func policy(_ node: Node) throws(PolicyFileError) -> CachePolicy {
        let name = try string(node, key: "policy")
        guard let policy = CachePolicy(name: name) else {
            throw fail(node, "unknown policy \"\(name)\" (expected one of \(Self.policyNames))")
        }
        return policy
    }

    func pattern(_ node: Node, key: String) throws(PolicyFileError) -> RulePattern {
        let source = try string(node, key: key)
        do {
            return try RulePattern(source)
        } catch {
            throw fail(node, "\(key): invalid regular expression \"\(source)\": \(error)")
        }
    }

    /// `5s`, `1.5s`, `500ms`, `2m`, `1h`, or a bare number of seconds (the command line's form).
    func duration(_ node: Node, key: String) throws(PolicyFileError) -> Duration {
        let text = try string(node, key: key)
        guard let value = DurationValue(argument: text) else {
            throw fail(node, "\(key): \"\(text)\" is not a duration (e.g. 500ms, 30s, 5m, 1h)")
        }
        return value.duration
    }

    func bool(_ node: Node, key: String) throws(PolicyFileError) -> Bool {
        guard case .scalar = node, let value = node.bool else { throw fail(node, "\(key) must be true or false") }
        return value
    }

    func string(_ node: Node, key: String) throws(PolicyFileError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, "\(key) must be a single value") }
        return scalar.string
    }

    /// One string or a list of them.
    func strings(_ node: Node, key: String) throws(PolicyFileError) -> [String] {
        if case .sequence(let items) = node {
            var values: [String] = []
            for item in items { values.append(try string(item, key: key)) }
            guard !values.isEmpty else { throw fail(node, "\(key) must not be empty") }
            return values
        }
        return [try string(node, key: key)]
    }

    /// A mapping with string keys among `keys`, as a dictionary.
    func mapping(_ node: Node, what: String, keys: [String]) throws(PolicyFileError) -> [String: Node] {
        guard case .mapping(let pairs) = node else { throw fail(node, "\(what) must be a mapping of keys to values") }
        var fields: [String: Node] = [:]
        for (key, value) in pairs {
            guard case .scalar(let scalar) = key else { throw fail(key, "keys in \(what) must be plain names") }
            guard keys.contains(scalar.string) else {
                throw fail(key, "unknown key \"\(scalar.string)\" in \(what) (expected \(keys.joined(separator: ", ")))")
            }
            guard fields[scalar.string] == nil else { throw fail(key, "duplicate key \"\(scalar.string)\" in \(what)") }
            fields[scalar.string] = value
        }
        return fields
    }

    func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    func fail(_ node: Node, _ message: String) -> PolicyFileError {
        PolicyFileError(line: node.mark?.line, message: message)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            || "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }

    static func isMediaTypePattern(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return false }
        return parts[0].utf8.allSatisfy(isTokenByte) && (parts[1] == "*" || parts[1].utf8.allSatisfy(isTokenByte))
    }
}
