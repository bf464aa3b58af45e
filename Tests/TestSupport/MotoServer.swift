import Foundation

/// A moto_server process on 127.0.0.1 with IAM signature checking on, prepared by
/// Tests/StorageTests/Fixtures/moto_setup.py: a user with full access, a read-only user (uploads
/// denied) and a web-identity role. One per test that needs it; `stop()` ends it.
public final class MotoServer: Sendable {
    public let endpoint: String
    public let bucket = "passsage-tests"
    public let accessKey: String
    public let secretKey: String
    /// A user that may read and list but not upload (S3 refusing PutObject).
    public let readOnlyAccessKey: String
    public let readOnlySecretKey: String
    public let roleARN: String
    private let process: Process

    public static var fixtures: String {
        let here = String(#filePath).split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + here + "/StorageTests/Fixtures"
    }

    private init(endpoint: String, process: Process, setup: [String: String]) {
        self.endpoint = endpoint
        self.process = process
        self.accessKey = setup["accessKey"] ?? ""
        self.secretKey = setup["secretKey"] ?? ""
        self.readOnlyAccessKey = setup["readOnlyAccessKey"] ?? ""
        self.readOnlySecretKey = setup["readOnlySecretKey"] ?? ""
        self.roleARN = setup["roleArn"] ?? ""
    }

    /// Starts moto on a free port and prepares it. A start that fails (the port taken between
    /// choosing and binding it, by another test's server; moto dying on a starved machine) is
    /// tried again on another port, twice at most.
    /// `environment`: moto's own settings (`S3_IGNORE_SUBDOMAIN_BUCKETNAME`); `requestLog`: a
    /// file that gets moto's request log, one line per request.
    public static func start(environment: [String: String] = [:], requestLog: String? = nil) async throws -> MotoServer {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await startOnce(environment: environment, requestLog: requestLog)
            } catch where attempt < 3 {
                continue
            }
        }
    }

    private static func startOnce(environment: [String: String], requestLog: String?) async throws -> MotoServer {
        let port = try unusedPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        if let requestLog {
            FileManager.default.createFile(atPath: requestLog, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: requestLog)
        } else {
            process.standardError = FileHandle.nullDevice
        }
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

    /// `AWS_*` variables for a child process using the full-access (or read-only) user.
    public func environment(readOnly: Bool = false) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": readOnly ? readOnlyAccessKey : accessKey,
         "AWS_SECRET_ACCESS_KEY": readOnly ? readOnlySecretKey : secretKey, "AWS_REGION": "us-east-1"]
    }

    /// Lets the next `count` requests through unsigned (moto checks signatures on STS's
    /// AssumeRoleWithWebIdentity, which real STS does not).
    public func allowUnsignedRequests(_ count: Int) async throws {
        let result = try await run("/usr/bin/env", ["curl", "-sS", "--fail", "-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", String(count),
                                                    "\(endpoint)/moto-api/reset-auth"], timeout: 10)
        guard result.status == 0 else { throw HarnessError("moto reset-auth failed: \(result.stderr)") }
    }

    /// Ends moto, with SIGKILL (see `forceKill`). Foundation's `waitUntilExit` spins on the
    /// cooperative pool, so poll instead.
    public func stop() async {
        forceKill(process)
        try? await waitUntil(timeout: 10, "moto_server to exit") { !process.isRunning }
    }
}

public func canConnect(port: Int) -> Bool {
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
