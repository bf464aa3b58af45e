import Foundation
import Testing
import TestOrigin
import TestSupport

/// Debian's docker-registry (distribution) on `registry.test`, TLS from the test CA, keeping
/// its blobs in S3 on moto with redirects on: a blob GET answers 307 to a
/// presigned URL on `s3.test`. Populated with a three-layer image (Fixtures/make_oci_layout.py)
/// pushed with skopeo.
struct ContainerRegistry {
    static let host = "registry.test"
    static let storageHost = "s3.test"
    static let image = "ci/tool"
    static let tag = "v1"

    let process: ServiceProcess
    let port: Int
    let moto: MotoServer
    let motoLog: String
    /// A `--cert-dir` for skopeo that trusts the test CA (direct access).
    let originCertDirectory: String
    let hosts: TestHosts
    let policyFile: String

    var reference: String { "docker://\(Self.host):\(port)/\(Self.image):\(Self.tag)" }

    static func start(directory: String, pki: TestPKI, hosts: TestHosts) async throws -> ContainerRegistry {
        let motoLog = directory + "/moto-requests.log"
        // Path-style requests on a host name moto does not know (s3.test) name the bucket in the path.
        let moto = try await MotoServer.start(environment: ["S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true", "PYTHONUNBUFFERED": "1"],
                                             requestLog: motoLog)
        do {
            let leaf = try pki.leafPEM(names: [host, "127.0.0.1"])
            try leaf.certificate.write(toFile: directory + "/registry.crt", atomically: true, encoding: .utf8)
            try leaf.key.write(toFile: directory + "/registry.key", atomically: true, encoding: .utf8)
            let certs = directory + "/origin-certs"
            try FileManager.default.createDirectory(atPath: certs, withIntermediateDirectories: true)
            try pki.caPEM.write(toFile: certs + "/ca.crt", atomically: true, encoding: .utf8)
            let policyFile = directory + "/containers-policy.json"
            try #"{"default": [{"type": "insecureAcceptAnything"}]}"#.write(toFile: policyFile, atomically: true, encoding: .utf8)

            let port = try unusedPort()
            let motoPort = moto.endpoint.split(separator: ":").last.map(String.init) ?? ""
            let config = """
                version: 0.1
                log: {level: info, accesslog: {disabled: false}}
                storage:
                  s3:
                    region: us-east-1
                    regionendpoint: "http://\(storageHost):\(motoPort)"
                    bucket: \(moto.bucket)
                    accesskey: \(moto.accessKey)
                    secretkey: \(moto.secretKey)
                    secure: false
                    v4auth: true
                    rootdirectory: /
                  redirect: {disable: false}
                  cache: {blobdescriptor: inmemory}
                http:
                  addr: 127.0.0.1:\(port)
                  tls: {certificate: \(directory)/registry.crt, key: \(directory)/registry.key}
                """
            try config.write(toFile: directory + "/registry.yml", atomically: true, encoding: .utf8)
            let command = hosts.prefix + ["/usr/bin/docker-registry", "serve", directory + "/registry.yml"]
            let process = try await ServiceProcess.launch(
                command[0], Array(command.dropFirst()),
                clearingPrefixes: ["AWS_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"],
                marker: "listening on ")
            let registry = ContainerRegistry(process: process, port: port, moto: moto, motoLog: motoLog,
                                             originCertDirectory: certs, hosts: hosts, policyFile: policyFile)
            do {
                let layout = directory + "/image"
                try await runChecked(["/usr/bin/env", "python3", fixtureScripts + "/make_oci_layout.py", layout, tag],
                                     "make_oci_layout.py")
                // moto's signature check rejects what aws-sdk-go (the registry's S3 client) signs for
                // a query value with a slash in it (ListObjects `prefix=docker/registry/…`: 403
                // SignatureDoesNotMatch), so the registry's storage runs with moto's checks off.
                // This S3 is the registry's, not ours: passsage only caches the presigned GETs it
                // hands out.
                try await moto.allowUnsignedRequests(100_000_000)
                try await runChecked(hosts.prefix + ["/usr/bin/skopeo", "--policy", policyFile, "copy", "--dest-cert-dir", certs,
                                                     "oci:\(layout):\(tag)", registry.reference],
                                     environment: clientEnvironment([:]), "pushing the image")
            } catch {
                await registry.stop()
                throw HarnessError("\(error)\n\(registry.diagnostics)")
            }
            return registry
        } catch {
            await moto.stop()
            throw error
        }
    }

