#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// Logging for the service binaries: swift-log's stream handler on standard error.
public enum LoggingSetup {
    /// Call once, first thing in `run()`, before other threads read the environment.
    public static func bootstrap(verbose: Bool) {
        // Without TZ, glibc's localtime_r stats /etc/localtime for every log line's timestamp: one
        // extra syscall per request. `:/etc/localtime` names the same zone and is read once.
        if getenv("TZ") == nil {
            setenv("TZ", ":/etc/localtime", 0)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .debug : .info
            return handler
        }
    }
}
