import Foundation
import TestSupport
import NIOConcurrencyHelpers

/// A `passsage` child process on 127.0.0.1 with an ephemeral port and its own CA directory.
final class PasssageProcess: @unchecked Sendable {
    let process: Process
    let port: Int
    let caDirectory: String
    private let log: NIOLockedValueBox<String>

    var pid: Int32 { process.processIdentifier }
    var proxyURL: String { "http://127.0.0.1:\(port)" }
    var output: String { log.withLockedValue { $0 } }

    static var executable: String {
        ProcessInfo.processInfo.environment["PASSSAGE_BIN"] ?? builtExecutable("passsage")
    }

    private init(process: Process, port: Int, caDirectory: String, log: NIOLockedValueBox<String>) {
        self.process = process
        self.port = port
        self.caDirectory = caDirectory
        self.log = log
    }

    /// Starts passsage with `arguments` added to a test baseline and waits for its listener.
    static func launch(_ arguments: [String] = [], environment extra: [String: String] = [:]) async throws -> PasssageProcess {
        let caDirectory = try makeTemporaryDirectory() + "/ca"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--bind", "127.0.0.1", "--port", "0", "--health-port", "0", "--ca-dir", caDirectory] + arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PASSSAGE_") }
        environment.merge(extra) { $1 }
        process.environment = environment
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = errorPipe
        process.standardInput = FileHandle.nullDevice
        let log = NIOLockedValueBox("")
        errorPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                log.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        try process.run()
        var port = 0
        try await waitUntil(timeout: 30, "passsage to listen") {
            if !process.isRunning { throw HarnessError("passsage exited early:\n" + log.withLockedValue { $0 }) }
            let text = log.withLockedValue { $0 }
            guard let range = text.range(of: "passsage proxy listening on 127.0.0.1:") else { return false }
            let digits = text[range.upperBound...].prefix(while: { $0.isNumber })
            port = Int(digits) ?? 0
            return port > 0
        }
        return PasssageProcess(process: process, port: port, caDirectory: caDirectory, log: log)
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    func waitForExit(timeout: Double) async throws -> Int32? {
        try? await waitUntil(timeout: timeout, "passsage to exit") { !self.process.isRunning }
        return process.isRunning ? nil : process.terminationStatus
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit {
        stop()
    }
}

/// curl with the options every test wants.
func curl(_ arguments: [String], timeout: Double = 120) async throws -> ProcessResult {
    try await run("/usr/bin/env", ["curl", "-sS", "--max-time", String(Int(timeout))] + arguments, timeout: timeout + 10)
}
