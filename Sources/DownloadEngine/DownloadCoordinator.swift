import DownloadPlanning
import NIOConcurrencyHelpers

/// What the writers, the readers and the sink of one download share.
struct DownloadState {
    var board: ChunkBoard
    var ramp: ConcurrencyRamp
    /// Set once; every waiter then fails with it.
    var failure: (any Error)?
    /// Who still needs which chunk file, and where the fetch window starts.
    var retention: ChunkRetention
    /// Nothing starting at or past `windowStart + readAhead` is fetched.
    var windowStart: Int64
    /// nil until the probe has answered.
    var rangesUsable: Bool?
    /// Failed range attempts per chunk.
    var rangeFailures: [Int: Int] = [:]
    var files: [Int: TemporaryChunkFile] = [:]
    /// Chunk files closed for good: their bytes are only in the stored copy now.
    var released: Set<Int> = []
    /// Running SHA-256 of each chunk's in-order prefix (keyed downloads only).
    var digests: [Int: ChunkDigest] = [:]
}

/// The state of one download behind a lock, with waiting that cannot miss a wake-up: a
/// condition is checked and its waiter registered under the same lock, and every change
/// re-checks the waiters (the original's notify could be lost between check and wait).
final class DownloadCoordinator: @unchecked Sendable {
    private struct Waiter {
        let id: Int
        let condition: @Sendable (DownloadState) -> Bool
        let continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NIOLock()
    private var state: DownloadState
    private var waiters: [Waiter] = []
    private var nextWaiterID = 0

    init(_ state: DownloadState) {
        self.state = state
    }

    /// Reads or changes the state; waiters whose condition now holds are resumed.
    @discardableResult
    func update<T>(_ body: (inout DownloadState) throws -> T) rethrows -> T {
        var ready: [(CheckedContinuation<Void, any Error>, (any Error)?)] = []
        let result: T = try lock.withLock {
            let value = try body(&state)
            if let failure = state.failure {
                ready = waiters.map { ($0.continuation, failure) }
                waiters.removeAll()
            } else {
                waiters.removeAll { waiter in
                    guard waiter.condition(state) else { return false }
                    ready.append((waiter.continuation, nil))
                    return true
                }
            }
            return value
        }
        for (continuation, error) in ready {
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
        return result
    }

    func read<T>(_ body: (DownloadState) -> T) -> T {
        lock.withLock { body(state) }
    }

    /// Returns once `condition` holds; throws the download's failure, or CancellationError.
    func wait(until condition: @escaping @Sendable (DownloadState) -> Bool) async throws {
        let id: Int = lock.withLock {
            nextWaiterID += 1
            return nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = lock.withLock {
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if condition(state) { return .success(()) }
                    waiters.append(Waiter(id: id, condition: condition, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let cancelled = lock.withLock { () -> CheckedContinuation<Void, any Error>? in
                guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return waiters.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Like `wait(until:)`, but gives up after `timeout` (returns false) so the caller can do
    /// periodic work such as the ramp's time trigger.
    func wait(until condition: @escaping @Sendable (DownloadState) -> Bool, timeout: Duration) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await self.wait(until: condition)
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
