import DownloadPlanning
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import StorageCore

/// One download of an object of known size into chunk files, served to one client as it fills.
///
/// The first, plain GET streams the object in order (`ChunkBoard.Writer.stream`). When the
/// origin can serve ranges, a probe range GET confirms it and range workers, admitted by the
/// `ConcurrencyRamp`, fetch the remaining chunks in claim order; the first stream stops at the
/// first chunk a worker holds, that is at a chunk boundary. Every range answer is checked (206,
/// the exact `Content-Range`, the exact length, the same validator); a bad or short answer is
/// retried from the last verified byte, and a chunk that keeps failing sends the download back
/// to one sequential stream. Nothing is fetched beyond `readAhead` past the client, and chunk
/// files behind the client are released at once.
public final class ChunkedDownload: Sendable {
    /// The chunks: one temporary file each (and, with the cache, one stored object each).
    public let plan: ChunkPlan
    /// The fetch units the board hands out: chunks, or even slices of them (`rangeSize`).
    public let units: ChunkPlan
    /// The object bytes the client gets.
    public let span: ClosedRange<Int64>
    let settings: DownloadSettings
    let fetcher: UpstreamFetcher
    /// The request that produced the first response, for ranges: same URL (after redirects) and headers.
    let rangeRequest: UpstreamRequest
    /// Strong ETag (or Last-Modified) of the first response: sent as `If-Range` and compared.
    let validator: (etag: String?, lastModified: String?)
    let coordinator: DownloadCoordinator
    /// The service-wide cap on range workers; nil for none.
    let budget: WorkerBudget?
    /// Keyed download: hashes chunks and keeps them for a sink.
    public let caching: Bool
    /// How far past the window's start units may be fetched: the configured read-ahead, but at
    /// least one chunk of this plan (chunks grow for huge objects), or a keyed download's first
    /// unstored chunk could never be fetched whole and the sink would wait forever.
    let readAhead: Int64
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    /// Builds the download for a 200 `initial` response of `size` bytes, of which the client
    /// wants `span`. `rangesAdvertised` is nil when the origin said nothing about ranges.
    ///
    /// `caching`: the whole object is fetched (the client's span first) for a sink that hashes and
    /// stores each chunk; the fetch window then follows the sink, not the readers, and the
    /// download outlives its readers (`ChunkRetention`). Otherwise only the chunks `span`
    /// touches are fetched, for the readers alone.
    public init(size: Int64, span: ClosedRange<Int64>, initialHeaders: HTTPHeaders, request: UpstreamRequest,
                fetcher: UpstreamFetcher, settings: DownloadSettings, budget: WorkerBudget? = nil, now: Double,
                caching: Bool = false) {
        let plan = ChunkPlan(totalSize: size, preferredChunkSize: settings.chunkSize)
        let units = ChunkPlan(totalSize: size, unitSize: ChunkPlan.fetchUnitSize(chunkSize: plan.chunkSize, rangeSize: settings.rangeSize))
        let wanted = units.chunks(overlapping: span)
        let needed: ClosedRange<Int>? = caching ? nil : wanted
        self.caching = caching
        self.readAhead = Swift.max(settings.readAhead, plan.chunkSize)
        self.plan = plan
        self.units = units
        self.span = span
        self.settings = settings
        self.fetcher = fetcher
        self.budget = budget
        var rangeRequest = request
        rangeRequest.followRedirects = false
        rangeRequest.method = .GET
        for name in ["Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"] {
            rangeRequest.headers.remove(name: name)
        }
        self.rangeRequest = rangeRequest
        let etag = initialHeaders.first(name: "ETag").flatMap { $0.hasPrefix("W/") ? nil : $0 }
        self.validator = (etag, initialHeaders.first(name: "Last-Modified"))
        let retention = ChunkRetention(plan: plan, sink: caching)
        self.coordinator = DownloadCoordinator(DownloadState(
            board: ChunkBoard(plan: units, needed: needed, priority: wanted),
            ramp: ConcurrencyRamp(maximum: settings.concurrency, settings: settings.ramp, now: now),
            retention: retention, windowStart: retention.windowStart ?? span.lowerBound))
    }

    /// Starts fetching: `initial` is the first response's body (object offset 0). `parallel`
    /// allows range workers (the origin advertised or did not deny ranges).
    public func start(initial: ByteStream, parallel: Bool) {
        let work = Task { await self.run(initial: initial, parallel: parallel) }
        task.withLockedValue { $0 = work }
    }

    /// Stops everything and releases every chunk file. Safe to call more than once.
    public func finish() {
        task.withLockedValue { $0 }?.cancel()
        coordinator.update { state in
            for file in state.files.values { file.close() }
            state.files.removeAll()
            if state.failure == nil, !state.board.isComplete { state.failure = CancellationError() }
        }
    }

    /// Chunk files open right now (for tests and stats).
    public var openChunkFiles: Int { coordinator.read { $0.files.count } }

