/// Decides how many range workers may run, from the throughput they achieve. It starts with a
/// few and, every `interval` seconds, compares the bytes the workers moved with the previous
/// level: it doubles while a doubling still raises throughput by at least `gainThreshold`, and
/// settles (freezes) when it stops paying, at the maximum, or when more than `errorCeiling` of
/// the level's chunk attempts failed (then it also steps back). Origins differ: some scale
/// linearly with streams, some regress, some refuse beyond a cap.
///
/// Bytes are counted as they arrive rather than per completed chunk (the original waited for 4
/// whole chunks, 6.7 s at 32 MiB and 20 MB/s per connection), so a capped origin reaches full
/// parallelism after one interval. Pure: time is passed in.
public struct ConcurrencyRamp: Sendable, Hashable {
    public struct Settings: Sendable, Hashable {
        public var initial: Int
        /// Seconds per level before it is judged.
        public var interval: Double
        public var gainThreshold: Double
        public var errorCeiling: Double

        public init(initial: Int = 4, interval: Double = 0.5, gainThreshold: Double = 0.5, errorCeiling: Double = 0.1) {
            self.initial = initial
            self.interval = interval
            self.gainThreshold = gainThreshold
            self.errorCeiling = errorCeiling
        }
    }

    public let maximum: Int
    public let settings: Settings
    /// Workers with an id below this may take chunks.
    public private(set) var active: Int
    public private(set) var isFrozen = false
    private var levelStart: Double
    private var levelBytes: Int64 = 0
    private var levelChunks = 0
    private var levelErrors = 0
    private var previousRate: Double?

    public init(maximum: Int, settings: Settings = Settings(), now: Double) {
        self.maximum = Swift.max(1, maximum)
        self.settings = settings
        self.active = Swift.max(1, Swift.min(settings.initial, self.maximum))
        self.levelStart = now
    }

    public func admits(worker id: Int) -> Bool { id < active }

    /// Bytes a range worker has written.
    public mutating func transferred(_ bytes: Int64, now: Double) {
        levelBytes += bytes
        evaluate(now: now)
    }

    public mutating func chunkCompleted(now: Double) {
        levelChunks += 1
        evaluate(now: now)
    }

    public mutating func chunkFailed(now: Double) {
        levelErrors += 1
        let attempts = levelChunks + levelErrors
        guard !isFrozen, attempts >= 2, Double(levelErrors) / Double(attempts) > settings.errorCeiling else { return }
        // Too many failures at this level: step back and stay there.
        active = Swift.max(Swift.min(settings.initial, maximum), active / 2)
        isFrozen = true
    }

    /// Judges the level if its interval is over (called while workers wait, too).
    public mutating func tick(now: Double) {
        evaluate(now: now)
    }

    private mutating func evaluate(now: Double) {
        let elapsed = now - levelStart
        guard !isFrozen, elapsed >= settings.interval else { return }
        let rate = Double(levelBytes) / elapsed
        let attempts = levelChunks + levelErrors
        let errorRate = attempts == 0 ? 0 : Double(levelErrors) / Double(attempts)
        startLevel(now)
        if errorRate > settings.errorCeiling || active >= maximum {
            isFrozen = true
            return
        }
        if let previousRate, (rate - previousRate) / previousRate < settings.gainThreshold {
            isFrozen = true
            return
        }
        // A level that moved nothing yet (slow first bytes) is no baseline.
        if rate > 0 { previousRate = rate }
        active = Swift.min(active * 2, maximum)
    }

    private mutating func startLevel(_ now: Double) {
        levelStart = now
        levelBytes = 0
        levelChunks = 0
        levelErrors = 0
    }
}
