import AWSCore
import Foundation
import ObjectStore
import S3ObjectStore
import StorageCore
import TestSupport

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
        let port = try unusedPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let endpoint = "http://127.0.0.1:\(port)"
        do {
            try await waitUntil(timeout: 30, "moto_server to listen on \(port)") { canConnect(port: port) }
            let setup = try await run("/usr/bin/env", ["python3", "\(fixtures)/moto_setup.py", endpoint, "passsage-tests"], timeout: 60)
            guard setup.status == 0,
                  let json = try JSONSerialization.jsonObject(with: Data(setup.stdout.utf8)) as? [String: String] else {
                throw HarnessError("moto_setup.py failed (exit \(setup.status)): \(setup.stderr)")
            }
            return MotoServer(endpoint: endpoint, process: process, setup: json)
        } catch {
            forceKill(process)
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
    func allowUnsignedRequests(_ count: Int) async throws {
        let result = try await run("/usr/bin/env", ["curl", "-sS", "--fail", "-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", String(count),
                                                    "\(endpoint)/moto-api/reset-auth"], timeout: 10)
        guard result.status == 0 else { throw HarnessError("moto reset-auth failed: \(result.stderr)") }
    }

    /// Ends moto, with SIGKILL (see `forceKill`). Foundation's `waitUntilExit` spins on the
    /// cooperative pool, so poll instead.
    func stop() async {
        forceKill(process)
        try? await waitUntil(timeout: 10, "moto_server to exit") { !process.isRunning }
    }
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
