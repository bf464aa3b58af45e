import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import TestOrigin
import TestSupport

/// A hosts file naming the local upstreams (`pypi.test`, `registry.test`, …) 127.0.0.1, and the
/// command prefix that runs a process with it as its `/etc/hosts`, in a mount namespace of its
/// own: passsage, xs3lerator and the registry resolve the names; the machine's file is untouched.
/// Clients need no such thing: behind a proxy they resolve nothing.
struct TestHosts {
    let file: String

    init(directory: String, names: [String]) throws {
        file = directory + "/hosts"
        let lines = ["127.0.0.1 localhost"] + names.map { "127.0.0.1 \($0)" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    }

    /// `unshare -m` (root; otherwise in a user namespace of its own as well), bind-mounts the
    /// file and execs the command that follows.
    var prefix: [String] {
        ["/usr/bin/unshare", getuid() == 0 ? "-m" : "-rm", "/bin/sh", "-c",
         "mount --bind \"$0\" /etc/hosts && exec \"$@\"", file]
    }
}

/// What every real-client test starts from: a scratch directory, a test CA for the upstreams
/// (written where passsage's `--upstream-ca-file` reads it) and the hosts file naming them.
struct ClientTestBed {
    let directory: String
    let pki: TestPKI
    let originCAFile: String
    let hosts: TestHosts

