import NIOConcurrencyHelpers

/// Which keys have a download in flight, as plain values: the decisions of request collapsing,
/// tested without I/O. A key is claimed **before** its upstream request is sent, so a second
/// request never slips in between (the original's placeholder window, bug 12); it waits until
/// the first one's download exists, then joins it, or goes upstream itself if the first one's
/// answer was not cacheable.
struct InFlightTable<Fill>: Sendable where Fill: Sendable & AnyObject {
    enum Entry {
        /// The creator is asking upstream; these waiters join once it knows.
        case starting(waiters: [Int])
        case active(Fill)
    }

    enum Claim {
        /// No download for the key: the caller creates it, and must `publish` or `abandon`.
        case create
        /// A download is being started: wait (the id is the waiter's).
        case wait(Int)
        case join(Fill)
    }

    private(set) var entries: [String: Entry] = [:]
    private var nextWaiter = 0

    mutating func claim(_ key: String) -> Claim {
        switch entries[key] {
        case nil:
            entries[key] = .starting(waiters: [])
            return .create
        case .starting(var waiters)?:
            nextWaiter += 1
            waiters.append(nextWaiter)
            entries[key] = .starting(waiters: waiters)
            return .wait(nextWaiter)
        case .active(let fill)?:
            return .join(fill)
        }
    }

    /// The creator's download exists: returns the waiters, who join it.
    mutating func publish(_ key: String, _ fill: Fill) -> [Int] {
        guard case .starting(let waiters)? = entries[key] else { return [] }
        entries[key] = .active(fill)
        return waiters
    }

    /// The creator got nothing to share (an error, a redirect, an uncacheable body): the key is
    /// free again; returns the waiters, who go upstream themselves.
    mutating func abandon(_ key: String) -> [Int] {
        guard case .starting(let waiters)? = entries[key] else { return [] }
        entries[key] = nil
        return waiters
    }

    /// A waiter gave up (its client left); returns whether it was still waiting.
    mutating func cancelWait(_ key: String, _ id: Int) -> Bool {
        guard case .starting(let waiters)? = entries[key], waiters.contains(id) else { return false }
        entries[key] = .starting(waiters: waiters.filter { $0 != id })
        return true
    }

    /// The download is over (cached or failed): later requests look at the cache again.
    mutating func finish(_ key: String, _ fill: Fill) {
        if case .active(let current)? = entries[key], current === fill { entries[key] = nil }
    }

    /// The download in flight for `key`, if there is one (for manifest aliases).
    func active(_ key: String) -> Fill? {
        if case .active(let fill)? = entries[key] { return fill }
        return nil
    }
}

/// `InFlightTable` behind a lock, with waiting.
final class InFlightRegistry<Fill>: Sendable where Fill: Sendable & AnyObject {
    enum Outcome {
        case create
        case join(Fill)
        /// The creator had nothing to share; go upstream without collapsing.
        case alone
    }

    private struct State: Sendable {
        var table = InFlightTable<Fill>()
        var continuations: [Int: CheckedContinuation<Fill?, Never>] = [:]
        /// Answers that came before their waiter had registered its continuation.
        var early: [Int: Fill?] = [:]

        mutating func resume(_ id: Int, with fill: Fill?) -> (CheckedContinuation<Fill?, Never>, Fill?)? {
            if let continuation = continuations.removeValue(forKey: id) { return (continuation, fill) }
            early[id] = fill
            return nil
        }
    }

    private let state = NIOLockedValueBox(State())

    func claim(_ key: String) async -> Outcome {
        switch state.withLockedValue({ $0.table.claim(key) }) {
        case .create: return .create
        case .join(let fill): return .join(fill)
        case .wait(let id):
            let fill: Fill? = await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = state.withLockedValue { state -> Fill?? in
                        if let answer = state.early.removeValue(forKey: id) { return .some(answer) }
                        state.continuations[id] = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                let pending = self.state.withLockedValue { state in
                    // Already answered: the answer is delivered (or parked in `early`) as is.
                    state.table.cancelWait(key, id) ? state.resume(id, with: nil) : nil
                }
                pending.map { $0.0.resume(returning: $0.1) }
            }
            return fill.map { .join($0) } ?? .alone
        }
    }

    func publish(_ key: String, _ fill: Fill) {
        let ready = state.withLockedValue { state in
            state.table.publish(key, fill).compactMap { state.resume($0, with: fill) }
        }
        for (continuation, fill) in ready { continuation.resume(returning: fill) }
    }

    func abandon(_ key: String) {
        let ready = state.withLockedValue { state in
            state.table.abandon(key).compactMap { state.resume($0, with: nil) }
        }
        for (continuation, fill) in ready { continuation.resume(returning: fill) }
    }

    func finish(_ key: String, _ fill: Fill) {
        state.withLockedValue { $0.table.finish(key, fill) }
    }

    func active(_ key: String) -> Fill? {
        state.withLockedValue { $0.table.active(key) }
    }

    /// Downloads being cached right now.
    var activeCount: Int {
        state.withLockedValue { state in
            state.table.entries.values.filter { if case .active = $0 { true } else { false } }.count
        }
    }
}
