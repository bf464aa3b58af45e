/// Decides how many range workers may run, from the throughput they achieve. Starts with a few,
/// doubles while each doubling still raises throughput by at least `gainThreshold`, and settles
/// (freezes) when it stops paying, at the maximum, or when errors pass `errorCeiling` (then it
/// also steps back). A level that completes nothing for `timeTrigger` seconds doubles anyway:
/// slow origins need more streams before a window can even complete. Pure: time is passed in.
public struct ConcurrencyRamp: Sendable, Hashable {
    public struct Settings: Sendable, Hashable {
        public var initial: Int
        /// Completed chunks per evaluation.
        public var window: Int
        public var gainThreshold: Double
        public var errorCeiling: Double
        public var timeTrigger: Double

        public init(initial: Int = 4, window: Int = 4, gainThreshold: Double = 0.5, errorCeiling: Double = 0.1,
                    timeTrigger: Double = 5) {
            self.initial = initial
            self.window = window
            self.gainThreshold = gainThreshold
            self.errorCeiling = errorCeiling
            self.timeTrigger = timeTrigger
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

    public mutating func chunkCompleted(bytes: Int64, now: Double) {
        levelBytes += bytes
        levelChunks += 1
        guard !isFrozen, levelChunks >= settings.window else { return }
        let elapsed = now - levelStart
        guard elapsed >= 0.001 else { return }
        let rate = Double(levelBytes) / elapsed
        let errorRate = Double(levelErrors) / Double(levelChunks + levelErrors)
        startLevel(now)
        if errorRate > settings.errorCeiling || active >= maximum {
            isFrozen = true
            return
        }
        if let previousRate, previousRate > 0, (rate - previousRate) / previousRate < settings.gainThreshold {
            isFrozen = true
            return
        }
        previousRate = rate
        active = Swift.min(active * 2, maximum)
    }

    public mutating func chunkFailed(now: Double) {
        levelErrors += 1
        let attempts = levelChunks + levelErrors
        guard !isFrozen, attempts >= 2, Double(levelErrors) / Double(attempts) > settings.errorCeiling else { return }
        // Too many failures at this level: step back and stay there.
        active = Swift.max(Swift.min(settings.initial, maximum), active / 2)
        isFrozen = true
    }

    /// Called while workers wait: a level that completed nothing for `timeTrigger` doubles.
    public mutating func tick(now: Double) {
        guard !isFrozen, levelChunks == 0, active < maximum, now - levelStart >= settings.timeTrigger else { return }
        active = Swift.min(active * 2, maximum)
        startLevel(now)
    }

    private mutating func startLevel(_ now: Double) {
        levelStart = now
        levelBytes = 0
        levelChunks = 0
        levelErrors = 0
    }
}
