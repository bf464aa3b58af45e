import FakeElasticsearch
import Foundation
import Testing
import TestOrigin
import TestSupport

/// A PEP 503/691 index on `pypi.test` (built by Fixtures/make_pypi.py: two wheels and an sdist),
/// its pages short-lived, its files immutable, as PyPI serves them.
struct PackageIndex {
    static let host = "pypi.test"
    static let projects = ["passsage-alpha", "passsage-beta", "passsage-gamma"]
    static let files = ["passsage_alpha-1.0-py3-none-any.whl", "passsage_beta-2.0-py3-none-any.whl", "passsage_gamma-0.1.tar.gz"]
    /// What an install puts in its target, by the three projects.
    static let modules = ["passsage_alpha/__init__.py", "passsage_beta/__init__.py", "passsage_gamma.py"]
    static let pageLifetime = 2

    let site: StaticSite
    let originCAFile: String

    var indexURL: String { site.url("/simple/") }

    static func start(directory: String, pki: TestPKI, originCAFile: String) async throws -> PackageIndex {
        let root = directory + "/pypi"
        try await runChecked(["/usr/bin/env", "python3", fixtureScripts + "/make_pypi.py", root], "make_pypi.py")
        let site = try await StaticSite.start(root: root, names: [host], pki: pki) { path in
            path.hasPrefix("/simple/") ? "max-age=\(pageLifetime)" : "max-age=31536000, immutable"
        }
        return PackageIndex(site: site, originCAFile: originCAFile)
    }

    func fileRequests(since baseline: Int) -> [SiteRequest] {
        site.requests.dropFirst(baseline).filter { $0.path.hasPrefix("/packages/") }
    }

    func pageRequests(since baseline: Int) -> [SiteRequest] {
        site.requests.dropFirst(baseline).filter { $0.path.hasPrefix("/simple/") }
    }
}

/// pip and uv through one passsage (embedded or split), as a CI job runs them: no client cache,
/// `HTTPS_PROXY`, and passsage's CA as `PIP_CERT` / `SSL_CERT_FILE`.
struct PythonClients {
    let index: PackageIndex
    let proxyURL: String
    let proxyCAFile: String
    let directory: String

    private var proxyEnvironment: [String: String] {
        ["HTTPS_PROXY": proxyURL, "HTTP_PROXY": proxyURL, "https_proxy": proxyURL, "http_proxy": proxyURL]
    }

    func pip(_ arguments: [String]) async throws -> ProcessResult {
        let environment = clientEnvironment(proxyEnvironment.merging([
            "PIP_CERT": proxyCAFile, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_DEFAULT_TIMEOUT": "60",
        ]) { $1 })
        return try await run("/usr/bin/env", ["python3", "-m", "pip"] + arguments, environment: environment, timeout: 240,
                             processGroup: true)
    }

    func uv(_ arguments: [String]) async throws -> ProcessResult {
        let cache = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let environment = clientEnvironment(proxyEnvironment.merging([
            "SSL_CERT_FILE": proxyCAFile, "UV_CACHE_DIR": cache, "UV_NO_PROGRESS": "1", "UV_HTTP_TIMEOUT": "60",
        ]) { $1 })
        return try await run("/usr/bin/env", ["uv"] + arguments, environment: environment, timeout: 240, processGroup: true)
    }

    /// `pip install --no-deps --target` of the three projects into a new directory; fails the
    /// test with pip's output when pip fails.
    func pipInstall(_ name: String) async throws -> String {
        let target = directory + "/" + name
        let result = try await pip(["install", "--no-deps", "--no-cache-dir", "--target", target, "--index-url", index.indexURL]
                                   + PackageIndex.projects)
        #expect(result.status == 0, "pip install \(name): \(result.stdout)\n\(result.stderr)")
        return target
    }

    func uvInstall(_ name: String) async throws -> String {
        let target = directory + "/" + name
        let result = try await uv(["pip", "install", "--no-deps", "--target", target, "--index-url", index.indexURL]
                                  + PackageIndex.projects)
        #expect(result.status == 0, "uv pip install \(name): \(result.stdout)\n\(result.stderr)")
        return target
    }

    /// The modules an install put in `target`, by path.
    static func modules(in target: String) throws -> [String: String] {
        try fileDigests(under: target).filter { PackageIndex.modules.contains($0.key) }
    }