    /// Whether the sink still stores this download: a reader joining it can rely on stored
    /// copies of released chunks.
    public var sinkIsActive: Bool { coordinator.read { $0.retention.sink == .active } }

    /// The download's failure, once it has failed or was stopped.
    public var failure: (any Error)? { coordinator.read { $0.failure } }

    /// Whether every needed byte has been fetched.
    public var isComplete: Bool { coordinator.read { $0.board.isComplete } }

    /// Applies a change to who holds which chunk, then moves the window, closes the chunk files
    /// no one needs any more, and stops the download when nothing holds it.
    func updateRetention(_ change: (inout ChunkRetention) -> Void) {
        let unwanted: Bool = coordinator.update { state in
            change(&state.retention)
            if let start = state.retention.windowStart { state.windowStart = start }
            for (index, file) in state.files where !state.retention.mustKeep(index) && isChunkDone(index, state.board) {
                file.close()
                state.files[index] = nil
                state.released.insert(index)
            }
            return state.retention.isUnwanted && !state.board.isComplete
        }
        if unwanted { finish() }
    }

    /// Whether every unit of chunk `index` (of `plan`) is written.
    func isChunkDone(_ index: Int, _ board: ChunkBoard) -> Bool {
        let range = plan.range(of: index)
        guard !range.isEmpty else { return true }
        let first = units.chunk(containing: range.lowerBound), last = units.chunk(containing: range.upperBound - 1)
        return board.slots[first...last].allSatisfy(\.isDone)
    }

    // MARK: Orchestration

