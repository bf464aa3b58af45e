import Foundation
import NIOConcurrencyHelpers

/// Errors from the test harness itself.
public struct HarnessError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Result of a finished child process.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion on its own thread (never on the cooperative pool), killing it
/// after `timeout` seconds. `processGroup`: run it as the leader of a process group of its own
/// (`setsid`) and kill the whole group at the timeout, so that children it started (pip's build
/// backends, apt's methods) cannot keep its output open past the bound.
public func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
         timeout: Double = 120, processGroup: Bool = false) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: processGroup ? "/usr/bin/setsid" : executable)
                process.arguments = processGroup ? [executable] + arguments : arguments
                if let environment { process.environment = environment }
                let out = Pipe()
                let err = Pipe()
                process.standardOutput = out
                process.standardError = err
                process.standardInput = FileHandle.nullDevice
                try process.run()
                let pid = process.processIdentifier
                let killer = DispatchWorkItem {
                    if processGroup { kill(-pid, SIGKILL) } else if process.isRunning { forceKill(process) }
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
                let errData = NIOLockedValueBox(Data())
                let errReader = Thread { errData.withLockedValue { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
                errReader.start()
                let outData = out.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                killer.cancel()
                while errReader.isExecuting || !errReader.isFinished { usleep(1000) }
                continuation.resume(returning: ProcessResult(
                    status: process.terminationStatus,
                    stdout: String(decoding: outData, as: UTF8.self),
                    stderr: String(decoding: errData.withLockedValue { $0 }, as: UTF8.self)))
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.start()
    }
}

/// Ends a child with SIGKILL. Children of the test process inherit its blocked signal mask, in
/// which SIGTERM is blocked: a non-Swift child (moto's python, curl) would never see `terminate()`.
public func forceKill(_ process: Process) {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
public func waitUntil(timeout: Double, _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(nanoseconds: 20_000_000)
    }
    throw HarnessError("timed out after \(timeout)s waiting for \(what)")
}

/// The path of an executable product built alongside the running test binary.
public func builtExecutable(_ name: String) -> String {
    let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = testBinary.deletingLastPathComponent()
    // macOS runs tests from inside an .xctest bundle.
    while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
    return directory.appendingPathComponent(name).path
}

public func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "passsage-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Resident set size of a process in bytes, from /proc.
public func residentSetSize(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        return digits.map { $0 * 1024 }
    }
    return nil
}

/// Samples a process's RSS every 50 ms until `stop`, which returns the peak in bytes.
public final class PeakRSSSampler: Sendable {
    private let task: Task<Int, Never>

    public init(pid: Int32) {
        task = Task.detached {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, residentSetSize(pid: pid) ?? 0)
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            return peak
        }
    }

    public func stop() async -> Int {
        task.cancel()
        return await task.value
    }
}

/// Open descriptors of a process, from /proc.
public func openDescriptors(pid: Int32) -> Int? {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
}

/// A free TCP port on 127.0.0.1 that nothing listens on (bound and closed again).
public func unusedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HarnessError("cannot bind an ephemeral port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Sends raw bytes to 127.0.0.1:`port` and returns what comes back until the peer closes or
/// `timeout` seconds pass without data.
public func rawExchange(port: Int, send bytes: [UInt8], timeout: Int = 5) async throws -> String {
    try await onThread {
        let connection = try RawConnection(port: port, timeout: Double(timeout))
        _ = connection.send(bytes)   // the server may answer and close before reading everything
        return connection.readUntilQuiet(timeout: Double(timeout))
    }
}

/// Runs blocking work (socket loops, sleeps) on a thread of its own, never on the cooperative
/// pool: two cores give that pool two threads, and a test blocking them stalls every other suite.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs `body`, then `teardown` whether `body` threw or not.
public func withTeardown<T>(_ body: () async throws -> T, teardown: () async -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await teardown()
        throw error
    }
    await teardown()
    return result
}

/// The error of type `E` that `body` throws; throws if it succeeds or throws something else.
public func thrownError<E: Error>(_ type: E.Type, _ body: () async throws -> Void) async throws -> E {
    do {
        try await body()
    } catch let error as E {
        return error
    }
    throw HarnessError("expected \(E.self), but the call succeeded")
}
