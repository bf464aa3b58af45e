import Foundation
import NIOConcurrencyHelpers

/// A long-running child process of ours (passsage, xs3lerator) that logs
/// `<marker>127.0.0.1:<port>` once it listens. Its output is collected for assertions and
/// failure messages.
public final class ServiceProcess: @unchecked Sendable {
    public let process: Process
    public let port: Int
    private let log: NIOLockedValueBox<String>

    public var pid: Int32 { process.processIdentifier }
    public var output: String { log.withLockedValue { $0 } }

    private init(process: Process, port: Int, log: NIOLockedValueBox<String>) {
        self.process = process
        self.port = port
        self.log = log
    }

    /// Starts `executable` and waits until it logs `marker` followed by `127.0.0.1:<port>`.
    /// Environment variables starting with any of `clearingPrefixes` are not inherited.
    public static func launch(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                              clearingPrefixes: [String] = [], marker: String) async throws -> ServiceProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { entry in
            !clearingPrefixes.contains { entry.key.hasPrefix($0) }
        }
        environment.merge(extra) { $1 }
        process.environment = environment
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice
        let log = NIOLockedValueBox("")
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                log.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        try process.run()
        var port = 0
        let name = URL(fileURLWithPath: executable).lastPathComponent
        do {
            try await waitUntil(timeout: 30, "\(name) to listen") {
                if !process.isRunning { throw HarnessError("\(name) exited early:\n" + log.withLockedValue { $0 }) }
                let text = log.withLockedValue { $0 }
                guard let range = text.range(of: marker + "127.0.0.1:") else { return false }
                port = Int(text[range.upperBound...].prefix(while: { $0.isNumber })) ?? 0
                return port > 0
            }
        } catch {
            forceKill(process)
            throw error
        }
        return ServiceProcess(process: process, port: port, log: log)
    }

    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    public func waitForExit(timeout: Double) async -> Int32? {
        try? await waitUntil(timeout: timeout, "the process to exit") { !self.process.isRunning }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Ends the process at once.
    public func stop() {
        forceKill(process)
    }

    deinit {
        forceKill(process)
    }
}