    private func run(initial: ByteStream, parallel: Bool) async {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    _ = try await self.consumeInOrder(initial, from: 0, url: self.rangeRequest.url, skipUnneeded: !parallel)
                }
                if parallel && units.count > 1 {
                    group.addTask { try await self.runWorkers() }
                } else {
                    coordinator.update { $0.rangesUsable = false }
                }
                try await group.waitForAll()
            }
            var attempts = 0
            var lastError: (any Error)?
            while !coordinator.read({ $0.board.isComplete }), attempts < settings.rangeAttempts {
                attempts += 1
                do { try await resumeSequentially() } catch let error as UpstreamError where error.isRetryable {
                    lastError = error
                }
            }
            if !coordinator.read({ $0.board.isComplete }) {
                throw lastError ?? UpstreamError(.truncated, url: rangeRequest.url, message: "the origin never delivered the whole object")
            }
        } catch {
            coordinator.update { state in
                if state.failure == nil { state.failure = error }
            }
        }
    }

    private func runWorkers() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in 0..<settings.concurrency {
                group.addTask { try await self.runWorker(id) }
            }
            try await group.waitForAll()
        }
    }

    /// One range worker: waits for admission (worker 0 is the probe and goes first), claims the
    /// next chunk inside the read-ahead window, fetches it, and repeats.
    private func runWorker(_ id: Int) async throws {
        let writer = ChunkBoard.Writer.worker(id)
        while true {
            let readAhead = self.readAhead
            // Workers beyond the probe take a slot of the service-wide budget before they claim
            // work, and give it back after each unit, so downloads take turns.
            var holdsSlot = false
            if id > 0, let budget {
                let ready = coordinator.read { state in
                    !state.board.isComplete && state.rangesUsable == true && state.ramp.admits(worker: id)
                        && state.board.canClaim(startingBelow: state.windowStart + readAhead)
                }
                if ready {
                    try await budget.acquire()
                    holdsSlot = true
                }
            }
            let decision: WorkerStep = coordinator.update { state in
                if state.board.isComplete || state.rangesUsable == false { return .exit }
                // Until the probe has answered, only worker 0 may fetch.
                guard state.ramp.admits(worker: id), id == 0 || state.rangesUsable == true else { return .waitForAdmission }
                switch state.board.claimNext(by: writer, startingBelow: state.windowStart + readAhead) {
                case .chunk(let index): return .fetch(index)
                case .wait, .none: return .waitForWork
                }
            }
            if holdsSlot, case .fetch = decision {} else if holdsSlot {
                budget?.release()
                holdsSlot = false
            }
            switch decision {
            case .exit:
                return
            case .waitForAdmission:
                let admitted = try await coordinator.wait(until: { state in
                    state.board.isComplete || state.rangesUsable == false
                        || (state.ramp.admits(worker: id) && (id == 0 || state.rangesUsable == true))
                }, timeout: .milliseconds(250))
                if !admitted {
                    let now = Self.now()
                    coordinator.update { $0.ramp.tick(now: now) }
                }
            case .waitForWork:
                try await coordinator.wait { state in
                    state.board.isComplete || state.rangesUsable == false
                        || state.board.canClaim(startingBelow: state.windowStart + readAhead)
                }
            case .fetch(let index):
                defer { if holdsSlot { budget?.release() } }
                do {
                    try await fetchRange(index, writer: writer)
                    let now = Self.now()
                    coordinator.update { $0.ramp.chunkCompleted(now: now) }
                } catch let error as UpstreamError where error.isRetryable {
                    let now = Self.now()
                    coordinator.update { state in
                        state.board.release(index, by: writer)
                        state.ramp.chunkFailed(now: now)
                        state.rangeFailures[index, default: 0] += 1
                        let probeFailed = state.rangesUsable == nil && error.kind == .badRangeResponse
                        if probeFailed || state.rangeFailures[index, default: 0] >= settings.rangeAttempts {
                            // Ranges cannot be trusted here: the rest goes through one stream.
                            state.rangesUsable = false
                        }
                    }
                } catch {
                    coordinator.update { $0.board.release(index, by: writer) }
                    throw error
                }
            }
        }
    }

    private enum WorkerStep {
        case exit, waitForAdmission, waitForWork, fetch(Int)
    }

    /// Fetches the rest of chunk `index` with a range GET and writes it.
    private func fetchRange(_ index: Int, writer: ChunkBoard.Writer) async throws {
        let (from, through) = coordinator.read { ($0.board.slots[index].resumeOffset, $0.board.slots[index].range.upperBound - 1) }
        var request = rangeRequest
        request.headers.replaceOrAdd(name: "Range", value: "bytes=\(from)-\(through)")
        if let ifRange = validator.etag ?? validator.lastModified { request.headers.replaceOrAdd(name: "If-Range", value: ifRange) }
        let response = try await fetcher.send(request)
        try checkRangeResponse(response, from: from, through: through)
        coordinator.update { state in
            if state.rangesUsable == nil { state.rangesUsable = true }
        }
        let end = try await writeBody(response.body, chunk: index, from: from, writer: writer, url: request.url)
        guard end == through + 1 else {
            throw UpstreamError(.truncated, url: request.url, message: "range \(from)-\(through) ended after \(end - from) bytes")
        }
    }

    private func checkRangeResponse(_ response: UpstreamResponse, from: Int64, through: Int64) throws {
        let asked = "bytes \(from)-\(through)/\(plan.totalSize)"
        guard response.status == .partialContent else {
            throw UpstreamError(.badRangeResponse, url: response.url, message: "asked for \(asked), got status \(response.status.code)")
        }
        let contentRange = response.headers.first(name: "Content-Range").flatMap(ContentRange.init(headerValue:))
        guard let contentRange, contentRange.first == from, contentRange.last == through,
              contentRange.completeLength == plan.totalSize else {
            throw UpstreamError(.badRangeResponse, url: response.url,
                                message: "asked for \(asked), got Content-Range \(response.headers.first(name: "Content-Range") ?? "none")")
        }
        if let length = response.headers.first(name: "Content-Length"), Int64(length) != through - from + 1 {
            throw UpstreamError(.badRangeResponse, url: response.url, message: "asked for \(asked), got Content-Length \(length)")
        }
        if let etag = validator.etag, let answered = response.headers.first(name: "ETag"), answered != etag {
            throw UpstreamError(.objectChanged, url: response.url, message: "ETag \(etag) became \(answered)")
        }
    }

    /// Continues after the parallel phase left needed chunks unfinished: one GET from the first
    /// missing byte. An origin that answers a range with 200 sends the whole object, which is
    /// then read through from offset 0.
    private func resumeSequentially() async throws {
        let start = coordinator.read { state in
            state.board.slots.first { $0.isNeeded && !$0.isDone }?.resumeOffset ?? plan.totalSize
        }
        // A cache fill needs the whole object, whatever span its first client asked for.
        let last = caching ? plan.totalSize - 1 : units.range(of: units.chunks(overlapping: span).upperBound).upperBound - 1
        var request = rangeRequest
        if start > 0 || last < plan.totalSize - 1 {
            request.headers.replaceOrAdd(name: "Range", value: "bytes=\(start)-\(last)")
            if let ifRange = validator.etag ?? validator.lastModified { request.headers.replaceOrAdd(name: "If-Range", value: ifRange) }
        }
        let response = try await fetcher.send(request)
        if response.status == .partialContent {
            try checkRangeResponse(response, from: start, through: last)
            _ = try await consumeInOrder(response.body, from: start, url: request.url, skipUnneeded: true)
        } else if response.status == .ok, response.headers.first(name: "Content-Length").flatMap(Int64.init) == plan.totalSize {
            _ = try await consumeInOrder(response.body, from: 0, url: request.url, skipUnneeded: true)
        } else {
            throw UpstreamError(.badRangeResponse, url: request.url, message: "resuming at \(start) got status \(response.status.code)")
        }
    }

    /// Seconds on a monotonic clock, the ramp's time base.
    public static func now() -> Double {
        let elapsed = ContinuousClock.now - processStart
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

private let processStart = ContinuousClock.now
