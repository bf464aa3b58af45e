import NIOHTTP1
import Synchronization

/// Request ids tie a client response to log lines and upstream requests.
public enum RequestID {
    public static let header = "X-Request-Id"

    /// The client's `X-Request-Id` if it is sane (1–128 visible ASCII characters), else a new one.
    public static func resolve(from headers: HTTPHeaders) -> String {
        if let given = headers.first(name: RequestID.header), isAcceptable(given) {
            return given
        }
        return generate()
    }

    /// 32 hex digits, unique within the process and unlike those of other processes: a random
    /// per-process half and a scrambled counter. (Two `getrandom` calls per request cost more than
    /// the rest of the id handling together.)
    public static func generate() -> String {
        let sequence = counter.add(1, ordering: .relaxed).newValue
        return hex16(processPart) + hex16(scramble(sequence))
    }

    private static let processPart: UInt64 = .random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(0)

    /// splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
    static func scramble(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func isAcceptable(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 128 && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    private static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
