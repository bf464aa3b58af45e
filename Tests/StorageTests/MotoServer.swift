import AWSCore
import Foundation
import ObjectStore
import S3ObjectStore
import StorageCore

/// A moto_server process on 127.0.0.1 with IAM signature checking on, prepared by
/// Fixtures/moto_setup.py. One per test that needs it; `stop()` ends it.
final class MotoServer: Sendable {
    let endpoint: String
    let bucket = "passsage-tests"
    let accessKey: String
    let secretKey: String
    let roleARN: String
    private let process: Process

    static var fixtures: String {
        String(#filePath).split(separator: "/").dropLast().joined(separator: "/").reduce(into: "/") { $0.append($1) } + "/Fixtures"
    }

    private init(endpoint: String, process: Process, setup: [String: String]) {
        self.endpoint = endpoint
        self.process = process
        self.accessKey = setup["accessKey"] ?? ""
        self.secretKey = setup["secretKey"] ?? ""
        self.roleARN = setup["roleArn"] ?? ""
    }

    static func start() async throws -> MotoServer {
        let port = try freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let endpoint = "http://127.0.0.1:\(port)"
        do {
            try await pollUntil(deadline: .seconds(30), "moto_server to listen on \(port)") { canConnect(port: port) }
            let setup = Process()
            setup.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            setup.arguments = ["python3", "\(fixtures)/moto_setup.py", endpoint, "passsage-tests"]
            let output = Pipe()
            setup.standardOutput = output
            try setup.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            setup.waitUntilExit()
            guard setup.terminationStatus == 0,
                  let json = try JSONSerialization.jsonObject(with: data) as? [String: String] else {
                throw TestSetupError("moto_setup.py failed (exit \(setup.terminationStatus)): \(String(decoding: data, as: UTF8.self))")
            }
            return MotoServer(endpoint: endpoint, process: process, setup: json)
        } catch {
            process.terminate()
            process.waitUntilExit()
            throw error
        }
    }

    var credentials: AWSCredentials { AWSCredentials(accessKeyID: accessKey, secretAccessKey: secretKey) }

    func makeStore(endpoint: String? = nil, multipartThreshold: Int64 = 12 << 20, retry: RetryPolicy = RetryPolicy(),
                   credentials: (any AWSCredentialProvider)? = nil) throws -> S3ObjectStore {
        let configuration = try S3Configuration(bucket: bucket, endpoint: endpoint ?? self.endpoint,
                                                multipartThreshold: multipartThreshold, partSize: 5 << 20,
                                                connectTimeout: .seconds(2), readTimeout: .seconds(10), retry: retry)
        return S3ObjectStore(configuration: configuration, credentials: credentials ?? StaticCredentialProvider(self.credentials))
    }

    /// Lets the next `count` requests through unsigned (moto checks signatures on STS's
    /// AssumeRoleWithWebIdentity, which real STS does not).
    func allowUnsignedRequests(_ count: Int) throws {
        try curl(["-X", "POST", "--data-binary", String(count), "\(endpoint)/moto-api/reset-auth"])
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 50 ms until it holds or `deadline` passes.
func pollUntil(deadline: Duration, _ what: String, _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while clock.now < end {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestSetupError("timed out waiting for \(what)")
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestSetupError("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// A blocking HTTP call through curl, for test setup only.
@discardableResult
func curl(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["curl", "-sS", "--fail"] + arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TestSetupError("curl \(arguments) failed") }
    return String(decoding: data, as: UTF8.self)
}

/// The process's resident set size in bytes (Linux).
func residentSetBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.filter(\.isNumber)
        return (Int(digits) ?? 0) * 1024
    }
    return 0
}
