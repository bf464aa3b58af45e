@testable import DataPlane
import DownloadPlanning
import ObjectStore
import Testing

/// The cache's decisions as plain values: chunk retention and the in-flight table.
@Suite("Cache logic")
struct CacheLogicTests {
    let plan = ChunkPlan(totalSize: 10 * 100, preferredChunkSize: 100)

    @Test func withoutASinkFilesLiveUntilEveryReaderPassedAndTheWindowFollowsTheSlowest() {
        var retention = ChunkRetention(plan: plan, sink: false)
        #expect(retention.windowStart == nil && retention.isUnwanted)
        let a = retention.addReader(at: 0)
        let b = retention.addReader(at: 350)
        #expect(retention.windowStart == 0)
        #expect(retention.mustKeep(0) && retention.mustKeep(3) && retention.mustKeep(9))
        retention.moveReader(a, to: 250)
        #expect(!retention.mustKeep(0) && !retention.mustKeep(1) && retention.mustKeep(2))
        #expect(retention.windowStart == 250)
        retention.removeReader(a)
        #expect(retention.windowStart == 350 && !retention.mustKeep(2) && retention.mustKeep(3))
        retention.removeReader(b)
        #expect(retention.isUnwanted)
    }

    @Test func withASinkTheWindowFollowsStorageAndReadersOnlyPinTheChunkTheyAreIn() {
        var retention = ChunkRetention(plan: plan, sink: true)
        #expect(retention.windowStart == 0 && !retention.isUnwanted, "a keyed download outlives its readers")
        let reader = retention.addReader(at: 150)
        retention.markStored(0)
        retention.markStored(1)
        retention.markStored(3)
        #expect(retention.sinkFrontier == 2 && retention.windowStart == 200)
        #expect(!retention.mustKeep(0), "stored and behind the reader")
        #expect(retention.mustKeep(1), "the reader is inside chunk 1")
        #expect(retention.mustKeep(2), "not stored yet")
        #expect(!retention.mustKeep(3), "stored: the reader will read the stored copy")
        retention.moveReader(reader, to: 200)
        #expect(!retention.mustKeep(1))
        retention.abandonSink()
        #expect(retention.sink == .abandoned && retention.windowStart == 200)
        #expect(retention.mustKeep(2) && retention.mustKeep(4) && !retention.mustKeep(3))
        retention.removeReader(reader)
        #expect(retention.isUnwanted)
    }

    final class Fill: Sendable {}

    @Test(.bug(id: 12, "xs3lerator-behaviour.md §13")) func theInFlightTableHasNoPlaceholderWindow() {
        // Bug 12: between the first request's check and its registration a second one could
        // join an empty placeholder. Here the key is claimed first and joiners wait for it.
        var table = InFlightTable<Fill>()
        guard case .create = table.claim("k") else { Issue.record("first claim creates"); return }
        guard case .wait(let w1) = table.claim("k"), case .wait(let w2) = table.claim("k") else {
            Issue.record("later claims wait"); return
        }
        let cancelled = table.cancelWait("k", w1)
        let again = table.cancelWait("k", w1)
        #expect(cancelled && !again, "a second cancel finds it gone")
        let fill = Fill()
        let joiners = table.publish("k", fill)
        #expect(joiners == [w2])
        guard case .join(let joined) = table.claim("k") else { Issue.record("then they join"); return }
        #expect(joined === fill)
        table.finish("k", Fill())
        #expect(table.active("k") === fill, "only the fill itself ends its entry")
        table.finish("k", fill)
        #expect(table.active("k") == nil)
        // An answer with nothing to share frees the key and sends the waiters upstream.
        _ = table.claim("j")
        guard case .wait(let w3) = table.claim("j") else { Issue.record("waits"); return }
        let sent = table.abandon("j")
        #expect(sent == [w3])
        guard case .create = table.claim("j") else { Issue.record("free again"); return }
    }

    @Test func sweepTakesOnlyUnreferencedChunksOlderThanTheGrace() {
        let now: Int64 = 1_000_000
        let objects = [
            ObjectSummary(key: "data/a", size: 1, lastModified: now - 7200),  // referenced
            ObjectSummary(key: "data/b", size: 1, lastModified: now - 7200),  // old, unreferenced
            ObjectSummary(key: "data/c", size: 1, lastModified: now - 60),    // young: perhaps a miss uploading
            ObjectSummary(key: "data/d", size: 1, lastModified: nil),         // age unknown: kept
        ]
        let (unreferenced, young) = ChunkSweep.classify(objects, referenced: ["data/a"], now: now, grace: .seconds(3600))
        #expect(unreferenced.map(\.key) == ["data/b"])
        #expect(young == 2)
    }

    @Test func timestampsMatchTheOriginalsFormat() {
        #expect(Timestamp.iso8601(secondsSinceEpoch: 0) == "1970-01-01T00:00:00+00:00")
        #expect(Timestamp.iso8601(secondsSinceEpoch: 1_772_704_200) == "2026-03-05T09:50:00+00:00")
        #expect(Timestamp.iso8601(secondsSinceEpoch: 951_782_400) == "2000-02-29T00:00:00+00:00")
    }
}
