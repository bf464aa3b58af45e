import Foundation
import Testing
import TestOrigin
import TestSupport

/// A signed Debian archive on `deb.test` (Fixtures/make_apt_repo.sh: dpkg-deb, apt-ftparchive,
/// by-hash), served as a mirror serves it: Last-Modified and ETag, no Cache-Control, its indexes
/// last synced ten hours ago (a heuristic lifetime of an hour, if a cache used one).
struct DebianArchive {
    static let host = "deb.test"
    static let packages = ["passsage-hello", "passsage-tool"]

    let site: StaticSite
    let root: String
    let keyring: String

    static func start(directory: String, pki: TestPKI) async throws -> DebianArchive {
        let root = directory + "/archive"
        let keyring = try await publish(root: root, version: "1.0", age: 36_000)
        let site = try await StaticSite.start(root: root, names: [host], pki: pki) { _ in nil }
        return DebianArchive(site: site, root: root, keyring: keyring)
    }

    /// Publishes `version` of both packages: new indexes, InRelease signed again.
    @discardableResult
    static func publish(root: String, version: String, age: Int) async throws -> String {
        let result = try await runChecked([fixtureScripts + "/make_apt_repo.sh", root, version, String(age)], "make_apt_repo.sh")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func republish(_ version: String) async throws {
        try await Self.publish(root: root, version: version, age: 0)
    }

    func debPath(_ package: String, _ version: String) -> String { "/pool/main/\(package)_\(version)_all.deb" }
}

/// apt-get with a private `Dir` tree (lists, cache, status, sources), so the machine's apt is
/// untouched, through passsage with `Acquire::https::Proxy` and passsage's CA as `CaInfo`.
struct AptClient {
    let root: String
    let options: [String]

    init(name: String, directory: String, archive: DebianArchive, proxyURL: String, proxyCAFile: String,
         byHash: Bool = true) throws {
        root = directory + "/apt-" + name
        let manager = FileManager.default
        for sub in ["etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "lists/partial", "cache/archives/partial", "downloads"] {
            try manager.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        _ = manager.createFile(atPath: root + "/status", contents: Data())
        let source = "deb [signed-by=\(archive.keyring)] \(archive.site.url("/")) stable main\n"
        try source.write(toFile: root + "/etc/sources.list", atomically: true, encoding: .utf8)
        options = [
            "Dir::Etc=\(root)/etc", "Dir::State=\(root)", "Dir::State::Lists=\(root)/lists", "Dir::State::status=\(root)/status",
            "Dir::Cache=\(root)/cache", "Debug::NoLocking=1", "APT::Architecture=amd64", "APT::Architectures::=amd64",
            "APT::Sandbox::User=root", "Acquire::Retries=0", "Acquire::Languages=none",
            "Acquire::https::Proxy=\(proxyURL)", "Acquire::http::Proxy=\(proxyURL)", "Acquire::https::CaInfo=\(proxyCAFile)",
            "Acquire::By-Hash=\(byHash ? "yes" : "no")",
        ].flatMap { ["-o", $0] }
    }

    var downloads: String { root + "/downloads" }

    func apt(_ tool: String, _ arguments: [String], in directory: String? = nil) async throws -> ProcessResult {
        let command = [tool] + options + arguments
        // apt-get download writes into the working directory.
        let script = "cd \"$0\" && exec \"$@\""
        return try await run("/bin/sh", ["-c", script, directory ?? root] + command, environment: clientEnvironment([:]), timeout: 120,
                             processGroup: true)
    }

    /// `apt-get update`; expects success with no failed fetch and no hash mismatch.
    func update(_ what: String) async throws {
        let result = try await apt("apt-get", ["update"])
        let output = result.stdout + result.stderr
        #expect(result.status == 0, "\(what): apt-get update failed:\n\(output)")
        #expect(!output.contains("Hash Sum mismatch") && !output.contains("Err:") && !output.contains("W: "),
                "\(what): apt-get update:\n\(output)")
    }