    /// Runs `body` with a new bed for upstreams called `names`; the directory goes afterwards.
    static func with(names: [String], _ body: (ClientTestBed) async throws -> Void) async throws {
        let directory = try makeTemporaryDirectory()
        try await withTeardown {
            let pki = try TestPKI()
            let originCAFile = directory + "/origin-ca.pem"
            try pki.caPEM.write(toFile: originCAFile, atomically: true, encoding: .utf8)
            let hosts = try TestHosts(directory: directory, names: names)
            try await body(ClientTestBed(directory: directory, pki: pki, originCAFile: originCAFile, hosts: hosts))
        } teardown: {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// An embedded passsage over a fresh data directory, trusting the test CA and resolving
    /// through the hosts file, for `body`, which gets it and the file with its CA; stopped after.
    func withEmbeddedProxy(_ body: (PasssageProcess, String) async throws -> Void) async throws {
        let proxy = try await PasssageProcess.launch(
            ["--data-dir", directory + "/passsage-data", "--upstream-ca-file", originCAFile], prefix: hosts.prefix)
        try await withTeardown {
            let proxyCAFile = try await SplitStack.fetchCA(proxy, into: directory + "/proxy-ca.pem")
            try await body(proxy, proxyCAFile)
        } teardown: {
            proxy.stop()
        }
    }

    var dataDirectory: String { directory + "/passsage-data" }
}

/// One request as a `StaticSite` saw it.
struct SiteRequest: Sendable {
    let method: String
    let path: String
    let conditional: Bool
    let status: Int
}

/// An HTTPS origin serving a directory like a static web server (nginx, Apache) does: ETag and
/// Last-Modified from the files, conditional requests answered 304, single byte ranges, HEAD, and
/// a Cache-Control per path. A directory's `index.json` is chosen over its `index.html` for a PEP
/// 691 `Accept`, with `Vary: Accept`. Every request is recorded.
final class StaticSite: Sendable {
    let root: String
    let names: [String]
    private let cacheControl: @Sendable (String) -> String?
    private let tls: TLSConfiguration
    private let server: NIOLockedValueBox<TestHTTPServer?>
    private let log: NIOLockedValueBox<[SiteRequest]>
    let port: Int

    private init(root: String, names: [String], tls: TLSConfiguration, cacheControl: @escaping @Sendable (String) -> String?,
                 server: TestHTTPServer, log: NIOLockedValueBox<[SiteRequest]>) {
        self.root = root
        self.names = names
        self.tls = tls
        self.cacheControl = cacheControl
        self.server = NIOLockedValueBox(server)
        self.log = log
        self.port = server.port
    }

    /// Serves `root` over TLS with a certificate from `pki` for `names`.
    static func start(root: String, names: [String], pki: TestPKI,
                      cacheControl: @escaping @Sendable (String) -> String?) async throws -> StaticSite {
        let tls = try pki.serverConfiguration(names: names + ["127.0.0.1"])
        let log = NIOLockedValueBox<[SiteRequest]>([])
        let server = try await TestHTTPServer.start(tls: tls, handler: Self.handler(root: root, cacheControl: cacheControl, log: log))
        return StaticSite(root: root, names: names, tls: tls, cacheControl: cacheControl, server: server, log: log)
    }

    func url(_ path: String, host: String? = nil) -> String { "https://\(host ?? names[0]):\(port)\(path)" }

    /// Stops answering: the upstream is down.
    func stop() async {
        let running = server.withLockedValue { server in
            defer { server = nil }
            return server
        }
        await running?.stop()
    }

    var requests: [SiteRequest] { log.withLockedValue { $0 } }

    /// Requests whose path satisfies `matching`.
    func requests(_ matching: (String) -> Bool) -> [SiteRequest] { requests.filter { matching($0.path) } }

    /// The same file fetched straight from the site (no proxy), for byte comparisons.
    func directDownload(_ path: String, caFile: String, to file: String) async throws {
        let result = try await curl(["--fail", "--cacert", caFile, "--resolve", "\(names[0]):\(port):127.0.0.1",
                                     "-o", file, url(path)])
        guard result.status == 0 else { throw HarnessError("direct download of \(path) failed: \(result.stderr)") }
    }

    private static func handler(root: String, cacheControl: @escaping @Sendable (String) -> String?,
                                log: NIOLockedValueBox<[SiteRequest]>) -> TestHTTPServer.Handler {
        { request in
            let response = answer(request, root: root, cacheControl: cacheControl)
            let conditional = request.headers.contains(name: "If-None-Match") || request.headers.contains(name: "If-Modified-Since")
            if case .reply(let status, _, _) = response {
                log.withLockedValue {
                    $0.append(SiteRequest(method: request.method.rawValue, path: String(request.path), conditional: conditional,
                                          status: Int(status.code)))
                }
            }
            return response
        }
    }

    private static func answer(_ request: TestHTTPRequest, root: String,
                               cacheControl: @Sendable (String) -> String?) -> TestHTTPResponse {
        guard request.method == .GET || request.method == .HEAD else { return .text(.methodNotAllowed, "GET or HEAD\n") }
        let path = String(request.path)
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else { return .text(.badRequest, "bad path\n") }
        var file = root + path
        var contentType = Self.contentType(path)
        var vary = false
        if path.hasSuffix("/") {
            let accept = request.headers[canonicalForm: "accept"].joined(separator: ",")
            let json = file + "index.json"
            vary = FileManager.default.fileExists(atPath: json)
            if vary, accept.contains("application/vnd.pypi.simple.v1+json") {
                file = json
                contentType = "application/vnd.pypi.simple.v1+json"
            } else {
                file += "index.html"
                contentType = "text/html; charset=utf-8"
            }
        }
        guard let data = FileManager.default.contents(atPath: file),
              let attributes = try? FileManager.default.attributesOfItem(atPath: file),
              let modified = attributes[.modificationDate] as? Date else {
            return .text(.notFound, "not found\n")
        }
        let entityTag = "\"" + String(sha256Hex(data).prefix(20)) + "\""
        let lastModified = HTTPDateFormat.string(modified)
        var headers = HTTPHeaders([("Content-Type", contentType), ("ETag", entityTag), ("Last-Modified", lastModified),
                                   ("Date", HTTPDateFormat.string(Date())), ("Accept-Ranges", "bytes")])
        if vary { headers.add(name: "Vary", value: "Accept") }
        if let value = cacheControl(path) { headers.add(name: "Cache-Control", value: value) }

        if let tags = request.headers.first(name: "If-None-Match") {
            if tags == "*" || tags.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == entityTag }) {
                return .reply(status: .notModified, headers: headers, body: ByteBuffer())
            }
        } else if let since = request.headers.first(name: "If-Modified-Since").flatMap(HTTPDateFormat.date),
                  modified.timeIntervalSince1970.rounded(.down) <= since.timeIntervalSince1970 {
            return .reply(status: .notModified, headers: headers, body: ByteBuffer())
        }
        var body = ByteBuffer(bytes: data)
        var status = HTTPResponseStatus.ok
        if let range = request.headers.first(name: "Range"), let (first, last) = Self.byteRange(range, size: data.count) {
            guard first < data.count else {
                headers.replaceOrAdd(name: "Content-Range", value: "bytes */\(data.count)")
                return .reply(status: .rangeNotSatisfiable, headers: headers, body: ByteBuffer())
            }
            body = ByteBuffer(bytes: data[first...last])
            status = .partialContent
            headers.replaceOrAdd(name: "Content-Range", value: "bytes \(first)-\(last)/\(data.count)")
        }
        if request.method == .HEAD {
            headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        }
        return .reply(status: status, headers: headers, body: body)
    }

