import Foundation
import Testing

/// The traps of a documenter's day, each rebuilt through the command line (issue 12, items 3 to 7).
@Suite struct DocumenterDayTests {
    func testimony(_ cli: CLIRunner, _ args: [String], narrative: String = "n") throws -> String {
        let r = try cli.run(["add", "testimony", "--narrative-file", "-"] + args, stdin: narrative)
        guard r.status == 0 else { throw CLIFailure(description: "add \(args): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func smallTraps() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try testimony(cli, ["--witness", "W-023", "--consent", "anonymized", "--location", "Kabul"])
        var record = try #require(try cli.list().first)
        #expect((record["fields"] as? [String: String])?["consent"] == "anonymised", "anonymized is accepted")

        // Field names take - and _.
        #expect(try cli.run(["edit", id, "--set", "incident-date=2024-03-08"]).status == 0)
        record = try #require(try cli.list().first)
        #expect((record["fields"] as? [String: String])?["incident_date"] == "2024-03-08")
        #expect(try cli.run(["edit", id, "--set", "incident_date=2024-03-09"]).status == 0)

        // provenance is protected, and a refused edit changes nothing.
        let before = try cli.digest()
        let provenance = try cli.run(["edit", id, "--set", "provenance=made up"])
        #expect(provenance.status == 64 && provenance.stderr.contains("cannot be edited"), "\(provenance.stderr)")
        #expect(try cli.digest() == before)

        // A comma in a tag is refused with the flags to use; tags are normalised to one case.
        let comma = try cli.run(["tag", id, "--add", "detention, torture"])
        #expect(comma.status == 64 && comma.stderr.contains("--add detention --add torture"), "\(comma.stderr)")
        #expect(try cli.digest() == before)
        _ = try cli.ok(["tag", id, "--add", "Detention"])
        _ = try cli.ok(["tag", id, "--add", "detention "])
        #expect(try cli.list().first?["tags"] as? [String] == ["detention"])
        #expect(try cli.list(["--tag", "DETENTION"]).count == 1)

        // An id-like word that is not an id points to search.
        for word in ["W-023", "W023"] {
            let shown = try cli.run(["show", word])
            #expect(shown.status == 67, "\(word)")
            #expect(shown.stderr.contains("amanat search W"), "\(shown.stderr)")
            #expect(!shown.stderr.contains("internal error"))
        }
    }

    @Test func homeIsRespectedForTheDefaultVault() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        cli.environment["HOME"] = scratch.path("elsewhere").path
        try FileManager.default.createDirectory(at: scratch.path("elsewhere"), withIntermediateDirectories: true)
        let r = try cli.run(["init", "--kdf", "interactive", "--device-name", "d"], withVault: false)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: scratch.path("elsewhere/.amanat").path))
    }

    @Test func filtersSayWhatTheyDoAndAnEmptySelectionHasItsOwnStatus() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        try cli.initialize()
        cli.environment["AMANAT_BUNDLE_PASSPHRASE"] = "a bundle passphrase for the lawyer"
        let both = try testimony(
            cli,
            [
                "--witness", "W-1", "--tag", "education", "--tag", "datetest", "--consent", "share",
                "--incident-date", "2024-03-08",
            ])
        let one = try testimony(
            cli, ["--witness", "W-2", "--tag", "Education", "--consent", "share", "--incident-date", "2023-01-01"])
        let statement = try cli.ok(["add", "statement", "--title", "S", "--body", "b", "--tag", "datetest"])

        // Repeated --tag means all of them; --any-tag means any; case does not matter.
        #expect(try cli.list(["--tag", "education", "--tag", "datetest"]).map { $0["id"] as? String } == [both])
        #expect(
            Set(try cli.list(["--any-tag", "EDUCATION", "--any-tag", "datetest"]).map { $0["id"] as! String })
                == [both, one, statement])
        #expect(Set(try cli.list(["--tag", "Education"]).map { $0["id"] as! String }) == [both, one])
        #expect(try cli.list(["--since", "2024-01-01"]).map { $0["id"] as? String } == [both])
        #expect(try cli.list(["--until", "2023-12-31", "--kind", "testimony"]).map { $0["id"] as? String } == [one])

        // search takes the same flags.
        let searched = try cli.ok(["search", "W-", "--json", "--tag", "datetest"])
        #expect(searched.contains(both) && !searched.contains(one))

        // The export of two tags exports exactly the records with both, and says what it selected.
        let bundle = scratch.path("e.age").path
        let export = try cli.run(["export", "--out", bundle, "--passphrase", "--tag", "education", "--tag", "datetest"])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stderr.contains("Selected 1 record: all of the tags education, datetest"), "\(export.stderr)")

        // Nothing matched: status 2, the selection shown, one sentence with one full stop, nothing written.
        let none = try cli.run([
            "export", "--out", scratch.path("none.age").path, "--passphrase", "--id", statement, "--kind", "testimony",
        ])
        #expect(none.status == 2, "\(none.stderr)")
        #expect(none.stderr.contains("kind testimony") && none.stderr.contains(String(statement.prefix(12))))
        #expect(!none.stderr.contains(".."), "\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("none.age").path))
        let emptyList = try cli.run(["list", "--tag", "nothing-has-this", "--json"])
        #expect(emptyList.status == 2)
        #expect((try JSONSerialization.jsonObject(with: Data(emptyList.stdout.utf8)) as? [Any])?.isEmpty == true)
        #expect(try cli.run(["search", "no such words anywhere"]).status == 2)
        #expect(try cli.run(["list", "--kind", "letter"]).status == 64)
    }

    @Test func dariAndArabicSpellingsFindTheSameRecordAndDatesTakePersianForms() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        try cli.initialize()
        let persian = try testimony(cli, ["--witness", "W-5", "--location", "کابل"], narrative: "سال ۱۴۰۲ در می‌شود")
        let arabic = try testimony(cli, ["--witness", "W-6", "--location", "علي"], narrative: "no digits")
        func found(_ text: String) throws -> [String] {
            let r = try cli.run(["search", text, "--json"])
            let array = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
            return array.compactMap { $0["id"] as? String }
        }
        #expect(try found("كابل") == [persian], "Arabic kaf finds the Persian spelling")
        #expect(try found("علی") == [arabic], "Persian yeh finds the Arabic spelling")
        #expect(try found("میشود") == [persian], "without the ZWNJ")
        #expect(try found("1402") == [persian], "ASCII digits find Persian ones")

        // Persian digits; a Solar Hijri date round-trips; 1402 without --calendar is a question.
        let d1 = try testimony(cli, ["--witness", "W-7", "--incident-date", "۲۰۲۴-۰۳-۰۸"])
        let d2 = try testimony(cli, ["--witness", "W-8", "--incident-date", "1402-12-18", "--calendar", "persian"])
        let records = try cli.list()
        let f1 = try #require(records.first { $0["id"] as? String == d1 }?["fields"] as? [String: String])
        let f2 = try #require(records.first { $0["id"] as? String == d2 }?["fields"] as? [String: String])
        #expect(f1["incident_date"] == "2024-03-08")
        #expect(f2["incident_date"] == "2024-03-08")
        #expect(f2["incident_date_entered"] == "1402-12-18")
        cli.environment["AMANAT_CALENDAR"] = "persian"
        #expect(try cli.ok(["show", d2]).contains("1402-12-18 (2024-03-08)"))
        cli.environment["AMANAT_CALENDAR"] = nil
        let ask = try cli.run([
            "add", "testimony", "--witness", "W-9", "--incident-date", "1402-12-18", "--allow-empty",
        ])
        #expect(ask.status == 64 && ask.stderr.contains("--calendar persian"), "\(ask.stderr)")
        let future = try cli.run([
            "add", "testimony", "--witness", "W-9", "--incident-date", "2099-12-31", "--allow-empty",
        ])
        #expect(future.status == 0 && future.stderr.contains("in the future"), "\(future.stderr)")
    }

    @Test func historyShowsWholeValuesDifferencesAndJSON() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        try cli.initialize(name: "Farzana's laptop")
        let id = try testimony(cli, ["--witness", "W-1", "--location", "Kabul city, near the old checkpoint"])
        _ = try cli.ok(["edit", id, "--set", "location=Kabul city, near the new checkpoint"])
        let full = try cli.ok(["history", id, "--full"])
        #expect(full.contains("| Kabul city, near the new checkpoint"), "\(full)")
        #expect(full.contains("[-old-] {+new+}"), "\(full)")
        cli.environment["AMANAT_TIMEZONE"] = "Asia/Kabul"
        #expect(try cli.ok(["history", id]).contains("+04:30"))
        let json = try cli.ok(["history", id, "--json"])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let changes = try #require(doc["changes"] as? [[String: Any]])
        #expect(changes.count == 2)
        #expect(changes.first?["device_name"] as? String == "Farzana's laptop")
        let ops = try #require(changes.last?["operations"] as? [[String: Any]])
        #expect(ops.first?["value"] as? String == "Kabul city, near the new checkpoint")
        #expect(ops.first?["previous"] as? [String] == ["Kabul city, near the old checkpoint"])
        #expect((changes.last?["time"] as? String)?.hasSuffix("Z") == true, "--json keeps UTC")
    }

    @Test func syncSaysWhatArrivedByDevice() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "Farzana's laptop")
        let invitation = scratch.path("invite.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        let b = scratch.runner("b")
        _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "coordinator"])
        let stick = scratch.path("stick.amanat-sync").path
        let gone = try testimony(a, ["--witness", "W-1", "--location", "Kabul"])
        let kept = try testimony(a, ["--witness", "W-2", "--location", "Kabul"])
        _ = try a.ok(["sync", "--create", stick])
        let first = try b.run(["sync", "--create", stick, "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        #expect((summary["created"] as? [[String: Any]])?.count == 2, "\(first.stdout)")
        _ = try a.ok(["delete", gone])
        _ = try a.ok(["edit", kept, "--set", "location=Herat"])
        _ = try b.ok(["edit", kept, "--set", "location=Kandahar"])
        _ = try a.ok(["sync", "--create", stick])
        let second = try b.run(["sync", "--create", stick])
        #expect(second.status == 0)
        #expect(
            second.stderr.contains("DELETED \(gone.prefix(12))") && second.stderr.contains("Farzana's laptop"),
            "\(second.stderr)")
        #expect(second.stderr.contains("NEW CONFLICT on location of \(kept.prefix(12))"), "\(second.stderr)")
    }

    @Test func listShowsDatePlaceAndTagsInColumnsSortedByDate() throws {
        let scratch = try Scratch()
        var cli = scratch.runner()
        cli.environment["COLUMNS"] = "80"
        try cli.initialize()
        let late = try testimony(
            cli, ["--witness", "W-1", "--location", "Herat", "--incident-date", "2024-05-01", "--tag", "detention"])
        let early = try testimony(cli, ["--witness", "W-2", "--location", "Kabul", "--incident-date", "2023-02-01"])
        let lines = try cli.ok(["list"]).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix(String(early.prefix(12))) && lines[1].hasPrefix(String(late.prefix(12))), "\(lines)")
        #expect(lines[1].contains("2024-05-01") && lines[1].contains("Herat") && lines[1].contains("detention"))
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(lines)")
        let byID = try cli.ok(["list", "--sort", "id"]).split(separator: "\n")
        #expect(byID.first?.hasPrefix(String(min(early, late).prefix(12))) == true)
        // --json keeps its shape.
        #expect(Set(try #require(try cli.list().first).keys) == ["id", "kind", "fields", "tags", "conflicts"])
    }
}

