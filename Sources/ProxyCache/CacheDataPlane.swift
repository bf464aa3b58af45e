import ChunkManifest
import DataPlane
import NIOCore

/// What the cache needs of a data plane: `serve` for bodies (hits, misses stored through the
/// request's `storeFields`, revalidations), and optionally small bodies held in memory. The
/// embedded default is `DataPlane` itself, in-process; a remote xs3lerator speaking the contract
/// headers is another conformance (split mode).
public protocol CacheDataPlane: Sendable {
    func serve(_ request: DataPlaneRequest) async -> DataPlaneResponse
    /// The whole body of a small entry, if memory holds it; never waits.
    func bodyInMemory(_ manifest: Manifest) -> ByteBuffer?
    /// Reads a small entry's body into memory, verified; nil when it cannot be held.
    func loadIntoMemory(_ manifest: Manifest) async -> ByteBuffer?
    /// Counts a hit answered from `bodyInMemory`.
    func countMemoryHit(_ manifest: Manifest)
}

extension CacheDataPlane {
    /// A data plane without memory (a remote one): every body is served.
    public func bodyInMemory(_ manifest: Manifest) -> ByteBuffer? { nil }
    public func loadIntoMemory(_ manifest: Manifest) async -> ByteBuffer? { nil }
    public func countMemoryHit(_ manifest: Manifest) {}
}

/// The embedded default: the data plane in this process.
extension DataPlane: CacheDataPlane {}

extension DataPlaneResponse {
    static let unavailableHeader = "X-Passsage-Data-Plane-Unavailable"

    /// A remote data plane's answer when it cannot be reached: the cache then passes the request
    /// to the origin relay, as if the cache were off.
    public static func dataPlaneUnavailable() -> DataPlaneResponse {
        DataPlaneResponse(status: .badGateway, headers: [unavailableHeader: "true"])
    }

    public var isDataPlaneUnavailable: Bool { headers.first(name: Self.unavailableHeader) != nil }
}
