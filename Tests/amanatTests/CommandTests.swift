import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import Testing

@Suite struct CommandTests {
    @Test func addListShowEditTagHistoryDeleteEndToEnd() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let statement = try cli.ok([
            "add", "statement", "--title", "Coalition statement", "--body-file", samplePath, "--issued-by",
            "Independent Coalition of Women's Protest Movements of Afghanistan", "--issued-on", "2025-07",
            "--tag", "women", "--tag", "afghanistan",
        ])
        #expect(statement.count == 32 && statement.allSatisfy(\.isHexDigit), "add prints the id alone: \(statement)")
        let testimony = try cli.ok([
            "add", "testimony", "--witness", "W-017", "--narrative", "n", "--incident-date", "2024-03-08",
            "--location", "Kabul", "--consent", "share",
        ])

        let list = try cli.list()
        #expect(list.map { $0["id"] as? String } == [statement, testimony].sorted())
        let s = try #require(list.first { $0["id"] as? String == statement })
        #expect(Set(s.keys) == ["id", "kind", "fields", "tags", "conflicts"])
        #expect(s["kind"] as? String == "statement")
        #expect(s["tags"] as? [String] == ["afghanistan", "women"])
        let fields = try #require(s["fields"] as? [String: String])
        #expect(fields["issued_on"] == "2025-07")
        #expect(fields["body"] == (try String(contentsOfFile: samplePath, encoding: .utf8)))
        #expect((s["conflicts"] as? [String: Any])?.isEmpty == true)

        #expect(try cli.list(["--kind", "testimony"]).count == 1)
        #expect(try cli.list(["--tag", "women"]).map { $0["id"] as? String } == [statement])

        // Unique prefixes of 6+ characters are accepted.
        let shown = try cli.ok(["show", String(testimony.prefix(6)), "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any])
        #expect(obj["id"] as? String == testimony)

        _ = try cli.ok(["edit", String(testimony.prefix(8)), "--set", "location=Herat", "--set", "consent=anonymised"])
        _ = try cli.ok(["tag", String(testimony.prefix(8)), "--add", "detention", "--add", "reviewed"])
        _ = try cli.ok(["tag", String(testimony.prefix(8)), "--remove", "reviewed"])
        let edited = try #require(try cli.list(["--kind", "testimony"]).first)
        #expect((edited["fields"] as? [String: String])?["location"] == "Herat")
        #expect((edited["fields"] as? [String: String])?["consent"] == "anonymised")
        #expect(edited["tags"] as? [String] == ["detention"])

        let history = try cli.ok(["history", testimony])
        #expect(history.contains("(original, sealed)"))
        #expect(history.contains("(amendment)"))
        #expect(history.contains("set location = Kabul"), "the original stays in the history")
        #expect(history.contains("changed location = Herat"))

        #expect(try cli.ok(["search", "herat", "--json"]).contains(testimony))
        let nothing = try cli.run(["search", "no such words anywhere", "--json"])
        #expect(nothing.status == 2 && !nothing.stdout.contains(testimony), "no match has its own status")

        _ = try cli.ok(["delete", String(testimony.prefix(8))])
        #expect(try cli.list().map { $0["id"] as? String } == [statement])
        #expect(try cli.run(["show", testimony]).status == 67)

        let status = try cli.status()
        #expect(status["records"] as? Int == 1)
        #expect(status["changes"] as? Int == 6 + 1, "six record changes and the entry that founded the vault")
        #expect((status["state_digest"] as? String)?.count == 64)
        #expect((status["vector"] as? [String: Any])?.count == 1)
        #expect(try cli.ok(["verify"]).hasPrefix("ok:"))
    }

    @Test func resolveClearsAConflictMadeByTwoConcurrentEdits() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        let id = try cli.ok(["add", "testimony", "--witness", "W-1", "--location", "A", "--allow-empty"])
        // Two edits that did not see each other, as two devices would make them offline.
        do {
            let vault = try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
            let state = try vault.resolveRecord(id)
            let base = state.visibleValues(of: "location").map(\.op)
            try vault.commit(record: state.id) { _ in [.set(field: "location", value: "Herat", pred: base)] }
            try vault.commit(record: state.id) { _ in [.set(field: "location", value: "Kandahar", pred: base)] }
        }
        let conflicted = try #require(try cli.list().first)
        #expect((conflicted["conflicts"] as? [String: [String]])?["location"] == ["Herat"])
        #expect(try cli.ok(["show", id]).contains("conflict"))
        #expect(try cli.run(["resolve", id, "location", "--keep", "Mazar"]).status == 64)
        #expect(try cli.run(["resolve", id, "witness", "--keep", "W-1"]).status == 64, "no conflict on witness")
        _ = try cli.ok(["resolve", id, "location", "--keep", "Herat"])
        let resolved = try #require(try cli.list().first)
        #expect((resolved["fields"] as? [String: String])?["location"] == "Herat")
        #expect((resolved["conflicts"] as? [String: Any])?.isEmpty == true)
        #expect(try cli.ok(["history", id]).contains("resolved location = Herat"))
    }

    @Test func noPlaintextInTheVaultDirectoryAfterAddingTheSampleStatement() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        try cli.initialize()
        _ = try cli.ok(["add", "statement", "--title", "Coalition statement", "--body-file", samplePath])
        _ = try cli.ok(["add", "testimony", "--witness", "W-SECRET-4711", "--narrative", "fictional"])
        let phrases = ["shaking the bloody hands", "compulsory burqas", "Kremlin spokesman", "W-SECRET-4711"]
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.vault.path)
        #expect(files.contains("vault.sqlite") && files.contains("keyring.amk"))
        for file in files {
            let bytes = try Data(contentsOf: cli.vault.appendingPathComponent(file))
            for phrase in phrases {
                #expect(bytes.range(of: Data(phrase.utf8)) == nil, "\(phrase) in \(file)")
            }
        }
    }

    @Test func helpOfEveryCommandHasAnExample() throws {
        let scratch = try Scratch()
        let cli = scratch.runner()
        let commands = [
            ["init"], ["add"], ["add", "statement"], ["add", "testimony"], ["list"], ["show"], ["history"], ["edit"],
            ["tag"], ["delete"], ["resolve"], ["search"], ["status"], ["verify"], ["identity"], ["wipe"], ["sync"],
            ["import"], ["invite"], ["join"], ["export"], ["bundle"], ["bundle", "verify"], ["bundle", "open"],
            ["serve"],
        ]
        for command in commands {
            let r = try cli.run(command + ["--help"], withVault: false)
            #expect(r.status == 0, "\(command)")
            #expect(r.stdout.contains("Example"), "\(command) --help has no example")
            #expect(r.stdout.contains("amanat \(command.joined(separator: " "))"), "\(command) --help lacks its usage")
        }
    }
}