    /// The same modules as the directly downloaded wheels and sdist hold them.
    static func modules(inArchivesUnder directory: String) async throws -> [String: String] {
        let script = """
            import glob, hashlib, sys, tarfile, zipfile
            wanted = set(sys.argv[2:])
            for path in sorted(glob.glob(sys.argv[1] + "/*")):
                if path.endswith(".whl"):
                    with zipfile.ZipFile(path) as archive:
                        for name in archive.namelist():
                            if name in wanted:
                                print(name, hashlib.sha256(archive.read(name)).hexdigest())
                else:
                    with tarfile.open(path) as archive:
                        for member in archive.getmembers():
                            name = member.name.split("/", 1)[-1]
                            if name in wanted:
                                print(name, hashlib.sha256(archive.extractfile(member).read()).hexdigest())
            """
        let result = try await runChecked(["/usr/bin/env", "python3", "-c", script, directory] + PackageIndex.modules,
                                          "reading the archives")
        var digests: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ").map(String.init)
            if parts.count == 2 { digests[parts[0]] = parts[1] }
        }
        return digests
    }

    /// The whole scenario of issue 14's first criterion: a first install of each client, a second
    /// one that asks the origin for no file and revalidates the stale pages, a third with the
    /// origin stopped, and every download byte-identical to a direct one.
    func runScenario() async throws {
        let site = index.site
        // Direct downloads, for the byte comparison (the origin's log counts them: a baseline).
        let direct = directory + "/direct"
        try FileManager.default.createDirectory(atPath: direct, withIntermediateDirectories: true)
        for file in PackageIndex.files {
            try await site.directDownload("/packages/" + file, caFile: index.originCAFile, to: direct + "/" + file)
        }
        let baseline = site.requests.count

        let first = try await pipInstall("pip-first")
        let expected = try Self.modules(in: first)
        #expect(expected.count == PackageIndex.modules.count, "pip installed \(expected.keys.sorted())")
        #expect(try await Self.modules(inArchivesUnder: direct) == expected, "what pip installed is what the origin serves")
        let firstFiles = index.fileRequests(since: baseline)
        #expect(firstFiles.count == PackageIndex.files.count, "one download per file: \(firstFiles.map(\.path))")
        let afterFirst = site.requests.count

        let uvFirst = try await uvInstall("uv-first")
        #expect(try Self.modules(in: uvFirst) == expected, "uv installed the same files")
        #expect(index.fileRequests(since: afterFirst).isEmpty, "uv's files came from the cache: \(index.fileRequests(since: afterFirst).map(\.path))")

        // The pages go stale; a second install revalidates them and fetches no file.
        try await Task.sleep(for: .seconds(PackageIndex.pageLifetime + 1))
        let beforeSecond = site.requests.count
        let second = try await pipInstall("pip-second")
        #expect(try Self.modules(in: second) == expected)
        #expect(index.fileRequests(since: beforeSecond).isEmpty, "no file asked again: \(index.fileRequests(since: beforeSecond).map(\.path))")
        let pages = index.pageRequests(since: beforeSecond)
        for project in PackageIndex.projects {
            let revalidations = pages.filter { $0.path == "/simple/\(project)/" && $0.conditional && $0.status == 304 }
            #expect(!revalidations.isEmpty, "\(project)'s stale page was revalidated: \(pages)")
        }

        // The origin is down: installs still work, from the cache.
        await site.stop()
        let third = try await pipInstall("pip-origin-down")
        #expect(try Self.modules(in: third) == expected)
        let uvThird = try await uvInstall("uv-origin-down")
        #expect(try Self.modules(in: uvThird) == expected)

        // What pip downloads through passsage is what the origin serves.
        let downloads = directory + "/pip-download"
        let download = try await pip(["download", "--no-deps", "--no-cache-dir", "-d", downloads, "--index-url", index.indexURL]
                                     + PackageIndex.projects)
        #expect(download.status == 0, "pip download: \(download.stdout)\n\(download.stderr)")
        #expect(try fileDigests(under: downloads) == fileDigests(under: direct), "byte-identical to direct downloads")
    }
}

@Suite("Real clients: pip and uv", .serialized)
struct PipClientTests {
    @Test("pip and uv through passsage: cached files, revalidated pages, installs with the origin down")
    func pipAndUvEmbedded() async throws {
        try await ClientTestBed.with(names: [PackageIndex.host]) { bed in
            let index = try await PackageIndex.start(directory: bed.directory, pki: bed.pki, originCAFile: bed.originCAFile)
            try await withTeardown {
                try await bed.withEmbeddedProxy { proxy, proxyCAFile in
                    try await PythonClients(index: index, proxyURL: proxy.proxyURL, proxyCAFile: proxyCAFile,
                                            directory: bed.directory).runScenario()
                }
            } teardown: {
                await index.site.stop()
            }
        }
    }

    @Test("split mode: pip and uv through passsage and xs3lerator as two processes, S3 on moto, the Elasticsearch fake")
    func pipAndUvSplit() async throws {
        // xs3lerator goes upstream too: it resolves the index's name as passsage does.
        try await ClientTestBed.with(names: [PackageIndex.host]) { bed in
            let index = try await PackageIndex.start(directory: bed.directory, pki: bed.pki, originCAFile: bed.originCAFile)
            var started: (MotoServer?, FakeElasticsearch?, ServiceProcess?, PasssageProcess?) = (nil, nil, nil, nil)
            try await withTeardown {
                let moto = try await MotoServer.start()
                started.0 = moto
                let elastic = try await FakeElasticsearch.start()
                started.1 = elastic
                let xs3 = try await SplitStack.launchXs3(port: 0, directory: bed.directory, moto: moto, elastic: elastic,
                                                        originCAFile: bed.originCAFile, prefix: bed.hosts.prefix)
                started.2 = xs3
                let proxy = try await SplitStack.launchProxy(xs3Port: xs3.port, directory: bed.directory, elastic: elastic,
                                                             originCAFile: bed.originCAFile, prefix: bed.hosts.prefix)
                started.3 = proxy
                let proxyCAFile = try await SplitStack.fetchCA(proxy, into: bed.directory + "/proxy-ca.pem")
                try await PythonClients(index: index, proxyURL: proxy.proxyURL, proxyCAFile: proxyCAFile,
                                        directory: bed.directory).runScenario()
                #expect(elastic.documentCount >= PackageIndex.files.count, "the metadata went to Elasticsearch")
            } teardown: {
                started.3?.stop()
                started.2?.stop()
                await started.1?.stop()
                await started.0?.stop()
                await index.site.stop()
            }
        }
    }
}
