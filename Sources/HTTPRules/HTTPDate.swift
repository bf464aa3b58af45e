/// HTTP dates (RFC 9110 §5.6.7) as seconds since 1970 (UTC). Parses the three forms recipients must
/// accept (IMF-fixdate, RFC 850, asctime); formats IMF-fixdate. No Foundation: it runs per request.
public enum HTTPDate {
    private static let months: [String] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let weekdays: [String] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]   // 1970-01-01 was a Thursday

    /// The time `text` names, or nil if it is no HTTP date.
    ///
    /// `now` only matters for RFC 850's two-digit years: one that would lie more than 50 years in
    /// the future is taken from the past century (RFC 9110 §5.6.7). Without it, years are read
    /// relative to 2000 (`00`–`50` are 20xx).
    public static func parse(_ text: String, now: Int64? = nil) -> Int64? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        switch parts.count {
        case 6:   // Sun, 06 Nov 1994 08:49:37 GMT
            guard parts[0].hasSuffix(","), parts[5] == "GMT", parts[1].count == 2, parts[3].count == 4,
                  let day = digits(parts[1]), let month = month(parts[2]), let year = digits(parts[3]) else { return nil }
            return seconds(year: year, month: month, day: day, time: parts[4])
        case 4:   // Sunday, 06-Nov-94 08:49:37 GMT
            guard parts[0].hasSuffix(","), parts[3] == "GMT" else { return nil }
            let date = parts[1].split(separator: "-", omittingEmptySubsequences: false)
            guard date.count == 3, date[0].count == 2, date[2].count == 2, let day = digits(date[0]),
                  let month = month(date[1]), let shortYear = digits(date[2]) else { return nil }
            let thisYear = CivilTime.civil(now ?? 946_684_800).year
            var year = thisYear - thisYear % 100 + shortYear
            if year > thisYear + 50 { year -= 100 }
            return seconds(year: year, month: month, day: day, time: parts[2])
        case 5:   // Sun Nov  6 08:49:37 1994
            guard parts[4].count == 4, let month = month(parts[1]), let day = digits(parts[2]), parts[2].count <= 2,
                  let year = digits(parts[4]) else { return nil }
            return seconds(year: year, month: month, day: day, time: parts[3])
        default:
            return nil
        }
    }

    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func format(_ epoch: Int64) -> String {
        let (year, month, day, hour, minute, second) = CivilTime.civil(epoch)
        let days = epoch >= 0 ? epoch / 86400 : (epoch - 86399) / 86400
        let weekday = weekdays[Int(((days % 7) + 7) % 7)]
        return "\(weekday), \(two(day)) \(months[Int(month) - 1]) \(year) \(two(hour)):\(two(minute)):\(two(second)) GMT"
    }

    private static func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }

    private static func month(_ text: Substring) -> Int64? {
        months.firstIndex(where: { $0 == text }).map { Int64($0) + 1 }
    }

    private static func digits(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 4, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }

    private static func seconds(year: Int64, month: Int64, day: Int64, time: Substring) -> Int64? {
        let clock = time.split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, clock.allSatisfy({ $0.count == 2 }), let hour = digits(clock[0]),
              let minute = digits(clock[1]), let second = digits(clock[2]) else { return nil }
        return CivilTime.seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }
}

/// Civil (proleptic Gregorian, UTC) time and seconds since 1970, without Foundation: Howard
/// Hinnant's civil-from-days and days-from-civil algorithms.
public enum CivilTime {
    /// The civil time of `epoch` seconds.
    public static func civil(_ epoch: Int64) -> (year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) {
        let days = epoch >= 0 ? epoch / 86400 : (epoch - 86399) / 86400
        let secs = epoch - days * 86400
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
    }

    /// Days since 1970-01-01 of a civil date.
    public static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Seconds since 1970 of a civil time, or nil when a field is out of range.
    public static func seconds(year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) -> Int64? {
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60 else { return nil }
        return days(fromCivil: year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    }
}
