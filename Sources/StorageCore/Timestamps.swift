import HTTPRules

/// The two timestamp forms object stores use, as seconds since 1970 (UTC), without Foundation:
/// ISO 8601 in S3 listings (`2026-12-01T07:45:12.000Z`) and the HTTP date of `Last-Modified`
/// (`Tue, 01 Dec 2026 07:45:12 GMT`, RFC 9110 §5.6.7).
public enum Timestamps {
    /// `2026-12-01T07:45:12Z`, with optional fractional seconds (dropped) and a `Z` or `±hh:mm`
    /// offset (`2026-03-01T12:00:00.123456+00:00`, the original's `stored_at`).
    public static func parseISO8601(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
              let year = number(bytes[0..<4]), let month = number(bytes[5..<7]), let day = number(bytes[8..<10]),
              let hour = number(bytes[11..<13]), let minute = number(bytes[14..<16]), let second = number(bytes[17..<19])
        else { return nil }
        var index = 19
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        }
        var offset: Int64 = 0
        let zone = bytes[index...]
        if zone.elementsEqual([UInt8(ascii: "Z")]) {
            offset = 0
        } else if zone.count == 6, zone.first == UInt8(ascii: "+") || zone.first == UInt8(ascii: "-"),
                  bytes[index + 3] == UInt8(ascii: ":"),
                  let hours = number(bytes[(index + 1)..<(index + 3)]), let minutes = number(bytes[(index + 4)..<(index + 6)]) {
            offset = (hours * 3600 + minutes * 60) * (zone.first == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        return seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second).map { $0 - offset }
    }

    /// `2026-03-05T09:50:00+00:00`: the form the original writes into `stored_at`.
    public static func formatISO8601(_ epoch: Int64) -> String {
        let (year, month, day, hour, minute, second) = civil(epoch)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(hour)):\(two(minute)):\(two(second))+00:00"
    }

    public static func parseHTTPDate(_ text: String) -> Int64? {
        HTTPDate.parse(text)
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(digit - UInt8(ascii: "0"))
        }
        return value
    }

    private static func seconds(year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) -> Int64? {
        CivilTime.seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// (year, month, day, hour, minute, second) in UTC of `epoch` seconds.
    public static func civil(_ epoch: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64) {
        let time = CivilTime.civil(epoch)
        return (time.year, time.month, time.day, time.hour, time.minute, time.second)
    }

    /// Days since 1970-01-01 of a civil date.
    public static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        CivilTime.days(fromCivil: year, month, day)
    }
}
