import NIOConcurrencyHelpers

/// How many range workers may fetch at once across all downloads of the service. Every upstream
/// connection costs buffers (about 2–3 MiB each under load, in async-http-client, NIO and the
/// allocator), so without a global cap memory would grow with the number of clients. Each
/// download's first stream and its probe worker do not count: a download always makes progress.
/// Waiters are served in order.
public final class WorkerBudget: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID = 0
    }

    public let capacity: Int
    private let state: NIOLockedValueBox<State>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.state = NIOLockedValueBox(State(available: max(1, capacity)))
    }

    /// Workers fetching right now.
    public var inUse: Int { capacity - state.withLockedValue { $0.available } }

    /// Waits for a slot; throws CancellationError if the task is cancelled while waiting.
    public func acquire() async throws {
        let id: Int = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted: Bool? = state.withLockedValue { state in
                    if Task.isCancelled { return nil }
                    if state.available > 0 && state.waiters.isEmpty {
                        state.available -= 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                switch granted {
                case true?: continuation.resume()
                case nil: continuation.resume(throwing: CancellationError())
                case false?: break
                }
            }
        } onCancel: {
            let cancelled = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Returns a slot; the longest waiter gets it.
    public func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.available = min(capacity, state.available + 1)
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
