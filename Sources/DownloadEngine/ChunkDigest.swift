import Crypto

/// A chunk's SHA-256 so far: the bytes `0..<hashed` went through `hasher`. Pieces written at
/// exactly `hashed` are hashed as they are written (the first stream writes in order); the rest
/// is read back once when the chunk is complete. `busy` while a writer holds the hasher.
struct ChunkDigest {
    var hasher = SHA256()
    var hashed: Int64 = 0
    var busy = false
}
