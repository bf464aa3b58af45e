import Foundation
import TestOrigin
import TestSupport

/// Our test origin in this process and an `xs3lerator` child process in front of it, with its
/// own temporary directory, both on 127.0.0.1.
final class Xs3Fixture: Sendable {
    let origin: TestOriginServer
    let xs3: ServiceProcess
    let temporaryDirectory: String

    var base: String { "http://127.0.0.1:\(xs3.port)" }
    var originBase: String { "http://127.0.0.1:\(origin.port)" }

    /// The xs3lerator URL that downloads `path` (with query) from the origin.
    func url(_ path: String) -> String { "\(base)/\(originBase)\(path)" }

    private init(origin: TestOriginServer, xs3: ServiceProcess, temporaryDirectory: String) {
        self.origin = origin
        self.xs3 = xs3
        self.temporaryDirectory = temporaryDirectory
    }

    static func start(_ arguments: [String] = []) async throws -> Xs3Fixture {
        let origin = try await TestOriginServer.start()
        let temporaryDirectory = try makeTemporaryDirectory()
        do {
            let xs3 = try await ServiceProcess.launch(
                builtExecutable("xs3lerator"),
                ["--bind-ip", "127.0.0.1", "--port", "0", "--temp-dir", temporaryDirectory, "--passthrough"] + arguments,
                clearingPrefixes: ["XS3_"], marker: "xs3lerator listening on ")
            return Xs3Fixture(origin: origin, xs3: xs3, temporaryDirectory: temporaryDirectory)
        } catch {
            await origin.stop()
            throw error
        }
    }

    func stop() async {
        xs3.stop()
        await origin.stop()
        try? FileManager.default.removeItem(atPath: temporaryDirectory)
    }

    /// Runs `body` with a fresh fixture, stopped afterwards.
    static func with(_ arguments: [String] = [], _ body: (Xs3Fixture) async throws -> Void) async throws {
        let fixture = try await start(arguments)
        try await withTeardown({ try await body(fixture) }) { await fixture.stop() }
    }

    /// Open descriptors of xs3lerator that point into its temporary directory: its chunk files.
    var openChunkFiles: Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(xs3.pid)/fd")) ?? []
        return fds.filter { fd in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(xs3.pid)/fd/\(fd)")) ?? ""
            return target.hasPrefix(temporaryDirectory)
        }.count
    }

    /// Peak resident memory of xs3lerator so far (VmHWM).
    var peakResidentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(xs3.pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }
}

/// curl with the options every test wants; `-sS`, a time limit, output discarded unless asked.
func curl(_ arguments: [String], timeout: Double = 120) async throws -> ProcessResult {
    try await run("/usr/bin/env", ["curl", "-sS", "--max-time", String(Int(timeout))] + arguments, timeout: timeout + 10)
}

/// Downloads `url` and returns the HTTP status, size and SHA-256 of the body (curl into sha256sum).
func download(_ url: String, headers: [String] = [], extraCurl: [String] = [],
              timeout: Double = 300) async throws -> (status: Int, size: Int64, sha256: String) {
    let headerArguments = (headers.flatMap { ["-H", $0] } + extraCurl).map { "'\($0)'" }.joined(separator: " ")
    let script = "set -o pipefail; curl -sS --max-time \(Int(timeout)) \(headerArguments) -w '%{http_code} %{size_download}\\n' -o >(sha256sum >&2) '\(url)'"
    let result = try await run("/bin/bash", ["-c", script], timeout: timeout + 10)
    guard result.status == 0 else { throw HarnessError("download of \(url) failed: \(result.stderr)") }
    let fields = result.stdout.split(separator: " ")
    let digest = String(result.stderr.prefix(64))
    return (Int(fields.first ?? "") ?? 0, Int64(fields.dropFirst().first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1, digest)
}
