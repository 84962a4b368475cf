import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

/// A JSON value as parsed, keeping integers, other numbers and booleans apart (JSONSerialization's NSNumber does
/// not, so a schema's "integer" or "boolean" could not be checked strictly with it).
indirect enum JSON: Decodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSON].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSON].self))
        }
    }

    /// Parses one whole document: a second document or anything after the first fails.
    static func parse(_ text: String) throws -> JSON {
        try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
    }

    subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var int: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    var array: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    var object: [String: JSON]? {
        if case .object(let o) = self { return o }
        return nil
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .int(let i): "\(i)"
        case .number(let d): "\(d)"
        case .string(let s): "\"\(s)\""
        case .array(let a): "[\(a.map(\.description).joined(separator: ", "))]"
        case .object(let o): "{\(o.keys.sorted().map { "\"\($0)\": \(o[$0]!)" }.joined(separator: ", "))}"
        }
    }
}

/// A strict validator for the subset of JSON Schema (draft 2020-12) that Docs/json.md uses. A keyword it does not
/// know is an error, so the documentation cannot state a constraint that nothing checks.
enum SchemaValidator {
    static let keywords: Set<String> = [
        "$schema", "title", "description", "type", "properties", "required", "additionalProperties", "items", "enum",
        "const", "minimum", "pattern", "oneOf",
    ]

    /// Every way `value` breaks `schema`, each with the path of the value (`$.changes[0].seq`); empty when valid.
    static func errors(_ value: JSON, _ schema: JSON, at path: String = "$") -> [String] {
        guard let s = schema.object else { return ["\(path): the schema is not an object"] }
        var out: [String] = []
        for key in s.keys where !keywords.contains(key) {
            out.append("\(path): the schema uses \(key), which the validator does not check")
        }
        if let type = s["type"] {
            let names = type.array?.compactMap(\.string) ?? [type.string ?? ""]
            if !names.contains(where: { matches(value, type: $0) }) {
                out.append("\(path): \(value) is not of type \(names.joined(separator: " or "))")
                return out
            }
        }
        if let options = s["enum"]?.array, !options.contains(value) {
            out.append("\(path): \(value) is not one of \(options)")
        }
        if let constant = s["const"], constant != value {
            out.append("\(path): \(value) is not \(constant)")
        }
        if let minimum = s["minimum"] {
            let limit =
                minimum.int.map(Double.init) ?? { if case .number(let d) = minimum { return d } else { return 0 } }()
            let number: Double? =
                switch value {
                case .int(let i): Double(i)
                case .number(let d): d
                default: nil
                }
            if let number, number < limit { out.append("\(path): \(value) is less than \(minimum)") }
        }
        if let pattern = s["pattern"]?.string, let text = value.string {
            let regex = try? NSRegularExpression(pattern: pattern)
            let range = NSRange(text.startIndex..., in: text)
            if regex?.firstMatch(in: text, range: range) == nil {
                out.append("\(path): \(value) does not match \(pattern)")
            }
        }
        if let object = value.object {
            let properties = s["properties"]?.object ?? [:]
            for key in s["required"]?.array?.compactMap(\.string) ?? [] where object[key] == nil {
                out.append("\(path): the required key \(key) is missing")
            }
            for (key, item) in object.sorted(by: { $0.key < $1.key }) {
                if let property = properties[key] {
                    out += errors(item, property, at: "\(path).\(key)")
                } else if let additional = s["additionalProperties"] {
                    if additional == .bool(false) {
                        out.append("\(path): the key \(key) is not in the documented shape")
                    } else if additional != .bool(true) {
                        out += errors(item, additional, at: "\(path).\(key)")
                    }
                }
            }
        }
        if let items = s["items"], let array = value.array {
            for (index, item) in array.enumerated() { out += errors(item, items, at: "\(path)[\(index)]") }
        }
        if let branches = s["oneOf"]?.array {
            let passing = branches.filter { errors(value, $0, at: path).isEmpty }.count
            if passing != 1 {
                out.append("\(path): \(passing) branches of oneOf match, not exactly one")
                if passing == 0 {
                    for (index, branch) in branches.enumerated() {
                        out += errors(value, branch, at: path).map { "  oneOf[\(index)] \($0)" }
                    }
                }
            }
        }
        return out
    }

    static func matches(_ value: JSON, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("integer", .int), ("number", .int), ("number", .number),
            ("string", .string), ("array", .array), ("object", .object):
            return true
        default:
            return false
        }
    }
}

