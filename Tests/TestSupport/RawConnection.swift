import Foundation

/// A plain TCP connection to 127.0.0.1 for tests that misbehave on purpose: write without
/// reading, trickle bytes, hold a socket open. Every call is bounded by a timeout.
/// Used from one thread at a time (hence unchecked); run its blocking calls with `onThread`.
public final class RawConnection: @unchecked Sendable {
    public let fd: Int32

    /// `timeout` bounds each send and receive call.
    public init(port: Int, timeout: Double = 0.2) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Foundation.close(fd)
            throw HarnessError("connect to \(port) failed")
        }
        setTimeout(SO_SNDTIMEO, seconds: timeout)
        setTimeout(SO_RCVTIMEO, seconds: timeout)
    }

    private var isClosed = false

    deinit {
        if !isClosed { Foundation.close(fd) }
    }

    /// Closes with a reset (SO_LINGER 0) instead of a FIN, as a crashed or killed client would.
    public func reset() {
        guard !isClosed else { return }
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        Foundation.close(fd)
        isClosed = true
    }

    /// Closes normally (FIN).
    public func close() {
        guard !isClosed else { return }
        Foundation.close(fd)
        isClosed = true
    }

    private func setTimeout(_ option: Int32, seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends what the peer takes within the send timeout; returns the number of bytes sent, or
    /// -1 once the peer has closed or reset the connection.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Int {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return (errno == EAGAIN || errno == EWOULDBLOCK) ? offset : -1 }
            if n == 0 { return offset }
            offset += n
        }
        return offset
    }

    public func send(_ text: String) -> Int {
        send(Array(text.utf8))
    }

    /// Writes `bytes` again and again for `seconds` without ever reading; returns the bytes sent.
    public func flood(_ bytes: [UInt8], seconds: Double) -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        var total = 0
        while Date() < deadline {
            let n = send(bytes)
            if n < 0 { break }
            total += n
        }
        return total
    }

    /// Reads until the peer closes or `timeout` seconds pass; returns what arrived and whether the
    /// peer closed.
    public func readAll(timeout: Double) -> (text: String, closed: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return (String(decoding: received, as: UTF8.self), true)   // reset
            }
            received += chunk[0..<n]
        }
        return (String(decoding: received, as: UTF8.self), false)
    }
}

extension RawConnection {
    /// Reads until `marker` has arrived (returning everything read), the peer closes, or `timeout`
    /// seconds pass.
    public func readUntil(_ marker: String, timeout: Double) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var received = [UInt8]()
        var byte = [UInt8](repeating: 0, count: 1)
        let wanted = Array(marker.utf8)
        while Date() < deadline, !received.ends(with: wanted) {
            let n = byte.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 1, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                break
            }
            received.append(byte[0])
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Reads until the peer closes, or until one receive waits the whole receive timeout.
    public func readUntilQuiet(timeout: Double) -> String {
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += chunk[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}

extension Array where Element: Equatable {
    fileprivate func ends(with suffix: [Element]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

/// User plus system CPU time of a process in seconds, from /proc/<pid>/stat.
public func cpuSeconds(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (user + system) / ticks
}
