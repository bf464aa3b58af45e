import DownloadPlanning
import StorageCore
import Testing

@Suite("Download planning")
struct PlanningTests {
    static let MiB: Int64 = 1 << 20

    @Test func chunkPlansRespectS3Limits() {
        let cases: [(Int64, Int)] = [(0, 0), (5 * Self.MiB, 1), (64 * Self.MiB, 2), (256 * Self.MiB, 8), (512 * Self.MiB, 16), (1 << 30, 32)]
        for (size, count) in cases {
            let plan = ChunkPlan(totalSize: size, preferredChunkSize: 32 * Self.MiB)
            #expect(plan.count == count, "\(size)")
            #expect(plan.chunkSize == 32 * Self.MiB)
        }
        let large = ChunkPlan(totalSize: 400 << 30, preferredChunkSize: 32 * Self.MiB)
        #expect(large.chunkSize > 32 * Self.MiB)
        #expect(large.count <= 10_000)
        let huge = ChunkPlan(totalSize: 48_800_000_000_000, preferredChunkSize: 32 * Self.MiB)
        #expect(huge.chunkSize == (48_800_000_000_000 + 9_999) / 10_000)
        #expect(huge.chunkSize < 5 << 30)
        let capped = ChunkPlan(totalSize: 60_000_000_000_000, preferredChunkSize: 32 * Self.MiB)
        #expect(capped.chunkSize == 5 << 30)

        let odd = ChunkPlan(totalSize: 100_000_000, preferredChunkSize: 32 * Self.MiB)
        var next: Int64 = 0
        for index in 0..<odd.count {
            #expect(odd.range(of: index).lowerBound == next)
            next = odd.range(of: index).upperBound
        }
        #expect(next == 100_000_000)
        #expect(ChunkPlan(totalSize: 65 * Self.MiB, preferredChunkSize: 32 * Self.MiB).length(of: 2) == Self.MiB)
        #expect(odd.chunks(overlapping: 0...0) == 0...0)
        #expect(odd.chunks(overlapping: (32 * Self.MiB - 1)...(32 * Self.MiB)) == 0...1)
        #expect(odd.chunks(overlapping: 99_999_999...99_999_999) == 2...2)
    }

    @Test func byteSizesAreBinaryOrDecimalAsWritten() {
        #expect(ByteSize.parse("8MiB") == 8_388_608)
        #expect(ByteSize.parse("256MiB") == 268_435_456)
        #expect(ByteSize.parse("1GiB") == 1_073_741_824)
        #expect(ByteSize.parse("5m") == 5_000_000)
        #expect(ByteSize.parse("5MB") == 5_000_000)
        #expect(ByteSize.parse("32 mib") == 32 << 20)
        #expect(ByteSize.parse("1024") == 1024)
        #expect(ByteSize.parse("1024b") == 1024)
        #expect(ByteSize.parse("2k") == 2000)
        #expect(ByteSize.parse("4KiB") == 4096)
        for bad in ["", "MiB", "-5MiB", "1.5MiB", "5 parsecs", "99999999999999999999", "9999999TiB"] {
            #expect(ByteSize.parse(bad) == nil, "\(bad)")
        }
        #expect(ByteSize.describe(32 << 20) == "32 MiB")
        #expect(ByteSize.describe(5_000_000) == "5000000 bytes")
    }

