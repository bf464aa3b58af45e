import DownloadPlanning

/// How the engine downloads: the knobs of `xs3lerator`'s CLI.
public struct DownloadSettings: Sendable {
    /// Preferred chunk size; grown for very large objects to stay within 10,000 chunks.
    public var chunkSize: Int64
    /// Size of one range request (`--range-size`), made to divide the chunk size; never more
    /// than a chunk. Smaller ranges balance the workers better at the end of a download; each
    /// costs a round trip.
    public var rangeSize: Int64
    /// Most range workers per download (`--http-concurrency`).
    public var concurrency: Int
    /// How far past the client's position chunks may be fetched (`--read-ahead`). Bounds the
    /// temporary space one download uses to about `readAhead + chunkSize`.
    public var readAhead: Int64
    /// Where chunk files live (unlinked at once).
    public var temporaryDirectory: String
    /// Range attempts per chunk before the download falls back to one sequential stream.
    public var rangeAttempts: Int
    /// Size of each read from a chunk file and write to the client.
    public var pieceSize: Int
    public var ramp: ConcurrencyRamp.Settings

    public init(chunkSize: Int64 = 32 << 20, rangeSize: Int64 = 8 << 20, concurrency: Int = 8, readAhead: Int64? = nil,
                temporaryDirectory: String,
                rangeAttempts: Int = 3, pieceSize: Int = 256 << 10, ramp: ConcurrencyRamp.Settings = .init()) {
        self.chunkSize = chunkSize
        self.rangeSize = rangeSize
        self.concurrency = concurrency
        self.readAhead = readAhead ?? Self.defaultReadAhead(chunkSize: chunkSize, concurrency: concurrency)
        self.temporaryDirectory = temporaryDirectory
        self.rangeAttempts = rangeAttempts
        self.pieceSize = pieceSize
        self.ramp = ramp
    }

    /// Room for every worker and the first stream to hold a chunk ahead of the client.
    public static func defaultReadAhead(chunkSize: Int64, concurrency: Int) -> Int64 {
        chunkSize * Int64(concurrency + 1)
    }
}
