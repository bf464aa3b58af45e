/// Bounded retries with exponential backoff and full jitter, shared by the S3 and Elasticsearch
/// clients. Pure: the caller supplies the random source and does the sleeping.
public struct RetryPolicy: Sendable, Hashable {
    /// Total attempts, the first one included.
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// No new attempt starts once this much time has passed since the first one.
    public var totalBudget: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(100),
                maxDelay: Duration = .seconds(5), totalBudget: Duration = .seconds(30)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.totalBudget = totalBudget
    }

    public static let none = RetryPolicy(maxAttempts: 1)

    /// The delay before attempt `attempt + 1` (attempt counts from 1), or nil if no retry is
    /// allowed: attempts used up, or the delay would end past the budget. `unitRandom` is in [0, 1).
    public func delay(afterAttempt attempt: Int, elapsed: Duration, unitRandom: Double) -> Duration? {
        guard attempt < maxAttempts else { return nil }
        let exponent = min(attempt - 1, 30)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        let jittered = ceiling * max(0, min(unitRandom, 1))
        guard elapsed + jittered < totalBudget else { return nil }
        return jittered
    }
}

/// Runs `operation` until it succeeds, it throws an error `isRetryable` rejects, or `policy` says stop.
/// The last error is rethrown as is.
public func withRetries<T: Sendable>(
    _ policy: RetryPolicy,
    isRetryable: @Sendable (any Error) -> Bool,
    operation: (_ attempt: Int) async throws -> T
) async throws -> T {
    let clock = ContinuousClock()
    let start = clock.now
    var attempt = 1
    while true {
        do {
            return try await operation(attempt)
        } catch {
            guard isRetryable(error),
                  let pause = policy.delay(afterAttempt: attempt, elapsed: start.duration(to: clock.now),
                                           unitRandom: Double.random(in: 0..<1)) else { throw error }
            try await Task.sleep(for: pause)
            attempt += 1
        }
    }
}
