import DownloadPlanning
import NIOCore
import StorageCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes on their way into one fetch unit (inside one chunk file): gathered up to a piece, then
/// written at once and recorded, so readers see progress in pieces and the thread pool is not
/// asked per packet.
struct StagedChunkWrite {
    /// The fetch unit, on the board.
    let chunk: Int
    let writer: ChunkBoard.Writer
    /// The chunk file the unit lies in, and where that chunk starts.
    let file: Int
    let chunkStart: Int64
    /// Object offset of the first staged byte.
    private(set) var offset: Int64
    private var staging: ByteBuffer

    init(unit: Int, writer: ChunkBoard.Writer, in download: ChunkedDownload, offset: Int64) {
        self.chunk = unit
        self.writer = writer
        self.file = download.plan.chunk(containing: offset)
        self.chunkStart = download.plan.range(of: file).lowerBound
        self.offset = offset
        self.staging = ByteBufferAllocator().buffer(capacity: download.settings.pieceSize)
    }

    var stagedBytes: Int { staging.readableBytes }

    mutating func append(_ slice: inout ByteBuffer) {
        staging.writeBuffer(&slice)
    }

    /// Writes what is staged, hashes it if it continues the chunk's in-order prefix, and
    /// records it on the board (after the hash, so a complete chunk has no hasher out).
    mutating func flush(into download: ChunkedDownload) async throws {
        guard staging.readableBytes > 0 else { return }
        let count = Int64(staging.readableBytes)
        try await download.chunkFile(file).write(staging, at: offset - chunkStart)
        if download.caching { download.hashInOrder(staging, chunk: file, at: offset - chunkStart) }
        let (chunk, writer) = (self.chunk, self.writer)
        let now = ChunkedDownload.now()
        download.coordinator.update { state in
            _ = state.board.record(count, of: chunk, by: writer)
            // Only range workers' bytes judge the ramp; the first stream runs at any level.
            if case .worker = writer { state.ramp.transferred(count, now: now) }
        }
        offset += count
        staging.clear()
    }
}

extension ChunkedDownload {
    /// The file of chunk `index` (of `plan`, not of `units`), created on first use.
    func chunkFile(_ index: Int) throws -> TemporaryChunkFile {
        try coordinator.update { state in
            if let file = state.files[index] { return file }
            if let failure = state.failure { throw failure }
            guard !state.released.contains(index) else {
                throw FileError(operation: "reopen", path: "chunk file \(index) (released)", errno: EBADF)
            }
            let file = try TemporaryChunkFile(directory: settings.temporaryDirectory)
            state.files[index] = file
            return file
        }
    }

    /// Writes a range body into chunk `index`, starting at object offset `from`; returns the
    /// offset after the last byte written. More bytes than the chunk holds is an error.
    func writeBody(_ body: ByteStream, chunk index: Int, from: Int64, writer: ChunkBoard.Writer,
                   url: String) async throws -> Int64 {
        let end = units.range(of: index).upperBound
        var staged = StagedChunkWrite(unit: index, writer: writer, in: self, offset: from)
        var position = from
        do {
            for try await var buffer in body {
                guard position + Int64(buffer.readableBytes) <= end else {
                    throw UpstreamError(.badRangeResponse, url: url, message: "range body longer than asked for")
                }
                position += Int64(buffer.readableBytes)
                staged.append(&buffer)
                if staged.stagedBytes >= settings.pieceSize { try await staged.flush(into: self) }
            }
        } catch let error as UpstreamError {
            try? await staged.flush(into: self)
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Keep the verified bytes that arrived; the chunk resumes from there.
            try? await staged.flush(into: self)
            if Task.isCancelled { throw CancellationError() }
            throw UpstreamError.classify(error, url: url, connectTimeout: rangeRequest.connectTimeout, readTimeout: rangeRequest.readTimeout)
                .asTruncation
        }
        try await staged.flush(into: self)
        return position
    }