    @Test func clientRanges() {
        func resolve(_ header: String?, _ size: Int64 = 1000) -> RangeRequest.Resolution {
            RangeRequest(headerValue: header).resolve(size: size)
        }
        #expect(resolve(nil) == .full(0...999))
        #expect(resolve("bytes=0-0") == .partial(0...0))
        #expect(resolve("bytes=999-999") == .partial(999...999))
        #expect(resolve("bytes=-1") == .partial(999...999))
        #expect(resolve("bytes=-5000") == .full(0...999))
        #expect(resolve("bytes=500-") == .partial(500...999))
        #expect(resolve("bytes=500-5000") == .partial(500...999))
        #expect(resolve("bytes=0-999") == .full(0...999))
        #expect(resolve("bytes= 10 - 20 ") == .partial(10...20))
        #expect(resolve("bytes=1000-") == .unsatisfiable)
        #expect(resolve("bytes=1000-2000") == .unsatisfiable)
        #expect(resolve("bytes=-0") == .unsatisfiable)
        #expect(resolve("bytes=0-", 0) == .unsatisfiable)
        #expect(resolve(nil, 0) == .empty)
        // Ignored, as RFC 9110 allows: the whole object with 200.
        for ignored in ["items=0-5", "bytes=5-3", "bytes=0-1,5-6", "bytes=abc", "bytes=", "bytes=-", "0-5"] {
            #expect(resolve(ignored) == .full(0...999), "\(ignored)")
        }
    }

    @Test func rampStartsSmallAndDoublesWhileItPays() {
        #expect(ConcurrencyRamp(maximum: 32, now: 0).active == 4)
        #expect(ConcurrencyRamp(maximum: 2, now: 0).active == 2)

        var ramp = ConcurrencyRamp(maximum: 64, settings: .init(interval: 1), now: 0)
        ramp.transferred(100, now: 0.5)
        #expect(ramp.active == 4, "a level is judged after its interval")
        ramp.transferred(0, now: 1)
        #expect(ramp.active == 8, "the first level only sets the baseline (100 B/s)")
        ramp.transferred(200, now: 2)
        #expect(ramp.active == 16, "+100 %: double again")
        ramp.transferred(220, now: 3)
        #expect(ramp.active == 16, "+10 %: not worth it")
        #expect(ramp.isFrozen)
        ramp.transferred(10_000, now: 9)
        #expect(ramp.active == 16, "frozen for good")

        var capped = ConcurrencyRamp(maximum: 8, settings: .init(interval: 1), now: 0)
        capped.transferred(10, now: 1)
        #expect(capped.active == 8)
        capped.transferred(10, now: 2)
        #expect(capped.isFrozen)
        #expect(capped.active == 8)

        // A level that moved nothing yet (slow first bytes) doubles without becoming the baseline.
        var slow = ConcurrencyRamp(maximum: 32, settings: .init(interval: 1), now: 0)
        slow.tick(now: 0.9)
        #expect(slow.active == 4)
        slow.tick(now: 1)
        #expect(slow.active == 8)
        slow.transferred(1000, now: 2)
        #expect(slow.active == 16)
        #expect(!slow.admits(worker: 16))
        #expect(slow.admits(worker: 15))
    }

    @Test func rampBacksOffOnErrors() {
        var failing = ConcurrencyRamp(maximum: 32, now: 0)
        failing.chunkCompleted(now: 0.1)
        failing.chunkFailed(now: 0.2)
        failing.chunkFailed(now: 0.3)
        #expect(failing.isFrozen)
        #expect(failing.active <= 4)
        failing.transferred(1 << 30, now: 10)
        #expect(failing.active <= 4)
    }

