import HTTPRules

/// The two timestamp forms object stores use, as seconds since 1970 (UTC), without Foundation:
/// ISO 8601 in S3 listings (`2026-12-01T07:45:12.000Z`) and the HTTP date of `Last-Modified`
/// (`Tue, 01 Dec 2026 07:45:12 GMT`, RFC 9110 §5.6.7).
public enum Timestamps {
    public static func parseISO8601(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes.last == UInt8(ascii: "Z"),
              let year = number(bytes[0..<4]), let month = number(bytes[5..<7]), let day = number(bytes[8..<10]),
              let hour = number(bytes[11..<13]), let minute = number(bytes[14..<16]), let second = number(bytes[17..<19])
        else { return nil }
        return seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
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
