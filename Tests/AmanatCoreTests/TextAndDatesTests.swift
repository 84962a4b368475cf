@testable import AmanatCore
import Foundation
import Testing

/// Search folding of Arabic-script text, and dates with Persian digits and the Solar Hijri calendar (issue 12, item 5).
@Suite struct TextAndDatesTests {
    @Test func persianAndArabicSpellingsFoldToOneKey() {
        // Arabic kaf and yeh (as an Arabic keyboard types them) against Persian keheh and Farsi yeh, both ways.
        #expect(TextFolding.matches("شهر کابل", "كابل"))
        #expect(TextFolding.matches("شهر كابل", "کابل"))
        #expect(TextFolding.matches("علی", "علي"))
        #expect(TextFolding.matches("مدرسة", "مدرسه"))
        #expect(TextFolding.matches("مسئول", "مسیول"))
        #expect(TextFolding.matches("أحمد", "احمد"))
        #expect(TextFolding.matches("إسلام", "اسلام"))
        // ZWNJ, tatweel and harakat are ignored.
        #expect(TextFolding.matches("می‌شود", "میشود"))
        #expect(TextFolding.matches("میشود", "می‌شود"))
        #expect(TextFolding.matches("كـــابل", "کابل"))
        #expect(TextFolding.matches("مُحَمَّد", "محمد"))
        // Digits of three scripts are alike.
        #expect(TextFolding.matches("سال ۱۴۰۲", "1402"))
        #expect(TextFolding.matches("year 1402", "١٤٠٢"))
        #expect(TextFolding.matches("HERAT", "herat"))
        // And different words stay different: a broken folding that erased letters would match these.
        #expect(!TextFolding.matches("کابل", "کابول"))
        #expect(!TextFolding.matches("هرات", "کابل"))
        #expect(!TextFolding.matches("1402", "1403"))
    }

    @Test func solarHijriDatesRoundTripThroughTheGregorianStoredForm() throws {
        let now = UInt64(1_780_000_000_000)  // 2026-05-28
        let nowruz = try RecordDates.parse("1403-01-01", field: "incident_date", calendar: .persian, nowMillis: now)
        #expect(nowruz.stored == "2024-03-20")
        let d = try RecordDates.parse("۱۴۰۲-۱۲-۱۸", field: "incident_date", calendar: .persian, nowMillis: now)
        #expect(d.stored == "2024-03-08")
        #expect(d.warnings.isEmpty)
        #expect(RecordDates.solarHijri("2024-03-08") == "1402-12-18")
        // Every day of a year goes there and back.
        var day = Date(timeIntervalSince1970: 1_700_000_000)
        for _ in 0..<400 {
            var g = Calendar(identifier: .gregorian)
            g.timeZone = TimeZone(identifier: "UTC")!
            let c = g.dateComponents([.year, .month, .day], from: day)
            let stored = String(format: "%04ld-%02ld-%02ld", c.year!, c.month!, c.day!)
            let solar = RecordDates.solarHijri(stored)
            #expect(try RecordDates.parse(solar, field: "f", calendar: .persian, nowMillis: now).stored == stored)
            day += 86_400
        }
        // 1402 is not a leap year in the Solar Hijri calendar: Esfand has 29 days.
        #expect(throws: SchemaError.self) {
            try RecordDates.parse("1402-12-30", field: "f", calendar: .persian, nowMillis: now)
        }
    }

    @Test func digitsAreFoldedAndImplausibleDatesWarned() throws {
        let now = UInt64(1_780_000_000_000)
        #expect(try RecordDates.parse("۲۰۲۴-۰۳-۰۸", field: "f", nowMillis: now).stored == "2024-03-08")
        #expect(try RecordDates.parse("٢٠٢٤-٠٣", field: "f", nowMillis: now).stored == "2024-03")
        #expect(
            try RecordDates.parse("2099-12-31", field: "f", nowMillis: now).warnings.first?.contains("future") == true)
        #expect(try RecordDates.parse("1890", field: "f", nowMillis: now).warnings.first?.contains("1900") == true)
        #expect(
            try RecordDates.parse("2026-05", field: "f", nowMillis: now).warnings.isEmpty, "this month is not future")
        // A year that is probably Solar Hijri is a question, not a guess.
        let error = #expect(throws: SchemaError.self) {
            try RecordDates.parse("1402-12-18", field: "f", nowMillis: now)
        }
        #expect(error?.message.contains("--calendar persian") == true)
        #expect(try RecordDates.parse("1402", field: "f", calendar: .gregorian, nowMillis: now).stored == "1402")
        for bad in ["2024-02-30", "2024-13-01", "24-03-08", "2024-3-8", "yesterday"] {
            #expect(throws: SchemaError.self, "\(bad)") { try RecordDates.parse(bad, field: "f", nowMillis: now) }
        }
    }

    @Test func schemaNormalisesNamesConsentAndTagsAndProtectsProvenance() throws {
        #expect(
            try RecordSchema.normalize(kind: "testimony", field: "incident-date", value: "2024-03-08").field
                == "incident_date")
        #expect(
            try RecordSchema.normalize(kind: "testimony", field: "consent", value: "anonymized").value == "anonymised")
        #expect(throws: SchemaError.self) {
            try RecordSchema.normalizeEdit(kind: "testimony", field: "provenance", value: "forged")
        }
        #expect(try RecordSchema.normalizeTag("  Detention ") == "detention")
        #expect(try RecordSchema.normalizeTag("Cafe\u{0301}") == "caf\u{00E9}")
        let comma = #expect(throws: SchemaError.self) { try RecordSchema.normalizeTag("detention, torture") }
        #expect(comma?.message.contains("--add detention --add torture") == true)
    }

    @Test func theFilterJoinsCriteriaWithAndAndRepeatedTagsAsAskedFor() throws {
        let a = RecordView(
            id: try RecordID(Array(repeating: 1, count: 16)), kind: "testimony",
            fields: ["incident_date": "2024-03-08"], conflicts: [:], tags: ["Detention", "education"], isSealed: true)
        let b = RecordView(
            id: try RecordID(Array(repeating: 2, count: 16)), kind: "statement", fields: ["issued_on": "2025-07"],
            conflicts: [:], tags: ["education"], isSealed: false)
        #expect([a, b].filter(RecordFilter(allTags: ["education", "detention"]).matches).map(\.id) == [a.id])
        #expect([a, b].filter(RecordFilter(anyTags: ["detention", "women"]).matches).map(\.id) == [a.id])
        #expect([a, b].filter(RecordFilter(anyTags: ["detention", "education"]).matches).count == 2)
        #expect([a, b].filter(RecordFilter(kind: "statement", ids: [a.id, b.id]).matches).map(\.id) == [b.id])
        #expect(
            [a, b].filter(RecordFilter(since: "2025-07-31").matches).map(\.id) == [b.id], "a partial date's last day")
        #expect([a, b].filter(RecordFilter(until: "2024-03-08").matches).map(\.id) == [a.id])
        #expect(RecordFilter(kind: "testimony", allTags: ["a", "b"]).summary == "kind testimony; all of the tags a, b")
    }
}
