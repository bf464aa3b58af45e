/// Human byte sizes as the CLI takes them. `KiB`, `MiB`, `GiB`, `TiB` are binary (powers of
/// 1024); `k`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB` are decimal (powers of 1000), as the original
/// parsed them; a bare number or a `B` suffix is bytes. Case-insensitive; spaces are allowed
/// between the number and the unit.
public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.filter { $0 != " " && $0 != "\t" }.lowercased()
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int64(digits) else { return nil }
        let multiplier: Int64
        switch trimmed.dropFirst(digits.count) {
        case "", "b": multiplier = 1
        case "k", "kb": multiplier = 1_000
        case "m", "mb": multiplier = 1_000_000
        case "g", "gb": multiplier = 1_000_000_000
        case "t", "tb": multiplier = 1_000_000_000_000
        case "kib": multiplier = 1 << 10
        case "mib": multiplier = 1 << 20
        case "gib": multiplier = 1 << 30
        case "tib": multiplier = 1 << 40
        default: return nil
        }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// `33554432` → `32 MiB`; exact binary units where they fit, else bytes.
    public static func describe(_ bytes: Int64) -> String {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes >= (1 << shift) && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift) \(unit)"
        }
        return "\(bytes) bytes"
    }
}
