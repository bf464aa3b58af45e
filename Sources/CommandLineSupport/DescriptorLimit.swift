#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit. Every client and upstream connection is a descriptor, and the
/// usual soft default (1024) is far below what a busy proxy needs, so services raise it to the hard
/// limit at start-up.
public struct DescriptorLimit: Sendable, Equatable {
    public let soft: Int
    public let hard: Int
    /// The soft limit before `raiseToHard`.
    public let previousSoft: Int

    /// Raises the soft limit to the hard one where allowed; reports what is in force afterwards.
    public static func raiseToHard() -> DescriptorLimit {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else {
            return DescriptorLimit(soft: 1024, hard: 1024, previousSoft: 1024)
        }
        let previous = limits.rlim_cur
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                limits = raised
            }
        }
        return DescriptorLimit(soft: clamp(limits.rlim_cur), hard: clamp(limits.rlim_max), previousSoft: clamp(previous))
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value)   // RLIM_INFINITY included
    }
}
