import NIOHTTP1

/// The header fields that never cross an intermediary as they are (RFC 9110 §7.6.1), one list for
/// passsage and xs3lerator.
public enum HopByHop {
    /// Hop-by-hop fields, in addition to those a `Connection` (or the legacy `Proxy-Connection`)
    /// header names. `Proxy-Authorization` and `Proxy-Authenticate` are addressed to the proxy.
    public static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// The lower-case field names `Connection` and `Proxy-Connection` declare hop-by-hop.
    public static func namedByConnection(_ headers: HTTPHeaders) -> Set<String> {
        var named: Set<String> = []
        for value in headers[canonicalForm: "connection"] { named.insert(value.lowercased().trimmingASCIIWhitespace()) }
        for value in headers[canonicalForm: "proxy-connection"] { named.insert(value.lowercased().trimmingASCIIWhitespace()) }
        return named
    }

    /// Whether the field `lowercasedName` is hop-by-hop, given what `Connection` names.
    public static func isHopByHop(_ lowercasedName: String, named: Set<String>) -> Bool {
        names.contains(lowercasedName) || named.contains(lowercasedName)
    }

    /// Removes the hop-by-hop fields, including every field `Connection` names.
    public static func remove(from headers: inout HTTPHeaders) {
        let named = namedByConnection(headers)
        let doomed = headers.compactMap { field in isHopByHop(field.name.lowercased(), named: named) ? field.name : nil }
        for name in Set(doomed) { headers.remove(name: name) }
    }
}

/// Our own headers: passsage's and the data plane's contract. A client's are never believed nor
/// passed on (the data plane and origins must not see what a client claims in them).
public enum InternalHeaders {
    public static let prefixes = ["x-xs3lerator-", "x-passsage-"]

    public static func isInternal(_ lowercasedName: String) -> Bool {
        prefixes.contains { lowercasedName.hasPrefix($0) }
    }

    /// Removes every internal header.
    public static func remove(from headers: inout HTTPHeaders) {
        let doomed = headers.compactMap { field in isInternal(field.name.lowercased()) ? field.name : nil }
        for name in Set(doomed) { headers.remove(name: name) }
    }
}

/// `Via` (RFC 9110 §7.6.3): each intermediary appends `<protocol> <pseudonym>`; a request whose
/// `Via` already names us has looped.
public enum Via {
    /// Appends `entry` (e.g. `1.1 passsage`), keeping earlier entries in order.
    public static func append(_ entry: String, to headers: inout HTTPHeaders) {
        let existing = headers["via"].joined(separator: ", ")
        headers.replaceOrAdd(name: "Via", value: existing.isEmpty ? entry : existing + ", " + entry)
    }

    /// Whether an entry of `Via` has the pseudonym `pseudonym` (compared without case).
    public static func names(_ pseudonym: String, in headers: HTTPHeaders) -> Bool {
        let wanted = pseudonym.lowercased()
        return headers[canonicalForm: "via"].contains { entry in
            entry.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map { $0.lowercased() == wanted } ?? false
        }
    }
}

extension String {
    public func trimmingASCIIWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