    /// A single `bytes=a-b`, `a-` or `-n` range, clamped to the size; nil for anything else
    /// (answered with the whole file, as servers may).
    static func byteRange(_ header: String, size: Int) -> (Int, Int)? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int(parts[1]), suffix > 0 else { return nil }
            return (max(0, size - suffix), size - 1)
        }
        guard let first = Int(parts[0]) else { return nil }
        let last = parts[1].isEmpty ? size - 1 : min(Int(parts[1]) ?? size - 1, size - 1)
        guard last >= first || first >= size else { return nil }
        return (first, last)
    }

    static func contentType(_ path: String) -> String {
        if path.hasSuffix(".deb") { return "application/vnd.debian.binary-package" }
        if path.hasSuffix(".gz") { return "application/gzip" }
        if path.hasSuffix(".xz") { return "application/x-xz" }
        if path.hasSuffix(".json") { return "application/json" }
        return "application/octet-stream"
    }
}

/// IMF-fixdate, as HTTP sends dates.
enum HTTPDateFormat {
    private static let formatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter
    }()
    private static let lock = NIOLock()

    static func string(_ date: Date) -> String { lock.withLock { formatter.string(from: date) } }
    static func date(_ text: String) -> Date? { lock.withLock { formatter.date(from: text) } }
}

func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

/// The environment a client runs in: the machine's, without any proxy, index, CA bundle or
/// client cache settings it carries, plus `extra`.
func clientEnvironment(_ extra: [String: String]) -> [String: String] {
    let dropped = ["PIP_", "UV_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_", "XDG_CACHE_HOME"]
    var environment = ProcessInfo.processInfo.environment.filter { entry in
        let name = entry.key.uppercased()
        return !name.hasSuffix("_PROXY") && !dropped.contains { name.hasPrefix($0) }
    }
    environment.merge(extra) { $1 }
    return environment
}

/// The sha256 of every regular file under `directory`, by relative path.
func fileDigests(under directory: String, excluding: (String) -> Bool = { _ in false }) throws -> [String: String] {
    var digests: [String: String] = [:]
    guard let walker = FileManager.default.enumerator(atPath: directory) else { return [:] }
    for case let relative as String in walker where !excluding(relative) {
        var isDirectory: ObjCBool = false
        let path = directory + "/" + relative
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let data = FileManager.default.contents(atPath: path) else { continue }
        digests[relative] = sha256Hex(data)
    }
    return digests
}

/// Where the fixture scripts are.
let fixtureScripts: String = {
    let here = String(#filePath).split(separator: "/").dropLast().joined(separator: "/")
    return "/" + here + "/Fixtures"
}()

/// Runs a fixture script (or any command) and fails with its output when it fails.
@discardableResult
func runChecked(_ command: [String], environment: [String: String]? = nil, timeout: Double = 120,
                _ what: String) async throws -> ProcessResult {
    let result = try await run(command[0], Array(command.dropFirst()), environment: environment, timeout: timeout,
                               processGroup: true)
    guard result.status == 0 else {
        throw HarnessError("\(what) failed (exit \(result.status)):\n\(result.stdout)\n\(result.stderr)")
    }
    return result
}