/// The shapes documented in Docs/json.md: each `## \`amanat COMMAND --json\`` heading and the JSON Schema in the
/// first ```json block after it.
enum DocumentedShapes {
    static let file = repositoryRoot.appendingPathComponent("Docs/json.md")

    static func load() throws -> [String: JSON] {
        let text = try String(contentsOf: file, encoding: .utf8)
        var shapes: [String: JSON] = [:]
        var command: String?
        var block: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if var lines = block {
                if line == "```" {
                    if let command { shapes[command] = try JSON.parse(lines.joined(separator: "\n")) }
                    command = nil
                    block = nil
                } else {
                    lines.append(line)
                    block = lines
                }
                continue
            }
            if line.hasPrefix("## `amanat "), line.hasSuffix(" --json`") {
                command = String(line.dropFirst("## `amanat ".count).dropLast(" --json`".count))
            } else if line == "```json", command != nil {
                block = []
            }
        }
        return shapes
    }
}

/// Every `--json` output, produced end to end through the binary on a small real team (two vaults, a sync file, a
/// relay, evidence bundles, a fork, a backup), validates against the shape Docs/json.md documents for it.
@Suite struct JSONOutputTests {
    /// Runs commands with --json, checks each output is exactly one document that validates against its shape,
    /// and remembers which shapes were exercised.
    final class Checker: @unchecked Sendable {
        let shapes: [String: JSON]
        var exercised: Set<String> = []

        init() throws { shapes = try DocumentedShapes.load() }

