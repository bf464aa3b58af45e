import Foundation
import TestOrigin
import TestSupport
import Testing

/// Upstream failures: timeouts, refusals, stalls and breaks, before and after the headers.
@Suite("xs3lerator upstream failures", .serialized)
struct FailureTests {
    @Test func readTimeoutAbortsAStallingOriginWithinBounds() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            // Before the headers: 504 naming the cause.
            var started = ContinuousClock.now
            let early = try await curl(["-w", "\n%{http_code}", "-H", "X-Xs3lerator-Read-Timeout: 2", fixture.url("/stall")], timeout: 30)
            var elapsed = ContinuousClock.now - started
            #expect(early.stdout.hasSuffix("504"), "\(early.stdout)")
            #expect(early.stdout.contains("read timeout"))
            #expect(elapsed >= .seconds(2) && elapsed < .seconds(10), "\(elapsed)")

            // After the headers: the connection is aborted, so the body can never look complete.
            started = ContinuousClock.now
            let late = try await curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "X-Xs3lerator-Read-Timeout: 2",
                                       fixture.url("/object/10000000?ranges=none&stall=3000000")], timeout: 30)
            elapsed = ContinuousClock.now - started
            #expect(late.status != 0, "curl must see a broken transfer: \(late.stdout)")
            #expect(late.stdout.hasPrefix("200"))
            #expect(elapsed >= .seconds(2) && elapsed < .seconds(10), "\(elapsed)")
        }
    }

    @Test func readTimeoutZeroDisablesTheLimit() async throws {
        try await Xs3Fixture.with(["--upstream-read-timeout", "1"]) { fixture in
            let path = "/object/1000?delay=2500"
            let limited = try await curl(["-o", "/dev/null", "-w", "%{http_code}", fixture.url(path)], timeout: 30)
            #expect(limited.stdout == "504", "the 1 s default applies: \(limited.stdout)")
            let unlimited = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Xs3lerator-Read-Timeout: 0",
                                            fixture.url(path)], timeout: 30)
            #expect(unlimited.stdout == "200")
        }
    }

    @Test func connectTimeoutToAListenerThatNeverAccepts() async throws {
        let blackhole = try BlackholeListener()
        defer { blackhole.close() }
        try await Xs3Fixture.with { fixture in
            let started = ContinuousClock.now
            let result = try await curl(["-w", "\n%{http_code}", "-H", "X-Xs3lerator-Connect-Timeout: 1",
                                         "\(fixture.base)/http://127.0.0.1:\(blackhole.port)/x"], timeout: 30)
            let elapsed = ContinuousClock.now - started
            #expect(result.stdout.hasSuffix("504"), "\(result.stdout)")
            #expect(result.stdout.contains("connect timeout"))
            #expect(elapsed >= .seconds(1) && elapsed < .seconds(10), "\(elapsed)")

            let refused = try await curl(["-w", "\n%{http_code}", "\(fixture.base)/http://127.0.0.1:\(try unusedPort())/x"], timeout: 30)
            #expect(refused.stdout.hasSuffix("502"), "\(refused.stdout)")
            #expect(refused.stdout.contains("connect failed"))
        }
    }

    @Test func originBreakingMidBodyAbortsTheClient() async throws {
        try await Xs3Fixture.with(["--chunk-size", "1MiB"]) { fixture in
            let result = try await curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                         fixture.url("/object/10000000?ranges=none&drop=4000000")], timeout: 30)
            #expect(result.status != 0, "a truncated body must not look complete: \(result.stdout)")
            #expect(!result.stdout.hasSuffix(" 10000000"))
        }
    }
}

/// A listening socket whose accept queue is full and which never accepts: connects to it time out.
final class BlackholeListener: Sendable {
    let port: Int
    private let descriptors: [Int32]

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound, listen(listener, 0) == 0 else { throw HarnessError("cannot open the blackhole listener") }
        port = Int(UInt16(bigEndian: address.sin_port))
        // Fill the accept queue; later SYNs are dropped.
        var fillers: [Int32] = []
        for _ in 0..<8 {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            fillers.append(client)
        }
        descriptors = [listener] + fillers
    }

    func close() {
        for fd in descriptors { _ = Glibc.close(fd) }
    }
}
