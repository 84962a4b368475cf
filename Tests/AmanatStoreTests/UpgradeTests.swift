import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// A vault made by the first release (Tests/AmanatStoreTests/FirstReleaseVault) opens with the current code, keeps
/// every record, gains a membership log, syncs, and refuses devices minted from its vault key afterwards.
@Suite struct UpgradeTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("FirstReleaseVault")
    static let passphraseText = "correct horse battery staple"
    static let deviceA = "e48c04b2431e7e022a96023a6316cbf4e3b5b74f6d9870a4b16e5ccb488719a0"
    static let deviceB = "65e42ecd72d8896479a47a0e3dd7eb4fbb446e93285ce9d266c3f4c24285b2ae"

    var pass: SecureBytes { SecureBytes(Array(Self.passphraseText.utf8)) }

    /// One record as `list --json` prints it.
    struct Listed: Codable, Equatable {
        var id: String
        var kind: String
        var fields: [String: String]
        var tags: [String]
        var conflicts: [String: [String]]

        init(id: String, kind: String, fields: [String: String], tags: [String], conflicts: [String: [String]]) {
            self.id = id
            self.kind = kind
            self.fields = fields
            self.tags = tags
            self.conflicts = conflicts
        }

        init(_ view: RecordView) {
            self.init(id: view.id.hex, kind: view.kind, fields: view.fields, tags: view.tags, conflicts: view.conflicts)
        }
    }

    /// What the first release printed for `list --json` on device-a.
    func expected() throws -> [Listed] {
        let data = try Data(contentsOf: Self.fixture.appendingPathComponent("list-a.json"))
        return try JSONDecoder().decode([Listed].self, from: data).sorted { $0.id < $1.id }
    }

    /// Copies of both fixture devices in `dir` (`a`, `b`), never the committed files themselves.
    func copies(_ dir: TemporaryDirectory) throws -> (URL, URL) {
        let fm = FileManager.default
        var urls: [URL] = []
        for (source, name) in [("device-a", "a"), ("device-b", "b")] {
            let to = dir.path(name)
            try fm.createDirectory(at: to, withIntermediateDirectories: true)
            for file in try fm.contentsOfDirectory(atPath: Self.fixture.appendingPathComponent(source).path) {
                try fm.copyItem(
                    at: Self.fixture.appendingPathComponent(source).appendingPathComponent(file),
                    to: to.appendingPathComponent(file))
            }
            urls.append(to)
        }
        return (urls[0], urls[1])
    }

    func listed(_ vault: Vault) throws -> [Listed] {
        try vault.visibleRecords().map(Listed.init).sorted { $0.id < $1.id }
    }

    @Test func firstReleaseVaultsOpenWithEveryRecordAndConverge() async throws {
        let dir = try TemporaryDirectory()
        let (urlA, urlB) = try copies(dir)
        let a = try Vault.open(at: urlA, passphrase: pass)
        let b = try Vault.open(at: urlB, passphrase: pass)
        #expect(a.deviceID.hex == Self.deviceA && b.deviceID.hex == Self.deviceB)
        let expected = try expected()
        #expect(expected.count == 3)
        #expect(try listed(a) == expected)
        #expect(try listed(b) == expected)
        for vault in [a, b] {
            let report = try vault.verify()
            #expect(report.problems == [], "\(report.problems)")
            #expect(report.heldBack == [], "\(report.heldBack)")
            #expect(report.seals == 2)
        }
        // Each device upgraded its own view: device-a, the earliest writer, is coordinator; device-b a member.
        for vault in [a, b] {
            let roles = Dictionary(uniqueKeysWithValues: vault.members().map { ($0.device.hex, $0.role) })
            #expect(roles[Self.deviceA] == .coordinator, "\(vault.members())")
            #expect(roles[Self.deviceB] == .member, "\(vault.members())")
            #expect(roles.count == 2)
        }

        let stick = dir.path("team.sync")
        for vault in [a, b, a] { try await fileSync(vault, stick) }
        #expect(try a.status().stateDigest == b.status().stateDigest)
        #expect(a.members() == b.members())
        #expect(try listed(a) == expected)
        let names = Dictionary(uniqueKeysWithValues: a.members().map { ($0.device.hex, $0.name) })
        #expect(names[Self.deviceA] == "Coordinator laptop" && names[Self.deviceB] == "Field laptop", "\(names)")

        // device-b still writes, and a receives it.
        let fresh = try b.createRecord(
            kind: "statement", fields: [("title", "after the upgrade")], tags: [], seal: false)
        try await fileSync(b, stick)
        try await fileSync(a, stick)
        #expect(try a.visibleRecords().first { $0.id == fresh }?.fields["title"] == "after the upgrade")
        #expect(try a.status().stateDigest == b.status().stateDigest)
        #expect(try a.verify().problems == [])

        // A device minted later from the vault key (taken from device-b) is not a member: its change is held back.
        var minted = ForgedChain(vaultID: b.vaultID, signer: mintFirstSortingDevice())
        let mintedID = minted.device
        let testimony = try #require(try expected.first { $0.fields["witness"] == "W-001" })
        let record = try #require(RecordID(hex: testimony.id))
        let forged = [
            try minted.change(
                RecordID.derived(author: mintedID, seq: 1), key: writingKey(of: b), at: stamp(daysAgo: 400),
                [.create(kind: "statement"), .set(field: "title", value: "minted after the upgrade", pred: [])]),
            try minted.change(
                record, key: writingKey(of: b), at: stamp(daysAgo: 400),
                testimonyOperations([("witness", "W-001"), ("narrative", "Nothing happened.")])),
        ]
        let file = dir.path("minted.sync")
        #expect(try writeSyncFile(file, vaultID: b.vaultID, forged) == 2)
        try await fileSync(a, file)
        #expect(try !a.visibleRecords().contains { $0.fields["title"] == "minted after the upgrade" })
        #expect(
            try a.visibleRecords().first { $0.id == record }?.fields["narrative"] == "I was detained at the checkpoint."
        )
        #expect(!a.membership.isKnown(mintedID))
        #expect(try a.heldBackSummary().contains { $0.device == mintedID && $0.reason == .notMember })
        #expect(try a.verify().problems == [])
    }

    @Test func aDeviceMintedFromAFirstReleaseVaultKeyIsListedAsSuchAndCanBeCutOffEntirely() async throws {
        let dir = try TemporaryDirectory()
        let (urlA, urlB) = try copies(dir)
        let a = try Vault.open(at: urlA, passphrase: pass)
        let b = try Vault.open(at: urlB, passphrase: pass)
        let stick = dir.path("team.sync")
        for vault in [a, b, a] { try await fileSync(vault, stick) }
        // The upgrade entry `adopt` takes effect for a device that wrote a record change: a minted device writes
        // one, then adopts the vault naming itself coordinator with a legacy head that lets it create any id.
        let key = writingKey(of: b)
        var minted = ForgedChain(vaultID: b.vaultID, signer: mintFirstSortingDevice())
        let mintedID = minted.device
        let testimony = try #require(RecordID(hex: "6b45e6d0dc0a36b4328fd45c000efcc8"))
        let forged = [
            try minted.change(
                testimony, key: key, at: stamp(daysAgo: 600),
                testimonyOperations([("witness", "W-001"), ("narrative", "Nothing happened.")])),
            try minted.entry(
                .adopt(
                    coordinator: mintedID, members: [LegacyMember(device: mintedID, head: 1_000)],
                    agreementKey: AgreementKeyPair.generate().publicKey,
                    name: try SealedName.seal("Coordinator laptop", key: key, vaultID: b.vaultID, device: mintedID)
                ), at: stamp(daysAgo: 600)),
        ]
        #expect(try writeSyncFile(dir.path("minted.sync"), vaultID: b.vaultID, forged) == 2)
        try await fileSync(a, dir.path("minted.sync"))
        // A first-release vault had no membership: holding its key was belonging, so a device minted from that
        // key is indistinguishable from one that wrote before the upgrade and its adopt is taken (the threat model
        // says so). What membership adds: the device is listed for what it is, never as a founder or an
        // invited member, and a coordinator can hold back every change it ever made.
        let listed = try #require(a.members().first { $0.device == mintedID })
        #expect(listed.adopted && listed.admittedBy == nil)
        try a.revoke(mintedID, allChanges: true)
        #expect(
            try a.visibleRecords().first { $0.id == testimony }?.fields["narrative"]
                == "I was detained at the checkpoint.")
        #expect(
            try a.heldBackSummary().contains { $0.device == mintedID && $0.reason == .revoked },
            "\((try? a.heldBackSummary()).debugDescription)")
        #expect(try a.verify().problems == [])
        // The revocation travels: the other device holds the minted changes back too.
        for vault in [a, b] { try await fileSync(vault, stick) }
        try await fileSync(b, dir.path("minted.sync"))
        #expect(
            try b.visibleRecords().first { $0.id == testimony }?.fields["narrative"]
                == "I was detained at the checkpoint.")
        #expect(try b.status().stateDigest == a.status().stateDigest)
    }

    @Test func theCommandLineOpensFirstReleaseVaults() throws {
        let dir = try TemporaryDirectory()
        let (urlA, urlB) = try copies(dir)
        func run(_ url: URL, _ args: [String]) throws -> AmanatBinary.Result {
            try AmanatBinary.run(args, vault: url, passphrase: Self.passphraseText)
        }
        func ok(_ url: URL, _ args: [String]) throws -> String {
            let r = try run(url, args)
            #expect(r.status == 0, "amanat \(args.joined(separator: " ")): \(r.stderr)")
            return r.stdout
        }
        let expected = try expected()
        for url in [urlA, urlB] {
            let list = try JSONDecoder().decode([Listed].self, from: Data(try ok(url, ["list", "--json"]).utf8))
            #expect(list.sorted { $0.id < $1.id } == expected)
            let verify = try run(url, ["verify"])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout.contains("2 seals verified"), "\(verify.stdout)")
            let members = try JSONSerialization.jsonObject(with: Data(try ok(url, ["members", "--json"]).utf8))
            let roles = Dictionary(
                uniqueKeysWithValues: (members as? [[String: Any]] ?? []).map {
                    ($0["device"] as? String ?? "", $0["role"] as? String ?? "")
                })
            #expect(roles == [Self.deviceA: "coordinator", Self.deviceB: "member"], "\(members)")
        }
        let stick = dir.path("team.sync").path
        for url in [urlA, urlB, urlA] { _ = try ok(url, ["sync", "--create", stick]) }
        func digest(_ url: URL) throws -> String {
            let status = try JSONSerialization.jsonObject(with: Data(try ok(url, ["status", "--json"]).utf8))
            return (status as? [String: Any])?["state_digest"] as? String ?? ""
        }
        #expect(try digest(urlA) == digest(urlB))
        let id = try ok(urlB, ["add", "statement", "--title", "written after the upgrade"])
        #expect(id.trimmingCharacters(in: .whitespacesAndNewlines).count == 32)
        for url in [urlB, urlA] { _ = try ok(url, ["sync", "--create", stick]) }
        #expect(try ok(urlA, ["list", "--json"]).contains("written after the upgrade"))
        #expect(try digest(urlA) == digest(urlB))
        #expect(try run(urlA, ["verify"]).status == 0)
    }
}
