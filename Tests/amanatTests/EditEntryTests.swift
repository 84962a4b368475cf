import Foundation
import Testing

/// `edit` keeps the protections of `add`: FIELD=- reads standard input (no text in the shell's history), and a
/// testimony's narrative is not emptied by accident.
@Suite struct EditEntryTests {
    @Test func aNarrativeAmendedFromStandardInputAndNeverEmptiedByAccident() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.run(
            ["add", "testimony", "--witness", "W-1", "--narrative-file", "-", "--consent", "share"],
            stdin: "They came at night.\n"
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let amended = try cli.run(["edit", id, "--set", "narrative=-"], stdin: "They came at night, three of them.\n")
        #expect(amended.status == 0, "\(amended.stderr)")
        let shown = try cli.ok(["show", id, "--json"])
        #expect(shown.contains("They came at night, three of them."), "\(shown)")
        #expect(!shown.contains("\"narrative\":\"-\"") && !shown.contains("\"narrative\" : \"-\""))

        let digest = try cli.digest()
        let emptied = try cli.run(["edit", id, "--set", "narrative="])
        #expect(emptied.status == 64 && emptied.stderr.contains("empty the narrative"), "\(emptied.stderr)")
        let twice = try cli.run(["edit", id, "--set", "narrative=-", "--set", "location=-"], stdin: "x")
        #expect(twice.status == 64 && twice.stderr.contains("Only one --set"), "\(twice.stderr)")
        #expect(try cli.digest() == digest)
        #expect(try cli.run(["edit", id, "--set", "narrative=", "--allow-empty"]).status == 0)
    }
}
