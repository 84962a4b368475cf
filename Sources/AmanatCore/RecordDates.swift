import Foundation

/// Dates as people in Afghanistan type them: with Persian (۰–۹) or Arabic-Indic (٠–٩) digits, and in the Solar
/// Hijri calendar (`1402-12-18`); stored as the Gregorian `YYYY-MM-DD` (or `YYYY-MM`, `YYYY`) every replica sorts
/// and compares alike.
///
/// The calendar arithmetic is Foundation's (ICU's `persian` calendar); only the digit folding is done by hand,
/// because it is a fixed table of twenty code points (``TextFolding/asciiDigits(_:)``).
public enum RecordDates {
    /// How a typed date is read.
    public enum Calendar: String, Sendable, CaseIterable {
        /// Gregorian, except that a year from 1300 to 1499 is refused with a question: it is probably Solar Hijri.
        case automatic
        /// Always Gregorian (a year in the 1300s–1400s is taken as it is).
        case gregorian
        /// Solar Hijri (the Afghan and Iranian civil calendar).
        case persian
    }

    /// A parsed date: its stored Gregorian form and any warnings (a date in the future, or before 1900).
    public struct Parsed: Equatable, Sendable {
        public var stored: String
        public var warnings: [String]
    }

    static let gregorian: Foundation.Calendar = {
        var c = Foundation.Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    static let persian: Foundation.Calendar = {
        var c = Foundation.Calendar(identifier: .persian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    /// Reads `text` as a date for `field`; throws a ``SchemaError`` that shows the accepted forms.
    public static func parse(
        _ text: String, field: String, calendar: Calendar = .automatic,
        nowMillis: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)
    ) throws -> Parsed {
        let ascii = TextFolding.asciiDigits(text.trimmingCharacters(in: .whitespaces))
            .replacingOccurrences(of: "/", with: "-")
        let usage =
            "\"\(text)\" is not a date for \(field): use YYYY-MM-DD (or YYYY-MM, YYYY), in Gregorian or, with --calendar persian, Solar Hijri (1402-12-18); Persian digits are fine."
        let parts = ascii.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count), parts[0].count == 4, parts.dropFirst().allSatisfy({ $0.count == 2 }),
            parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }), let year = Int(parts[0])
        else { throw SchemaError(usage) }
        let month = parts.count >= 2 ? Int(parts[1]) : nil
        let day = parts.count == 3 ? Int(parts[2]) : nil
        let solar: Bool
        switch calendar {
        case .persian: solar = true
        case .gregorian: solar = false
        case .automatic:
            if (1300...1499).contains(year) {
                throw SchemaError(
                    "\"\(text)\" looks like a Solar Hijri date: give --calendar persian to read it so, or --calendar gregorian if it really is the year \(year)."
                )
            }
            solar = false
        }
        var stored: String
        if solar {
            guard let month, let day else {
                throw SchemaError(
                    "\"\(text)\" is a partial Solar Hijri date: give the day too (YYYY-MM-DD), so it can be stored as a Gregorian date."
                )
            }
            guard let date = exactDate(persian, year: year, month: month, day: day) else {
                throw SchemaError("\"\(text)\" is not a day of the Solar Hijri calendar.")
            }
            let g = gregorian.dateComponents([.year, .month, .day], from: date)
            stored = ymd(g.year!, g.month!, g.day!)
        } else {
            if let month, !(1...12).contains(month) { throw SchemaError(usage) }
            if let month, let day, exactDate(gregorian, year: year, month: month, day: day) == nil {
                throw SchemaError(usage)
            }
            stored = ascii
        }
        return Parsed(stored: stored, warnings: warnings(stored, nowMillis: nowMillis))
    }

    /// `YYYY-MM-DD` with zero padding.
    static func ymd(_ year: Int, _ month: Int, _ day: Int) -> String {
        func pad(_ n: Int, _ width: Int) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    /// The date in `calendar` for (year, month, day), or nil if that day does not exist there.
    static func exactDate(_ calendar: Foundation.Calendar, year: Int, month: Int, day: Int) -> Date? {
        let components = DateComponents(year: year, month: month, day: day)
        guard year > 0, let date = calendar.date(from: components) else { return nil }
        let back = calendar.dateComponents([.year, .month, .day], from: date)
        return back.year == year && back.month == month && back.day == day ? date : nil
    }

    /// Warnings for a stored date that is probably a typing mistake: after today, or before 1900.
    static func warnings(_ stored: String, nowMillis: UInt64) -> [String] {
        let parts = stored.split(separator: "-").compactMap { Int($0) }
        guard let year = parts.first else { return [] }
        if year < 1900 { return ["\(stored) is before 1900: check the year."] }
        let today = gregorian.dateComponents(
            [.year, .month, .day], from: Date(timeIntervalSince1970: Double(nowMillis) / 1000))
        let now = [today.year!, today.month!, today.day!]
        // A partial date is in the future only if its first day is.
        if parts.lexicographicallyPrecedes(now) || parts == Array(now.prefix(parts.count)) { return [] }
        return ["\(stored) is in the future: check the date."]
    }

    /// A stored Gregorian date shown in the Solar Hijri calendar (`1402-12-18`), with Latin digits; a partial date
    /// (YYYY-MM, YYYY) or anything that is not a stored date is returned as it is.
    public static func solarHijri(_ stored: String) -> String {
        let parts = stored.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, stored.count == 10,
            let date = exactDate(gregorian, year: parts[0], month: parts[1], day: parts[2])
        else { return stored }
        let p = persian.dateComponents([.year, .month, .day], from: date)
        return ymd(p.year!, p.month!, p.day!)
    }
}
