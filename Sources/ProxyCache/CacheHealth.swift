import Logging
import NIOConcurrencyHelpers

/// One dependency's availability as a value: down from its first failure until a call succeeds.
/// While down, calls are not attempted until `retryAt` (so a dead dependency costs a request
/// nothing, not a timeout each); after it, one call probes it again.
struct Availability: Sendable, Equatable {
    private(set) var downSince: ContinuousClock.Instant?
    private(set) var retryAt: ContinuousClock.Instant?
    private(set) var lastError = ""
    /// Requests passed through (uncached) because this dependency was down, since start.
    private(set) var passedThrough = 0

    var isDown: Bool { downSince != nil }

    /// Whether a call may be made at `now`. While down, one call is let through per `retryAfter`
    /// (the probe); the others pass through until it answers.
    mutating func allows(at now: ContinuousClock.Instant, retryAfter: Duration) -> Bool {
        guard let retryAt else { return true }
        guard now >= retryAt else { return false }
        self.retryAt = now + retryAfter
        return true
    }

    /// Records a failed call; true when this is the change from up to down.
    mutating func failed(at now: ContinuousClock.Instant, retryAfter: Duration, error: String) -> Bool {
        let wentDown = downSince == nil
        if wentDown { downSince = now }
        retryAt = now + retryAfter
        lastError = String(error.prefix(200))
        return wentDown
    }

    /// Records a successful call; the down time when this is the change from down to up.
    mutating func succeeded(at now: ContinuousClock.Instant) -> Duration? {
        defer {
            downSince = nil
            retryAt = nil
        }
        return downSince.map { now - $0 }
    }

    mutating func countPassThrough() { passedThrough += 1 }
}

/// The cache's dependencies as `/health` reports them: the metadata store and the data plane.
/// Each one down is passed through (the proxy keeps answering, uncached), counted, logged once
/// when it goes down and once when it comes back, and probed again every `retryAfter`.
public final class CacheHealth: Sendable {
    public enum Dependency: String, Sendable, CaseIterable {
        case metadata = "metadata store"
        case dataPlane = "data plane"
    }

    private let states = NIOLockedValueBox<[Dependency: Availability]>([:])
    private let retryAfter: Duration
    private let logger: Logger

    public init(retryAfter: Duration = .seconds(1), logger: Logger) {
        self.retryAfter = retryAfter
        self.logger = logger
    }

    /// Whether `dependency` may be called now: up, or due for a probe.
    public func allows(_ dependency: Dependency) -> Bool {
        let now = ContinuousClock.now
        return states.withLockedValue { $0[dependency, default: Availability()].allows(at: now, retryAfter: retryAfter) }
    }

    public func failed(_ dependency: Dependency, error: String) {
        let now = ContinuousClock.now
        let wentDown = states.withLockedValue { $0[dependency, default: Availability()].failed(at: now, retryAfter: retryAfter, error: error) }
        if wentDown {
            logger.warning("cache \(dependency.rawValue) unavailable: passing requests through uncached",
                           metadata: ["error": "\(error.prefix(200))"])
        }
    }

    public func succeeded(_ dependency: Dependency) {
        let now = ContinuousClock.now
        let result = states.withLockedValue { states -> (Duration, Int)? in
            guard states[dependency]?.isDown == true else { return nil }
            let down = states[dependency]!.succeeded(at: now)
            return down.map { ($0, states[dependency]!.passedThrough) }
        }
        if let (down, passed) = result {
            logger.notice("cache \(dependency.rawValue) available again after \(down.components.seconds) s",
                          metadata: ["passed-through-total": "\(passed)"])
        }
    }

    /// Counts a request passed through because `dependency` is down.
    public func passedThrough(_ dependency: Dependency) {
        states.withLockedValue { $0[dependency, default: Availability()].countPassThrough() }
    }

    /// Requests passed through because of `dependency`, since start.
    public func passThroughCount(_ dependency: Dependency) -> Int {
        states.withLockedValue { $0[dependency]?.passedThrough ?? 0 }
    }

    /// One line per dependency that is down, for `/health`.
    public func degradations() -> [String] {
        let now = ContinuousClock.now
        let snapshot = states.withLockedValue { $0 }
        return Dependency.allCases.compactMap { dependency in
            guard let state = snapshot[dependency], let since = state.downSince else { return nil }
            return "cache \(dependency.rawValue) unavailable for \((now - since).components.seconds) s (\(state.lastError)); "
                + "\(state.passedThrough) requests passed through uncached since start"
        }
    }
}
