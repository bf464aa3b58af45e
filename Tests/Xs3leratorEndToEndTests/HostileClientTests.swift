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
        try await Xs3Fixture.with(["--client-write-stall-timeout", "2s"]) { fixture in
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

    @Test func aHalfClosedClientStillGetsItsResponse() async throws {
        try await Xs3Fixture.with { fixture in
            let connection = try RawConnection(port: fixture.xs3.port)
            #expect(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") > 0)
            shutdown(connection.fd, Int32(SHUT_WR))
            let outcome = try await onThread { connection.readAll(timeout: 10) }
            #expect(outcome.text.hasPrefix("HTTP/1.1 200"), "\(outcome.text)")
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
