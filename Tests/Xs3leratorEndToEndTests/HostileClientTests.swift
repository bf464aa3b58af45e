import Foundation
import TestOrigin
import TestSupport
import Testing

/// What a hostile or broken client can do to the service: hold connections, make it call itself,
/// send values that once crashed it.
@Suite("xs3lerator against hostile clients")
struct HostileClientTests {
    @Test func aTricklingHeadAndAnIdleConnectionAreClosedAtTheHeadDeadline() async throws {
        try await Xs3Fixture.with(["--client-head-timeout", "1s"]) { fixture in
            let trickling = try RawConnection(port: fixture.xs3.port)
            let idle = try RawConnection(port: fixture.xs3.port)
            #expect(trickling.send("GET /http") > 0)
            let started = Date()
            async let trickle = onThread {
                // A byte every 200 ms: each would restart an idle timer, not this deadline.
                for _ in 0..<40 where trickling.send("x") >= 0 { usleep(200_000) }
                return trickling.readAll(timeout: 1)
            }
            let idleOutcome = try await onThread { idle.readAll(timeout: 10) }
            #expect(idleOutcome.closed && idleOutcome.text.isEmpty)
            let trickleOutcome = try await trickle
            #expect(trickleOutcome.closed)
            #expect(Date().timeIntervalSince(started) < 9, "closed at the deadline, not after the 8 s trickle")
            // A keep-alive connection after its response gets the same deadline.
            let keepAlive = try RawConnection(port: fixture.xs3.port)
            #expect(keepAlive.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") > 0)
            let after = try await onThread { keepAlive.readAll(timeout: 10) }
            #expect(after.text.hasPrefix("HTTP/1.1 200") && after.closed)
        }
    }

    @Test func aClientThatStopsReadingIsClosedAtTheWriteStallDeadline() async throws {
        try await Xs3Fixture.with(["--client-write-stall-timeout", "2s", "--chunk-size", "1MiB", "--read-ahead", "4MiB"]) { fixture in
            let connection = try RawConnection(port: fixture.xs3.port)
            let path = "/\(fixture.originBase)/object/\(256 << 20)"
            #expect(connection.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n") > 0)
            // Read nothing until the server has given up on us (however long a loaded machine takes
            // to fill the socket buffers), then everything: the response must end cut short.
            let started = Date()
            try await waitUntil(timeout: 120, "the stalled response to be aborted") { fixture.xs3.output.contains("aborted=true") }
            let outcome = try await onThread { connection.readAll(timeout: 60) }
            let received = outcome.text.utf8.count
            let closed = outcome.closed
            #expect(closed, "received \(received) bytes in 60 s; service said: \(fixture.xs3.output.suffix(1500))")
            #expect(received < 256 << 20, "the response was cut, not sent whole: \(received) bytes")
            let stalled = Date().timeIntervalSince(started)
            #expect(stalled >= 2, "not before the stall timeout: \(stalled) s")
            try await waitUntil(timeout: 30, "the download's chunk files to be released") { fixture.openChunkFiles == 0 }
        }
    }

    @Test func aClientThatLeavesWhileTheUpstreamIsSilentFreesItsConnectionsAtOnce() async throws {
        // Even with no read timeout, a client that closes (or half-closes) before any byte came back
        // must not leave its socket and an upstream connection behind.
        try await Xs3Fixture.with { fixture in
            let gaveUp = try await curl(["-m", "1", "-H", "X-Xs3lerator-Read-Timeout: 0", fixture.url("/stall")], timeout: 5)
            #expect(gaveUp.status != 0)
            let halfClosing = try RawConnection(port: fixture.xs3.port)
            #expect(halfClosing.send("GET /\(fixture.originBase)/stall HTTP/1.1\r\nHost: x\r\nX-Xs3lerator-Read-Timeout: 0\r\n\r\n") > 0)
            try await Task.sleep(for: .milliseconds(200))
            shutdown(halfClosing.fd, Int32(SHUT_WR))
            try await waitUntil(timeout: 10, "both requests to end") {
                fixture.xs3.output.components(separatedBy: "/stall").count - 1 >= 2
            }
            let lines = fixture.xs3.output.split(separator: "\n").filter { $0.contains("/stall") }
            #expect(lines.allSatisfy { $0.contains("aborted=true") }, "\(lines)")
        }
    }

    @Test func requestsThatComeBackToTheServiceAreRefused() async throws {
        try await Xs3Fixture.with { fixture in
            // The service asked to fetch itself, through itself: one hop, then 508.
            let looped = "\(fixture.base)/\(fixture.base)/\(fixture.originBase)/object/1000"
            let answer = try await curl(["-w", " %{http_code}", looped])
            #expect(answer.stdout.hasSuffix(" 508"), "\(answer.stdout)")
            #expect(fixture.origin.stats.requests("/object/1000") == 0)
            let marked = try await curl(["-w", " %{http_code}", "-o", "/dev/null", "-H", "Via: 1.0 corporate, 1.1 xs3lerator",
                                         fixture.url("/object/1000")])
            #expect(marked.stdout.hasSuffix(" 508"))
            let other = try await curl(["-w", " %{http_code}", "-o", "/dev/null", "-H", "Via: 1.1 squid", fixture.url("/object/1000")])
            #expect(other.stdout.hasSuffix(" 200"))
        }
    }

    @Test func valuesThatOnceCrashedTheServiceAreRefusedOrClamped() async throws {
        try await Xs3Fixture.with { fixture in
            // Hosts that are not hosts: percent-encoded brackets crashed the HTTP client's URL parsing.
            for target in ["http://%5B%5D/x", "http://%5b%5d:80/x", "https://u@%5B%5D/", "http://[]/x", "http://%5B/x"] {
                let answer = try await curl(["-g", "-w", " %{http_code}", "--path-as-is", "\(fixture.base)/\(target)"])
                #expect(answer.stdout.hasSuffix(" 400"), "\(target): \(answer.stdout)")
            }
            for location in ["http://[]/x", "//[]/x", "http://%5B%5D/x", "http://u@[]:80/x"] {
                let escaped = location.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? location
                let answer = try await curl(["-w", " %{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Follow-Redirects: true",
                                             fixture.url("/location?to=\(escaped)")])
                #expect(answer.stdout.hasSuffix(" 302"), "\(location): \(answer.stdout)")
            }
            // A port past 65535, in the target and in a redirect (F2).
            let badPort = try await curl(["-w", " %{http_code}", "\(fixture.base)/http://127.0.0.1:99999/x"])
            #expect(badPort.stdout.hasSuffix(" 400"), "\(badPort.stdout)")
            let redirect = try await curl(["-w", " %{http_code}", "-H", "X-Xs3lerator-Follow-Redirects: true",
                                           fixture.url("/location?to=http://127.0.0.1:70000/x")])
            #expect(redirect.stdout.hasSuffix(" 302"), "a Location that cannot be followed is passed on: \(redirect.stdout)")
            // Timeouts too large for milliseconds in an Int64 (F1).
            let huge = try await curl(["-w", " %{http_code}", "-o", "/dev/null", "-H", "X-Xs3lerator-Read-Timeout: 1e300",
                                       "-H", "X-Xs3lerator-Connect-Timeout: 9300000000000000", fixture.url("/object/1000")])
            #expect(huge.stdout.hasSuffix(" 200"))
            let health = try await curl(["-w", " %{http_code}", "\(fixture.base)/healthz"])
            #expect(health.stdout == "ok 200", "still alive")
        }
    }
}
