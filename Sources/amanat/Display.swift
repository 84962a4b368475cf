import AmanatCore
import Foundation

/// How dates and times are shown to a person: `AMANAT_CALENDAR=persian` shows record dates in the Solar Hijri
/// calendar (with the Gregorian date beside them), `AMANAT_TIMEZONE` (an IANA name such as `Asia/Kabul`; default:
/// the system's) the zone change times are shown in. `--json` always keeps the stored Gregorian date and UTC time.
enum Display {
    static var persianCalendar: Bool {
        ProcessInfo.processInfo.environment["AMANAT_CALENDAR"]?.lowercased() == "persian"
    }

    /// The zone from `AMANAT_TIMEZONE`, else the system's; an unknown name falls back to UTC, said once.
    static let timeZone: TimeZone = {
        if let name = ProcessInfo.processInfo.environment["AMANAT_TIMEZONE"], !name.isEmpty {
            if let zone = TimeZone(identifier: name) { return zone }
            note("Warning: AMANAT_TIMEZONE=\(name) is not a time zone name (like Asia/Kabul); times are shown in UTC.")
            return TimeZone(identifier: "UTC")!
        }
        return TimeZone.current
    }()

    /// A stored date as this person reads it: `1402-12-18 (2024-03-08)` with the Persian calendar, else as stored.
    static func date(_ stored: String) -> String {
        guard persianCalendar else { return stored }
        let solar = RecordDates.solarHijri(stored)
        return solar == stored ? stored : "\(solar) (\(stored))"
    }

    /// Integer milliseconds since 1970 as `2024-03-08T14:05:09.123+04:30` in ``timeZone`` (the Solar Hijri date
    /// with `AMANAT_CALENDAR=persian`), or the raw milliseconds beyond the year 9999 (a hostile stamp).
    static func time(millis: UInt64) -> String {
        guard millis <= 253_402_300_799_999 else { return "time \(millis) ms" }
        let date = Date(timeIntervalSince1970: TimeInterval(millis / 1000))
        var calendar = Calendar(identifier: persianCalendar ? .persian : .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ n: Int?, _ width: Int = 2) -> String {
            let digits = String(n ?? 0)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let offset = timeZone.secondsFromGMT(for: date)
        let sign = offset < 0 ? "-" : "+"
        let zone = offset == 0 ? "Z" : "\(sign)\(pad(abs(offset) / 3600)):\(pad(abs(offset) % 3600 / 60))"
        // ISO 8601 with the zone's offset (`Z` for UTC), milliseconds exact (integer arithmetic, no Double).
        return "\(pad(c.year, 4))-\(pad(c.month))-\(pad(c.day))T\(pad(c.hour)):\(pad(c.minute)):\(pad(c.second))."
            + pad(Int(millis % 1000), 3) + zone
    }
}
