import Foundation
import TestSupport
import NIOConcurrencyHelpers

/// A `passsage` child process on 127.0.0.1 with an ephemeral port and its own CA directory.
final class PasssageProcess: Sendable {
    let service: ServiceProcess
    let caDirectory: String

    var process: Process { service.process }
    var port: Int { service.port }
    var pid: Int32 { service.pid }
    var proxyURL: String { "http://127.0.0.1:\(port)" }
    var output: String { service.output }

    /// The health listener's port, from the start-up log.
    var healthPort: Int? {
        guard let range = output.range(of: "health listening on 127.0.0.1:") else { return nil }
        return Int(output[range.upperBound...].prefix(while: { $0.isNumber }))
    }

    static var executable: String {
        ProcessInfo.processInfo.environment["PASSSAGE_BIN"] ?? builtExecutable("passsage")
    }

    private init(service: ServiceProcess, caDirectory: String) {
        self.service = service
        self.caDirectory = caDirectory
    }

    /// The deny list the tests run with: our origins listen on loopback, which the default denies.
    /// Link-local (the metadata endpoint) stays denied, and so do passsage's own listeners.
    static let testDenyList = "169.254.0.0/16,fe80::/10"

    /// Starts passsage with `arguments` added to a test baseline and waits for its listener.
    /// `denyUpstream` nil leaves passsage's default deny list in force.
    /// `descriptorLimit` runs it under `ulimit -n`; `prefix` runs it through a command (`TestHosts`).
    static func launch(_ arguments: [String] = [], environment extra: [String: String] = [:],
                       denyUpstream: String? = testDenyList, descriptorLimit: Int? = nil,
                       prefix: [String] = []) async throws -> PasssageProcess {
        let caDirectory = try makeTemporaryDirectory() + "/ca"
        let deny = denyUpstream.map { ["--deny-upstream", $0] } ?? []
        // The proxy's mechanics are tested without the cache unless a test asks for it with
        // --data-dir (never the real ~/.passsage).
        let cache = arguments.contains("--data-dir") || arguments.contains("--no-cache") ? [] : ["--no-cache"]
        var command = [executable, "--bind", "127.0.0.1", "--port", "0", "--health-port", "0", "--ca-dir", caDirectory]
            + deny + cache + arguments
        if let descriptorLimit {
            command = ["/bin/sh", "-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\""] + command
        }
        command = prefix + command
        let service = try await ServiceProcess.launch(
            command[0], Array(command.dropFirst()),
            environment: extra, clearingPrefixes: ["PASSSAGE_"], marker: "passsage proxy listening on ")
        return PasssageProcess(service: service, caDirectory: caDirectory)
    }

    func signal(_ signal: Int32) {
        service.signal(signal)
    }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    func waitForExit(timeout: Double) async throws -> Int32? {
        await service.waitForExit(timeout: timeout)
    }

    func stop() {
        service.stop()
    }
}

/// curl with the options every test wants.
func curl(_ arguments: [String], timeout: Double = 120) async throws -> ProcessResult {
    try await run("/usr/bin/env", ["curl", "-sS", "--max-time", String(Int(timeout))] + arguments, timeout: timeout + 10)
}
