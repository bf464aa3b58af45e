import ArgumentParser
import NIOCore
import NIOPosix
import NIOSSL
import TestOrigin
#if canImport(Glibc)
import Glibc
#endif

/// Benchmark helper: runs the test origin, and generates keep-alive HTTPS load directly or through
/// a CONNECT proxy (wrk and h2load cannot go through an HTTP proxy).
@main
struct BenchTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passsage-bench",
        subcommands: [OriginCommand.self, LoadCommand.self]
    )
}

struct OriginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "origin", abstract: "Run the TLS test origin.")

    @Option(help: "Port; 0 picks one.") var port = 0
    @Option(help: "Write the origin's CA certificate here.") var caOut: String
    @Flag(help: "Serve plain HTTP instead of TLS.") var plain = false

    func run() async throws {
        let pki = try TestPKI()
        guard let file = fopen(caOut, "w") else { throw ValidationError("cannot write \(caOut)") }
        fputs(pki.caPEM, file)
        fclose(file)
        let server = try await TestOriginServer.start(port: port, tls: plain ? nil : try pki.serverConfiguration())
        print("origin listening on 127.0.0.1:\(server.port)")
        fflush(nil)
        try await server.channel.closeFuture.get()
    }
}

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Keep-alive GET load over TLS; prints requests/s.")

    @Option(help: "Target host.") var host = "localhost"
    @Option(help: "Target port.") var port: Int
    @Option(help: "Path to request.") var path = "/small"
    @Option(help: "Go through this proxy (host:port) with CONNECT.") var proxy: String?
    @Option(help: "CA file to trust.") var ca: String
    @Option(help: "Concurrent connections.") var connections = 32
    @Option(help: "Seconds to run.") var duration = 10.0

    func run() async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        tls.applicationProtocols = ["http/1.1"]
        let sslContext = try NIOSSLContext(configuration: tls)
        let group = MultiThreadedEventLoopGroup.singleton
        let deadline = NIODeadline.now() + .nanoseconds(Int64(duration * 1e9))
        let stats = LoadStats()
        let started = NIODeadline.now()
        var finished: [EventLoopFuture<Void>] = []
        for _ in 0..<connections {
            let done = group.next().makePromise(of: Void.self)
            finished.append(done.futureResult)
            let target = (host: host, port: port, path: path)
            let proxyAddress = try proxy.map { value -> (String, Int) in
                let parts = value.split(separator: ":")
                guard parts.count == 2, let port = Int(parts[1]) else {
                    throw ValidationError("--proxy must be host:port, got '\(value)'")
                }
                return (String(parts[0]), port)
            }
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let hostHeader = target.port == 443 ? target.host : "\(target.host):\(target.port)"
                        let load = LoadHandler(host: hostHeader, path: target.path, deadline: deadline,
                                               stats: stats, done: done)
                        let tlsHandler = try NIOSSLClientHandler(
                            context: sslContext, serverHostname: target.host.first!.isNumber ? nil : target.host)
                        if proxyAddress != nil {
                            try channel.pipeline.syncOperations.addHandler(
                                ConnectHandshake(authority: "\(target.host):\(target.port)", then: [tlsHandler], load: load))
                        } else {
                            try channel.pipeline.syncOperations.addHandler(tlsHandler)
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            try channel.pipeline.syncOperations.addHandler(load)
                        }
                    }
                }
            let (connectHost, connectPort) = proxyAddress ?? (host, port)
            bootstrap.connect(host: connectHost == "localhost" ? "127.0.0.1" : connectHost, port: connectPort)
                .whenFailure { done.fail($0) }
        }
        for future in finished {
            try? await future.get()
        }
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        let (requests, errors, bytes) = stats.snapshot()
        if let firstError = stats.firstErrorDescription {
            print("first error: \(firstError)")
        }
        let requestsPerSecond: Double = Double(requests) / seconds
        let megabytesPerSecond: Double = Double(bytes) / seconds / 1e6
        print("requests=\(requests) errors=\(errors) seconds=\(rounded(seconds)) req_per_s=\(Int(requestsPerSecond)) mb_per_s=\(rounded(megabytesPerSecond))")
    }

    private func rounded(_ value: Double) -> Double {
        (value * 100).rounded() / 100
    }
}