    /// Streams a body that starts at object offset `start` into the chunks it covers, in order.
    /// Chunks already done, or not needed, are read past when `skipUnneeded` (else the stream
    /// stops there); a chunk another writer holds stops the stream, at that chunk's boundary.
    /// Returns whether the stream reached the end of the object.
    func consumeInOrder(_ body: ByteStream, from start: Int64, url: String, skipUnneeded: Bool) async throws -> Bool {
        var position = start
        var staged: StagedChunkWrite?
        defer { coordinator.update { $0.board.releaseAll(by: .stream) } }
        do {
            for try await var buffer in body {
                while buffer.readableBytes > 0 {
                    guard position < units.totalSize else {
                        throw UpstreamError(.other, url: url, message: "body longer than its Content-Length")
                    }
                    let index = units.chunk(containing: position)
                    let chunkEnd = units.range(of: index).upperBound
                    if staged?.chunk != index {
                        if var previous = staged {
                            try await previous.flush(into: self)
                            staged = nil
                        }
                        switch try await acquireForStream(index, at: position, skipUnneeded: skipUnneeded) {
                        case .stop:
                            return false
                        case .skip(let count):
                            let n = Int(min(Int64(buffer.readableBytes), count))
                            buffer.moveReaderIndex(forwardBy: n)
                            position += Int64(n)
                            continue
                        case .write:
                            staged = StagedChunkWrite(unit: index, writer: .stream, in: self, offset: position)
                        }
                    }
                    let n = Int(min(Int64(buffer.readableBytes), chunkEnd - position))
                    var slice = buffer.readSlice(length: n)!
                    staged!.append(&slice)
                    position += Int64(n)
                    if staged!.stagedBytes >= settings.pieceSize || position == chunkEnd {
                        try await staged!.flush(into: self)
                    }
                    if position == chunkEnd { staged = nil }
                }
            }
            if var last = staged { try await last.flush(into: self) }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if var last = staged { try? await last.flush(into: self) }
            if Task.isCancelled { throw CancellationError() }
            let failure = UpstreamError.classify(error, url: url, connectTimeout: rangeRequest.connectTimeout,
                                                 readTimeout: rangeRequest.readTimeout)
            // A stalled origin ends the download; a broken stream leaves what it verified and
            // the rest is resumed by others.
            if !failure.asTruncation.isRetryable { throw failure }
            return false
        }
        return position == units.totalSize
    }

    enum StreamStep {
        case write
        case skip(Int64)
        case stop
    }

    /// Decides what the in-order stream does at object offset `position` of chunk `index`;
    /// waits while the chunk lies beyond the read-ahead window.
    func acquireForStream(_ index: Int, at position: Int64, skipUnneeded: Bool) async throws -> StreamStep {
        let readAhead = self.readAhead
        while true {
            let step: StreamStep? = coordinator.update { state in
                let slot = state.board.slots[index]
                if state.board.isComplete { return .stop }
                if slot.writer == .stream || (slot.writer == nil && !slot.isDone && slot.isNeeded) {
                    guard slot.range.lowerBound < state.windowStart + readAhead else { return nil }
                    if slot.writer == nil { _ = state.board.claim(index, by: .stream) }
                    // Hold units ahead too (a chunk's worth, but no more than a fair share of the
                    // download): the first connection is as fast as any worker's, so it is not cut
                    // by the probe at once, and small objects still spread over the workers.
                    let share = state.board.order.count / (settings.concurrency + 1)
                    let runway = Swift.max(1, Swift.min(Int(plan.chunkSize / units.chunkSize), share))
                    for next in (index + 1)..<Swift.min(index + 1 + runway, state.board.slots.count)
                    where state.board.slots[next].range.lowerBound < state.windowStart + readAhead {
                        _ = state.board.claim(next, by: .stream)
                    }
                    let resume = state.board.slots[index].resumeOffset
                    return position < resume ? .skip(resume - position) : .write
                }
                if slot.writer != nil { return .stop }
                return skipUnneeded ? .skip(slot.range.upperBound - position) : .stop
            }
            if let step { return step }
            try await coordinator.wait { state in
                state.board.isComplete || state.board.slots[index].range.lowerBound < state.windowStart + readAhead
            }
        }
    }
}

extension UpstreamError {
    /// Worth another attempt from the last verified byte: a bad or broken answer, a refused
    /// connection. Timeouts, TLS failures and a changed object are not.
    var isRetryable: Bool {
        [.badRangeResponse, .truncated, .connectFailed, .other].contains(kind)
    }

    /// A broken body is a truncation whatever the transport called it.
    var asTruncation: UpstreamError {
        kind == .readTimeout ? self : UpstreamError(.truncated, url: url, message: message)
    }
}