        /// Runs `amanat ARGS --json` (the runner's vault) and validates its stdout against the shape of `command`;
        /// `status` is the exit status expected.
        @discardableResult
        func check(
            _ command: String, _ runner: CLIRunner, _ args: [String], status: Int32 = 0, stdin: String? = nil,
            withVault: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> JSON {
            let r = try runner.run(args + ["--json"], stdin: stdin, withVault: withVault)
            #expect(
                r.status == status, "amanat \(args.joined(separator: " ")) --json exited \(r.status): \(r.stderr)",
                sourceLocation: sourceLocation)
            #expect(
                r.stdout.hasSuffix("}\n") || r.stdout.hasSuffix("]\n"), "\(r.stdout)", sourceLocation: sourceLocation)
            let value: JSON
            do {
                value = try JSON.parse(r.stdout)
            } catch {
                Issue.record(
                    "amanat \(args.joined(separator: " ")) --json did not print one JSON document: \(r.stdout)",
                    sourceLocation: sourceLocation)
                throw error
            }
            let schema = try #require(shapes[command], "Docs/json.md has no shape for \(command)")
            let problems = SchemaValidator.errors(value, schema)
            #expect(
                problems.isEmpty,
                "amanat \(args.joined(separator: " ")) --json: \(problems.joined(separator: "; "))\n\(r.stdout)",
                sourceLocation: sourceLocation)
            exercised.insert(command)
            return value
        }
    }

    @Test func everyJSONOutputValidatesAgainstItsDocumentedShape() throws {
        let scratch = try Scratch()
        let check = try Checker()
        let a = scratch.runner("a")
        let made = try check.check(
            "init", a, ["init", "--kdf", "interactive", "--device-name", "coordinator laptop"])
        #expect(made["device_name"]?.string == "coordinator laptop")
        #expect(made["role"]?.string == "coordinator")
        let words = try check.check("init", a, ["init", "--generate-passphrase"], withVault: false)
        #expect(words["passphrase"]?.string?.split(separator: " ").count == 6)

        // Records.
        let statement = try check.check(
            "add statement", a,
            ["add", "statement", "--title", "Coalition statement", "--body", "Text.", "--tag", "Women"])
        #expect(statement["sealed"] == .bool(false) && statement["tags"] == .array([.string("women")]))
        let testimony = try check.check(
            "add testimony", a,
            [
                "add", "testimony", "--witness", "W-017", "--narrative-file", "-", "--location", "Kabul", "--consent",
                "share",
            ], stdin: "What the witness saw.\n")
        #expect(testimony["sealed"] == .bool(true))
        #expect(testimony["fields_set"]?.array?.contains(.string("narrative")) == true)
        let id = try #require(testimony["id"]?.string)
        let statementID = try #require(statement["id"]?.string)
        #expect(id != statementID)
        let listed = try check.check("list", a, ["list"])
        #expect(Set(listed.array?.compactMap { $0["id"]?.string } ?? []) == [id, statementID])
        let shown = try check.check("show", a, ["show", id])
        #expect(shown["fields"]?["location"]?.string == "Kabul")
        let found = try check.check("search", a, ["search", "kabul"])
        #expect(found.array?.count == 1)
        let none = try check.check("search", a, ["search", "no such words"], status: 2)
        #expect(none == .array([]))
        let edited = try check.check("edit", a, ["edit", id, "--set", "location=Herat"])
        #expect(edited["fields_set"] == .array([.string("location")]))
        let tagged = try check.check("tag", a, ["tag", id, "--add", "Verified"])
        #expect(tagged["tags"]?.array?.contains(.string("verified")) == true)
        #expect(tagged["change"]?["seq"]?.int == (edited["change"]?["seq"]?.int ?? 0) + 1)
        let deleted = try check.check("delete", a, ["delete", statementID])
        #expect(deleted["deleted"] == .bool(true))
        let restored = try check.check("undelete", a, ["undelete", statementID])
        #expect(restored["deleted"] == .bool(false))
        let history = try check.check("history", a, ["history", id])
        #expect(history["changes"]?.array?.count == 3)

        // This device and the vault.
        let status = try check.check("status", a, ["status"])
        let me = try #require(status["device"]?.string)
        #expect(made["device"]?.string == me && made["vault"] == status["vault"])
        #expect(status["vector"]?[me]?["seq"]?.int == restored["change"]?["seq"]?.int)
        let verified = try check.check("verify", a, ["verify"])
        #expect(verified["ok"] == .bool(true) && verified["changes"] == status["changes"])
        let identity = try check.check("identity", a, ["identity"])
        #expect(identity["device"]?.string == me && identity["vault_id"] == status["vault_id"])
        // A purged record: the purge is all that is left, and history says so in the same document.
        let doomed = try a.ok(["add", "statement", "--title", "To be purged", "--body", "Withdrawn."])
        let purge = try check.check("purge", a, ["purge", doomed, "--reason", "consent withdrawn", "--yes"])
        #expect(purge["record"]?.string == doomed && purge["purged"]?["changes"]?.int == 1)
        #expect(purge["purged"]?["reason"]?.string == "consent withdrawn")
        let purgedHistory = try check.check("history", a, ["history", doomed])
        #expect(purgedHistory == purge)

        // A second member, a sync file and a relay.
        let invitation = scratch.path("invite.amanat").path
        let invited = try check.check("invite", a, ["invite", "--out", invitation, "--valid-days", "3"])
        #expect(invited["valid_days"]?.int == 3 && invited["role"]?.string == "member")
        let b = scratch.runner("b")
        let joined = try check.check(
            "join", b,
            [
                "join", invitation, "--code", invited["code"]?.string ?? "", "--kdf", "interactive", "--device-name",
                "field laptop",
            ])
        #expect(joined["invited_by"]?.string == me && joined["vault"] == status["vault"])
        let members = try check.check("members", a, ["members"])
        #expect(members.array?.count == 1)
        let stick = scratch.path("team.amanat-sync").path
        let pushed = try check.check("sync", a, ["sync", "--create", stick])
        #expect(pushed["target"]?.string == stick && (pushed["pushed"]?.int ?? 0) > 0)
        let arrived = try check.check("sync", b, ["sync", stick])
        #expect(Set(arrived["created"]?.array?.compactMap { $0["record"]?.string } ?? []) == [id, statementID])
        #expect((arrived["pulled"]?.int ?? 0) > 0)
        let imported = try check.check("import", a, ["import", stick])
        #expect(imported["pushed"] == nil && imported["target"]?.string == stick)
        #expect(try check.check("members", a, ["members"]).array?.count == 2)
        let relay = try ServeProcess(data: scratch.path("relay"))
        defer { _ = relay.stop() }
        let overHTTP = try check.check("sync", a, ["sync", relay.url])
        #expect(overHTTP["target"]?.string == relay.url)

        // A conflict, resolved.
        _ = try a.ok(["edit", id, "--set", "location=Mazar"])
        _ = try b.ok(["edit", id, "--set", "location=Balkh"])
        _ = try b.ok(["sync", stick])
        let conflicted = try check.check("sync", a, ["sync", stick])
        #expect(conflicted["new_conflicts"]?.array?.first?["fields"] == .array([.string("location")]))
        let resolved = try check.check("resolve", a, ["resolve", id, "location", "--keep", "Balkh"])
        #expect(resolved["kept"]?.string == "Balkh" && resolved["concurrent_values"]?.int == 2)

        // Roles and names.
        let renamed = try check.check("rename", b, ["rename", "Herat office"])
        #expect(renamed["name"]?.string == "Herat office" && renamed["device"] == joined["device"])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let role = try check.check("role", a, ["role", "Herat office", "reader"])
        #expect(role["role"]?.string == "reader" && role["name"]?.string == "Herat office")
        _ = try check.check("role", a, ["role", "Herat office", "member"])

        // Evidence bundles: exported to b and to a vault of another team, verified, opened, imported, altered.
        let other = scratch.runner("other")
        _ = try other.ok(["init", "--kdf", "interactive", "--device-name", "lawyer"])
        let lawyer = try check.check("identity", other, ["identity"])
        #expect(lawyer["vault"] != identity["vault"] && lawyer["age_recipient"] != identity["age_recipient"])
        let bundle = scratch.path("evidence.age").path
        let exported = try check.check(
            "export", a,
            [
                "export", "--out", bundle, "--recipient", lawyer["age_recipient"]?.string ?? "", "--recipient",
                try check.check("identity", b, ["identity"])["age_recipient"]?.string ?? "",
            ])
        #expect(exported["records"] == .array([.string(min(id, statementID)), .string(max(id, statementID))]))
        #expect(exported["recipients"]?.int == 2 && exported["left_out"]?.int == 0)
        let bundleReport = try check.check("bundle verify", b, ["bundle", "verify", bundle])
        #expect(bundleReport["outcome"]?.string == "verified" && bundleReport["vault"] == status["vault"])
        #expect(bundleReport["records"]?.array?.count == 2)
        let folder = scratch.path("opened").path
        let opened = try check.check("bundle open", b, ["bundle", "open", bundle, "--out", folder])
        #expect(opened["out"]?.string == folder && (opened["files"]?.int ?? 0) > 4)
        // Not of the vault expected: the report is printed, nothing is extracted, and the status stays 3.
        let refused = try check.check(
            "bundle open", b,
            [
                "bundle", "open", bundle, "--out", scratch.path("refused").path, "--expect-vault",
                lawyer["vault"]?.string ?? "",
            ], status: 3)
        #expect(refused["outcome"]?.string == "unproven" && refused["files"]?.int == 0 && refused["out"] == nil)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("refused").path))
        let tampered = scratch.path("opened/records/\(id).json")
        try Data("{}".utf8).write(to: tampered)
        let damaged = try check.check("bundle verify", b, ["bundle", "verify", folder], status: 65)
        #expect(damaged["outcome"]?.string == "damaged" && !(damaged["problems"]?.array?.isEmpty ?? true))
        let intoOther = try check.check("import", other, ["import", bundle])
        #expect(intoOther["bundle"]?["added"]?.int == 2)
        #expect(intoOther["created"]?.array?.count == 2)
        // A photo with GPS, exported as a location-stripped copy: export and bundle verify say what the copy is.
        try Data(LocationSamples.jpeg()).write(to: scratch.path("photo.jpg"))
        let photo = try a.ok(["attach", statementID, scratch.path("photo.jpg").path])
        let mediaBundle = scratch.path("media.age").path
        let stripped = try check.check(
            "export", a,
            [
                "export", "--out", mediaBundle, "--id", statementID, "--strip-location", "--recipient",
                try check.check("identity", b, ["identity"])["age_recipient"]?.string ?? "",
            ])
        let strippedCopy = stripped["stripped"]?.array?.first
        #expect(strippedCopy?["attachment"]?.string == photo && strippedCopy?["removed"]?.array?.count == 2)
        #expect(strippedCopy?["original_sha256"]?.string == Hex.encode(SHA256.hash(LocationSamples.jpeg())))
        let mediaReport = try check.check("bundle verify", b, ["bundle", "verify", mediaBundle])
        let listedCopy = mediaReport["records"]?.array?.first?["attachments"]?.array?.first
        #expect(
            listedCopy?["sha256"] == strippedCopy?["sha256"]
                && listedCopy?["stripped"]?["original_sha256"] == strippedCopy?["original_sha256"])

        // A cloned laptop forks: verify fails and still prints its report; a coordinator dismisses the fork; the
        // clone continues as a new identity.
        let clone = scratch.runner("clone")
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-a", b.vault.path, clone.vault.path]
        try copy.run()
        copy.waitUntilExit()
        _ = try b.ok(["add", "statement", "--title", "from the original"])
        _ = try clone.ok(["add", "statement", "--title", "from the clone"])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let cloneStick = scratch.path("clone.amanat-sync").path
        _ = try clone.ok(["sync", "--create", cloneStick])
        let forked = try check.check("sync", a, ["sync", cloneStick])
        #expect(forked["forks"]?.array?.first?["device"] == joined["device"], "\(forked)")
        let failing = try check.check("verify", a, ["verify"], status: 65)
        #expect(failing["ok"] == .bool(false) && !(failing["problems"]?.array?.isEmpty ?? true))
        let dismissed = try check.check("dismiss-fork", a, ["dismiss-fork", "Herat office"])
        #expect(dismissed["dismissed_forks"]?.int == 1)
        #expect(try check.check("verify", a, ["verify"])["ok"] == .bool(true))
        let recovered = try check.check("recover", clone, ["recover"])
        #expect(recovered["previous_device"] == joined["device"] && recovered["device"] != joined["device"])

        // Backups, passphrases, revocation and wiping.
        let backupFile = scratch.path("a.backup").path
        let backup = try check.check("backup", a, ["backup", "--out", backupFile])
        #expect(backup["device"]?.string == me && (backup["bytes"]?.int ?? 0) > 0)
        let elsewhere = scratch.runner("restored")
        let back = try check.check("restore", elsewhere, ["restore", backupFile])
        #expect(back["previous_device"]?.string == me && back["new_identity"] == .bool(true))
        let newPassphrase = scratch.path("new-passphrase")
        try Data("a new and longer passphrase\n".utf8).write(to: newPassphrase)
        let changed = try check.check("passphrase", a, ["passphrase", "--new-passphrase-file", newPassphrase.path])
        #expect(changed["device"]?.string == me)
        var a2 = a
        a2.passphrase = "a new and longer passphrase"
        let revoked = try check.check("revoke", a2, ["revoke", "Herat office"])
        #expect(revoked["device"] == joined["device"] && revoked["all_changes"] == .bool(false))
        let wiped = try check.check("wipe", elsewhere, ["wipe", "--yes"])
        #expect(wiped["directory"]?.string == elsewhere.vault.path)

        // Attachments: the list of a record's files, and the status counts once the vault holds one.
        let media = scratch.path("photo.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 0x42, count: 5000)).write(to: media)
        _ = try a2.ok(["attach", id, media.path, "--note", "second session"])
        let files = try check.check("attachments", a2, ["attachments", id])
        let file = try #require(files.array?.first)
        #expect(file["media_type"]?.string == "image/jpeg" && file["size"]?.int == 5004)
        #expect(file["record"]?.string == id && file["state"]?.string == "complete")
        let counted = try check.check("status", a2, ["status"])
        // This one and the photo exported with --strip-location above.
        #expect(counted["attachments"]?["complete"]?.int == 2, "\(counted)")

        // Every documented shape was exercised here.
        #expect(Set(check.shapes.keys).subtracting(check.exercised).isEmpty, "\(check.exercised)")
    }

    /// The commands that take --json, read from `amanat --help` and each command's help, are exactly those
    /// Docs/json.md documents; and every command the issue names has it.
    @Test func everyCommandWithJSONIsDocumentedAndEveryDocumentedOneHasIt() throws {
        let runner = CLIRunner(vault: URL(fileURLWithPath: "/nonexistent"), environment: ["COLUMNS": "200"])
        func subcommands(_ path: [String]) throws -> [String] {
            let help = try runner.run(path + ["--help"], withVault: false).stdout
            guard let start = help.range(of: "SUBCOMMANDS:\n") else { return [] }
            let regex = try NSRegularExpression(pattern: "^  ([a-z][a-z-]*)(  |$)", options: .anchorsMatchLines)
            let section = String(help[start.upperBound...])
            return regex.matches(in: section, range: NSRange(section.startIndex..., in: section)).compactMap {
                Range($0.range(at: 1), in: section).map { String(section[$0]) }
            }.filter { $0 != "help" }
        }
        var withJSON: Set<String> = []
        var without: Set<String> = []
        var pending = try subcommands([]).map { [$0] }
        #expect(pending.count > 20, "\(pending)")
        while let path = pending.popLast() {
            let nested = try subcommands(path)
            if !nested.isEmpty {
                pending += nested.map { path + [$0] }
                continue
            }
            let help = try runner.run(path + ["--help"], withVault: false).stdout
            if help.range(of: #"(?m)^ +--json( |$)"#, options: .regularExpression) != nil {
                withJSON.insert(path.joined(separator: " "))
            } else {
                without.insert(path.joined(separator: " "))
            }
        }
        let documented = Set(try DocumentedShapes.load().keys)
        #expect(withJSON.subtracting(documented).isEmpty, "--json but not in Docs/json.md")
        #expect(documented.subtracting(withJSON).isEmpty, "in Docs/json.md but without --json")
        let named: Set<String> = [
            "add statement", "add testimony", "edit", "tag", "delete", "undelete", "purge", "resolve", "search",
            "identity",
            "verify", "sync", "import", "export", "bundle verify", "bundle open", "invite", "join", "init", "members",
            "revoke", "role", "rename", "dismiss-fork", "recover", "backup", "restore", "passphrase", "history",
            "status", "list", "show",
        ]
        #expect(named.subtracting(withJSON).isEmpty, "without --json: \(named.subtracting(withJSON))")
    }

    /// The validator itself rejects what a broken output would look like, so a passing check means something.
    @Test func theValidatorRejectsWrongShapes() throws {
        let schema = try JSON.parse(
            #"""
            {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[0-9a-f]{4}$"},
             "n": {"type": "integer", "minimum": 1}, "ok": {"type": "boolean"},
             "kind": {"type": "string", "enum": ["a", "b"]},
             "list": {"type": "array", "items": {"type": "string"}}},
             "required": ["id", "n"], "additionalProperties": false}
            """#)
        let good = try JSON.parse(#"{"id": "0a1b", "n": 2, "ok": true, "kind": "a", "list": ["x"]}"#)
        #expect(SchemaValidator.errors(good, schema).isEmpty)
        for bad in [
            #"{"id": "0a1b"}"#, #"{"id": "0A1B", "n": 2}"#, #"{"id": "0a1b", "n": 0}"#, #"{"id": "0a1b", "n": 1.5}"#,
            #"{"id": "0a1b", "n": 2, "ok": 1}"#, #"{"id": "0a1b", "n": 2, "kind": "c"}"#,
            #"{"id": "0a1b", "n": 2, "list": [1]}"#, #"{"id": "0a1b", "n": 2, "extra": null}"#, #"["id"]"#,
        ] {
            #expect(!SchemaValidator.errors(try JSON.parse(bad), schema).isEmpty, "\(bad)")
        }
        #expect(!SchemaValidator.errors(good, try JSON.parse(#"{"type": "object", "format": "x"}"#)).isEmpty)
        #expect(throws: (any Error).self) { try JSON.parse("{} {}") }
        let either = try JSON.parse(#"{"oneOf": [{"type": "string"}, {"type": "integer"}]}"#)
        #expect(SchemaValidator.errors(.int(1), either).isEmpty && !SchemaValidator.errors(.bool(true), either).isEmpty)
    }

    /// The JSON comes from the data: two vaults, and one vault before and after a change, print different values.
    @Test func theJSONChangesWhenTheDataDoes() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        let b = scratch.runner("b")
        try a.initialize(name: "one")
        try b.initialize(name: "two")
        let first = try JSON.parse(try a.ok(["identity", "--json"]))
        let second = try JSON.parse(try b.ok(["identity", "--json"]))
        #expect(first["device"] != second["device"] && first["vault"] != second["vault"])
        #expect(first["name"]?.string == "one" && second["name"]?.string == "two")
        let before = try JSON.parse(try a.ok(["status", "--json"]))
        let added = try JSON.parse(try a.ok(["add", "statement", "--title", "A", "--tag", "x", "--json"]))
        let again = try JSON.parse(try a.ok(["add", "statement", "--title", "B", "--json"]))
        #expect(added["id"] != again["id"] && added["tags"] != again["tags"])
        #expect(again["change"]?["seq"]?.int == (added["change"]?["seq"]?.int ?? 0) + 1)
        let after = try JSON.parse(try a.ok(["status", "--json"]))
        #expect(before["records"]?.int == 0 && after["records"]?.int == 2)
        #expect(before["state_digest"] != after["state_digest"])
        let verified = try JSON.parse(try a.ok(["verify", "--json"]))
        #expect(verified["records"]?.int == 2 && verified["changes"] == after["changes"])
    }
}