    @Test func fetchUnitsDivideChunks() {
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 32 << 20, rangeSize: 8 << 20) == 8 << 20)
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 32 << 20, rangeSize: 64 << 20) == 32 << 20)
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 5_000_000, rangeSize: 8 << 20) == 5_000_000)
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 5_000_000, rangeSize: 1 << 20) == 1_000_000)
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 45_000_000, rangeSize: 8 << 20) == 7_500_000)
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 42_949_673, rangeSize: 8 << 20) == 42_949_673, "no divisor in 6...12 parts: one unit")
        #expect(ChunkPlan.fetchUnitSize(chunkSize: 10_000_019, rangeSize: 1 << 20) == 10_000_019, "a prime: one unit")
        let units = ChunkPlan(totalSize: 100, unitSize: 30)
        #expect(units.count == 4)
        #expect(units.range(of: 3) == 90..<100)
    }

    @Test func boardGivesEachChunkOneWriter() {
        let plan = ChunkPlan(totalSize: 10 * 1024, preferredChunkSize: 1024)
        var board = ChunkBoard(plan: plan, priority: 5...6)
        #expect(board.order == [5, 6, 0, 1, 2, 3, 4, 7, 8, 9])
        var claims: [Bool] = [board.claim(0, by: .stream), board.claim(0, by: .worker(1))]
        #expect(claims == [true, false])
        var next: [ChunkBoard.Claim] = [
            board.claimNext(by: .worker(0), startingBelow: .max),
            board.claimNext(by: .worker(1), startingBelow: 5 * 1024),
            board.claimNext(by: .worker(2), startingBelow: 2 * 1024),
        ]
        #expect(next == [.chunk(5), .chunk(1), .wait])
        // A writer that fails keeps its verified bytes; the next one resumes there.
        board.record(100, of: 1, by: .worker(1))
        board.release(1, by: .worker(1))
        #expect(board.slots[1].resumeOffset == 1024 + 100)
        next = [board.claimNext(by: .worker(2), startingBelow: .max), board.claimNext(by: .worker(3), startingBelow: .max)]
        #expect(next == [.chunk(6), .chunk(1)])
        let finished = board.record(924, of: 1, by: .worker(3))
        #expect(finished)
        #expect(board.slots[1].writer == nil)
        #expect(!board.isComplete)

        var scoped = ChunkBoard(plan: plan, needed: 2...3)
        claims = [scoped.claim(0, by: .stream)]
        #expect(claims == [false])
        next = [
            scoped.claimNext(by: .worker(0), startingBelow: .max),
            scoped.claimNext(by: .worker(1), startingBelow: .max),
            scoped.claimNext(by: .worker(2), startingBelow: .max),
        ]
        #expect(next == [.chunk(2), .chunk(3), .none])
        scoped.record(1024, of: 2, by: .worker(0))
        scoped.record(1024, of: 3, by: .worker(1))
        #expect(scoped.isComplete)
    }

    @Test func redirectLocations() {
        let base = "https://files.example:8443/pkg/a/file.whl?x=1"
        #expect(RedirectLocation.resolve("https://cdn.example/x", against: base) == "https://cdn.example/x")
        #expect(RedirectLocation.resolve("//cdn.example/x", against: base) == "https://cdn.example/x")
        #expect(RedirectLocation.resolve("/other?y=2", against: base) == "https://files.example:8443/other?y=2")
        #expect(RedirectLocation.resolve("b.whl", against: base) == "https://files.example:8443/pkg/a/b.whl")
        #expect(RedirectLocation.resolve("?z=3", against: base) == "https://files.example:8443/pkg/a/file.whl?z=3")
        #expect(RedirectLocation.resolve("ftp://x/y", against: base) == nil)
        #expect(RedirectLocation.origin(of: base) == "https://files.example:8443")
        #expect(RedirectLocation.split("http://host") != nil)
        #expect(RedirectLocation.split("test-key") == nil)
        #expect(RedirectLocation.split("http:///path") == nil)
    }

    @Test func urlsWithBadAuthoritiesAreRefused() {
        for bad in ["http://127.0.0.1:99999/x", "http://h:0/", "http://h:8a/", "http://[::1/x", "http://[::1]x/", "http://a b/",
                    "http://user@:80/", "http://h:123456/", "http://h:/x"] {
            #expect(RedirectLocation.split(bad) == nil, "\(bad)")
        }
        for good in ["http://127.0.0.1:65535/x", "http://[::1]:8080/x", "https://u:p@h/", "http://[::1]/"] {
            #expect(RedirectLocation.split(good) != nil, "\(good)")
        }
        #expect(RedirectLocation.resolve("http://10.0.0.1:70000/x", against: "http://a/") == nil)
        #expect(RedirectLocation.resolve("//10.0.0.1:70000/x", against: "http://a/") == nil)
    }
}
