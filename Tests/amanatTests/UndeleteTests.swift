import Foundation
import Testing

/// `delete` says how to undo it; `undelete`, `list --deleted`, `show --deleted`, `history` and `export --id` work on
/// deleted records; an undelete merges like any change (issue 12, item 1).
@Suite struct UndeleteTests {
    func makePair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner) { try scratch.pair() }

    @Test func deleteSaysHowToUndoAndEveryReadingCommandStillFindsTheRecord() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let narrative = scratch.path("n.txt")
        try Data("They took him at the checkpoint.".utf8).write(to: narrative)
        let id = try cli.ok([
            "add", "testimony", "--witness", "W-023", "--narrative-file", narrative.path, "--location", "Kabul",
            "--consent", "share", "--tag", "detention",
        ])
        let deleted = try cli.run(["delete", String(id.prefix(6))])
        #expect(deleted.status == 0)
        #expect(
            deleted.stderr.contains("amanat undelete \(id.prefix(12))"), "delete says how to undo: \(deleted.stderr)")
        #expect(try cli.list().isEmpty)

        // Editing commands name the way back instead of claiming the id does not exist.
        for args in [["edit", id, "--set", "location=Herat"], ["tag", id, "--add", "x"], ["show", id]] {
            let r = try cli.run(args)
            #expect(r.status == 67, "\(args): \(r.status)")
            #expect(r.stderr.contains("is deleted") && r.stderr.contains("undelete"), "\(args): \(r.stderr)")
        }
        let listed = try cli.list(["--deleted"])
        #expect(listed.map { $0["id"] as? String } == [id])
        #expect((listed.first?["fields"] as? [String: String])?["location"] == "Kabul")
        let shown = try cli.ok(["show", "--deleted", id])
        #expect(shown.contains("DELETED") && shown.contains("location: Kabul"))
        let history = try cli.ok(["history", id])
        #expect(history.contains("deleted") && history.contains("is deleted"))
        let bundle = scratch.path("b.age").path
        var withSecret = cli
        withSecret.environment["AMANAT_BUNDLE_PASSPHRASE"] = "a bundle passphrase for the lawyer"
        let export = try withSecret.run(["export", "--out", bundle, "--passphrase", "--id", id])
        #expect(export.status == 0, "export --id of a deleted record: \(export.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle))

        // Undelete brings values and tags back; undeleting twice is refused with a sentence.
        let restored = try cli.run(["undelete", String(id.prefix(8))])
        #expect(restored.status == 0, "\(restored.stderr)")
        let record = try #require(try cli.list().first)
        #expect((record["fields"] as? [String: String])?["location"] == "Kabul")
        #expect(record["tags"] as? [String] == ["detention"])
        #expect(try cli.list(["--deleted"]).isEmpty)
        let again = try cli.run(["undelete", id])
        #expect(again.status == 64 && again.stderr.contains("not deleted"))
        #expect(try cli.ok(["history", id]).contains("undelete: the record is visible again"))
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
    }

    @Test func aRecordDeletedOnOneDeviceAndUndeletedOnAnotherConvergesEverywhere() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("stick.amanat-sync").path
        let id = try a.ok([
            "add", "statement", "--title", "Coalition statement", "--body-file", samplePath, "--tag", "women",
        ])
        _ = try a.ok(["edit", id, "--set", "issued_by=Coalition"])
        _ = try a.ok(["sync", "--create", stick])
        _ = try b.ok(["sync", "--create", stick])
        // A conflict made before the deletion must survive the undelete as a conflict.
        _ = try a.ok(["edit", id, "--set", "issued_by=Coalition A"])
        _ = try b.ok(["edit", id, "--set", "issued_by=Coalition B"])
        for runner in [a, b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        _ = try a.ok(["delete", id])
        for runner in [a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        #expect(try b.list().isEmpty, "the deletion reached b")
        _ = try b.ok(["undelete", id])
        for runner in [b, a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        #expect(try a.digest() == b.digest())
        #expect(try a.ok(["list", "--json"]) == b.ok(["list", "--json"]))
        let record = try #require(try a.list().first)
        #expect(record["id"] as? String == id)
        #expect(record["tags"] as? [String] == ["women"])
        #expect((record["conflicts"] as? [String: [String]])?["issued_by"]?.count == 1, "conflict kept: \(record)")
        #expect(try a.ok(["verify"]).hasPrefix("ok:"))
    }

    @Test func anUndeleteConcurrentWithASecondDeleteWins() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("stick.amanat-sync").path
        let id = try a.ok(["add", "statement", "--title", "T", "--body", "x"])
        _ = try a.ok(["delete", id])
        for runner in [a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        _ = try b.ok(["undelete", id])
        // a never saw the undelete; it cannot delete again what it already sees deleted.
        let twice = try a.run(["delete", id])
        #expect(twice.status == 67 && twice.stderr.contains("is deleted"))
        for runner in [b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        #expect(try a.list().map { $0["id"] as? String } == [id])
        #expect(try a.digest() == b.digest())
    }
}