    /// Presigned blob GETs moto has answered: requests that carry a query signature are the
    /// clients' (the registry signs its own with a header).
    func presignedBlobGets() throws -> [String] {
        let log = (try? String(contentsOfFile: motoLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init)
            .filter { $0.contains("\"GET /\(moto.bucket)/docker/registry/v2/blobs/") && $0.contains("X-Amz-Signature=") }
    }

    /// `skopeo copy` of the tag into a new OCI layout; nil `proxy` copies straight from the
    /// registry (resolving its name with the test hosts file).
    func pull(into layout: String, proxyURL: String? = nil, certDirectory: String) async throws -> ProcessResult {
        let copy = ["/usr/bin/skopeo", "--policy", policyFile, "copy", "--retry-times", "0", "--src-cert-dir", certDirectory,
                    reference, "oci:\(layout):\(Self.tag)"]
        guard let proxyURL else {
            return try await run(hosts.prefix[0], Array((hosts.prefix + copy).dropFirst()), environment: clientEnvironment([:]),
                                 timeout: 180, processGroup: true)
        }
        let environment = clientEnvironment(["HTTPS_PROXY": proxyURL, "HTTP_PROXY": proxyURL, "NO_PROXY": ""])
        return try await run(copy[0], Array(copy.dropFirst()), environment: environment, timeout: 180, processGroup: true)
    }

    /// The ends of the registry's and moto's logs, for failure messages.
    var diagnostics: String {
        let moto = (try? String(contentsOfFile: motoLog, encoding: .utf8)) ?? ""
        return "registry:\n\(process.output.suffix(4000))\nmoto:\n\(moto.suffix(3000))"
    }

    func stop() async {
        process.stop()
        _ = await process.waitForExit(timeout: 10)
    }
}

@Suite("Real clients: a container registry", .serialized)
struct RegistryClientTests {
    /// The `Location` of every stored blob redirect, by URL, read from passsage's SQLite metadata.
    static func storedRedirects(dataDirectory: String) async throws -> [String: String] {
        let script = """
            import json, sqlite3, sys
            db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            for (fields,) in db.execute("select fields from documents"):
                doc = json.loads(fields)
                if "/blobs/sha256:" in doc.get("url", "") and doc.get("status_code") == 307:
                    print(doc["url"] + " " + doc["headers"].get("location", ""))
            """
        let result = try await runChecked(["/usr/bin/env", "python3", "-c", script, dataDirectory + "/metadata.sqlite"],
                                          "reading the stored redirects")
        var redirects: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { redirects[parts[0]] = parts[1] }
        }
        return redirects
    }

    @Test("skopeo through passsage: blobs from S3 once, shared across presigned URLs, the copy with the registry down")
    func skopeoEmbedded() async throws {
        try await ClientTestBed.with(names: [ContainerRegistry.host, ContainerRegistry.storageHost]) { bed in
            let registry = try await ContainerRegistry.start(directory: bed.directory, pki: bed.pki, hosts: bed.hosts)
            try await withTeardown {
                try await bed.withEmbeddedProxy { proxy, proxyCAFile in
                    // skopeo trusts a directory of CA files.
                    let proxyCerts = bed.directory + "/proxy-certs"
                    try FileManager.default.createDirectory(atPath: proxyCerts, withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: proxyCAFile, toPath: proxyCerts + "/ca.crt")

                    let direct = bed.directory + "/pull-direct"
                    let directPull = try await registry.pull(into: direct, certDirectory: registry.originCertDirectory)
                    try #require(directPull.status == 0, "direct pull: \(directPull.stderr)\n\(registry.diagnostics)")
                    let directBlobs = try fileDigests(under: direct + "/blobs")
                    #expect(directBlobs.count == 5, "a manifest, a config and three layers: \(directBlobs.keys.sorted())")
                    let afterDirect = try registry.presignedBlobGets().count
                    #expect(afterDirect >= 4, "the direct pull followed the redirects to S3")

                    let first = bed.directory + "/pull-first"
                    let firstPull = try await registry.pull(into: first, proxyURL: proxy.proxyURL, certDirectory: proxyCerts)
                    try #require(firstPull.status == 0, "first pull through passsage: \(firstPull.stderr)\n\(proxy.output.suffix(3000))")
                    #expect(try fileDigests(under: first + "/blobs") == directBlobs, "byte-identical to the direct pull")
                    let afterFirst = try registry.presignedBlobGets().count
                    #expect(afterFirst - afterDirect == 4, "config and layers fetched from S3 once each")
                    let firstRedirects = try await Self.storedRedirects(dataDirectory: bed.dataDirectory)
                    #expect(firstRedirects.count == 4, "each blob's redirect is kept as a fallback: \(firstRedirects)")

                    // The presigned URLs are signed per second: the next pull gets new ones.
                    try await Task.sleep(for: .seconds(1.1))
                    let second = bed.directory + "/pull-second"
                    let secondPull = try await registry.pull(into: second, proxyURL: proxy.proxyURL, certDirectory: proxyCerts)
                    try #require(secondPull.status == 0, "second pull through passsage: \(secondPull.stderr)")
                    #expect(try fileDigests(under: second + "/blobs") == directBlobs)
                    #expect(try registry.presignedBlobGets().count == afterFirst, "no blob fetched from S3 again")
                    let secondRedirects = try await Self.storedRedirects(dataDirectory: bed.dataDirectory)
                    #expect(Set(secondRedirects.keys) == Set(firstRedirects.keys))
                    for (blob, location) in secondRedirects {
                        #expect(location != firstRedirects[blob], "a new presigned URL for \(blob), served from the same entry")
                    }

                    // The registry is down; its storage is not, but passsage needs neither.
                    await registry.stop()
                    let third = bed.directory + "/pull-registry-down"
                    let thirdPull = try await registry.pull(into: third, proxyURL: proxy.proxyURL, certDirectory: proxyCerts)
                    #expect(thirdPull.status == 0, "pull with the registry down: \(thirdPull.stderr)")
                    #expect(try fileDigests(under: third + "/blobs") == directBlobs)
                    #expect(try registry.presignedBlobGets().count == afterFirst)
                }
            } teardown: {
                await registry.stop()
                await registry.moto.stop()
            }
        }
    }
}