/// `amanat identity` advertises an age recipient; a bundle sent to it opens with this device's own key.
@Suite struct OwnBundleKeyTests {
    @Test func aBundleSentToTheIdentityRecipientImportsAndOpensWithoutAKeyFile() throws {
        let scratch = try Scratch()
        let team = scratch.runner("team")
        try team.initialize(name: "coordinator")
        let lawyer = scratch.runner("lawyer")
        try lawyer.initialize(name: "lawyer's laptop")
        let recipient = try #require(
            try lawyer.ok(["identity"]).split(separator: "\n").first { $0.hasPrefix("age:") }?
                .split(separator: " ").last.map(String.init))
        let id = try team.ok(["add", "statement", "--title", "Coalition statement", "--body", "text"])
        let bundle = scratch.path("evidence.age").path
        _ = try team.ok(["export", "--out", bundle, "--recipient", recipient, "--id", id])

        // Without --identity and without a vault, the command says what to give.
        let nowhere = try scratch.runner("none").run(["bundle", "open", bundle, "--out", scratch.path("x").path])
        #expect(nowhere.status == 64 && nowhere.stderr.contains("--identity"), "\(nowhere.stderr)")

        let opened = try lawyer.run(["bundle", "open", bundle, "--out", scratch.path("opened").path])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stderr.contains("own bundle key"))
        let imported = try lawyer.run(["import", bundle])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try lawyer.list().first?["kind"] as? String == "statement")
        // A key that is not the recipient's is still refused.
        let stranger = scratch.runner("stranger")
        try stranger.initialize()
        #expect(try stranger.run(["import", bundle]).status == 77)
    }
}