    /// The version apt would install of `package`.
    func candidate(_ package: String) async throws -> String? {
        let output = try await apt("apt-cache", ["policy", package]).stdout
        return output.split(separator: "\n").first { $0.contains("Candidate:") }
            .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) }
    }

    /// `apt-get download` of `packages` into a clean downloads directory; their digests by file name.
    func download(_ packages: [String], _ what: String) async throws -> [String: String] {
        try? FileManager.default.removeItem(atPath: downloads)
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        let result = try await apt("apt-get", ["download"] + packages, in: downloads)
        #expect(result.status == 0, "\(what): apt-get download failed:\n\(result.stdout)\n\(result.stderr)")
        return try fileDigests(under: downloads)
    }
}

@Suite("Real clients: apt", .serialized)
struct AptClientTests {
    @Test("apt through passsage: update and download, a republished archive with no hash mismatch, the mirror down")
    func aptEmbedded() async throws {
        try await ClientTestBed.with(names: [DebianArchive.host]) { bed in
            let archive = try await DebianArchive.start(directory: bed.directory, pki: bed.pki)
            try await withTeardown {
                try await bed.withEmbeddedProxy { proxy, proxyCAFile in
                    func client(_ name: String, byHash: Bool = true) throws -> AptClient {
                        try AptClient(name: name, directory: bed.directory, archive: archive, proxyURL: proxy.proxyURL,
                                      proxyCAFile: proxyCAFile, byHash: byHash)
                    }
                    func direct(_ version: String) async throws -> [String: String] {
                        let into = bed.directory + "/direct-" + version
                        try FileManager.default.createDirectory(atPath: into, withIntermediateDirectories: true)
                        for package in DebianArchive.packages {
                            let name = "\(package)_\(version)_all.deb"
                            try await archive.site.directDownload(archive.debPath(package, version), caFile: bed.originCAFile,
                                                                  to: into + "/" + name)
                        }
                        return try fileDigests(under: into)
                    }

                    // Version 1.0: a client that uses by-hash (apt's default here) and one that does not.
                    let byHash = try client("by-hash")
                    let byName = try client("by-name", byHash: false)
                    try await byHash.update("first update")
                    try await byName.update("first update, indexes by name")
                    #expect(try await byHash.candidate("passsage-hello") == "1.0")
                    let directOne = try await direct("1.0")
                    #expect(try await byHash.download(DebianArchive.packages, "download 1.0") == directOne,
                            "byte-identical to direct")

                    // The archive is republished. Both clients see 1.1 at once, and neither gets the old
                    // Packages with the new InRelease (Hash Sum mismatch).
                    try await archive.republish("1.1")
                    try await byHash.update("update after republishing")
                    try await byName.update("update after republishing, indexes by name")
                    #expect(try await byHash.candidate("passsage-hello") == "1.1")
                    #expect(try await byName.candidate("passsage-hello") == "1.1")
                    let directTwo = try await direct("1.1")
                    #expect(try await byHash.download(DebianArchive.packages, "download 1.1") == directTwo)
                    let pool = archive.site.requests { $0.hasPrefix("/pool/") }
                    #expect(pool.filter { $0.path == archive.debPath("passsage-hello", "1.0") }.count == 2,
                            "the 1.0 package: once direct, once through passsage")

                    // The mirror is down: updates and downloads of the cached version still work, also
                    // for a new client with empty lists.
                    await archive.site.stop()
                    try await byHash.update("update with the mirror down")
                    #expect(try await byHash.candidate("passsage-hello") == "1.1")
                    #expect(try await byHash.download(DebianArchive.packages, "download with the mirror down") == directTwo)
                    let newcomer = try client("newcomer")
                    try await newcomer.update("a new client's update with the mirror down")
                    #expect(try await newcomer.candidate("passsage-tool") == "1.1")
                    #expect(try await newcomer.download(DebianArchive.packages, "a new client's download with the mirror down")
                            == directTwo)
                }
            } teardown: {
                await archive.site.stop()
            }
        }
    }
}
