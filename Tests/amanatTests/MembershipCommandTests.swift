import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation
import Testing

/// Membership attacks and recoveries through the real `amanat` binary, with hostile input made by the real
/// sealing and sync-file code from keys taken out of a member's opened vault.
@Suite struct MembershipCommandTests {
    // MARK: Helpers (this target does not link AmanatTestSupport)

    /// Opens a runner's vault in this process, as a modified client would.
    func open(_ runner: CLIRunner) throws -> Vault {
        try Vault.open(at: runner.vault, passphrase: SecureBytes(Array(runner.passphrase.utf8)))
    }

    /// What a modified client takes from its own vault: the vault id, the key it writes with, its signing key and
    /// its chain head.
    struct Loot {
        var vaultID: [UInt8]
        var key: VaultKey
        var signer: SigningKeyPair
        var head: ChainHead
        var device: DeviceID
    }

    func loot(_ runner: CLIRunner) throws -> Loot {
        let vault = try open(runner)
        var key = vault.keyring.currentKey
        if let rotation = vault.membership.currentRotation, let rotated = vault.key(epoch: rotation.epoch) {
            key = rotated
        }
        return Loot(
            vaultID: vault.vaultID, key: key, signer: vault.keyring.device,
            head: try vault.versionVector()[vault.deviceID] ?? .empty, device: vault.deviceID)
    }

    /// A signing key generated until its public key sorts before every other device's.
    func mintFirstSortingDevice() -> SigningKeyPair {
        while true {
            let pair = SigningKeyPair.generate()
            if pair.publicKey[0] == 0 { return pair }
        }
    }

    /// A chain of hand-sealed envelopes by one signer.
    struct Chain {
        let vaultID: [UInt8]
        let signer: SigningKeyPair
        var head: ChainHead = .empty

        var device: DeviceID {
            guard let id = try? DeviceID(signer.publicKey) else { fatalError("unreachable") }
            return id
        }

        mutating func change(_ record: RecordID, key: VaultKey, at stamp: HLCTimestamp, _ ops: [RecordOperation])
            throws -> Envelope
        {
            let envelope = try Envelope.seal(
                Change(record: record, timestamp: stamp, operations: ops), vaultID: vaultID, key: key, signer: signer,
                seq: head.seq + 1, previousHash: head.hash)
            head = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
            return envelope
        }

        mutating func entry(_ operation: MembershipOperation, at stamp: HLCTimestamp) throws -> Envelope {
            let envelope = try Envelope.seal(
                MembershipEntry(timestamp: stamp, operation: operation), vaultID: vaultID, signer: signer,
                seq: head.seq + 1, previousHash: head.hash)
            head = ChainHead(seq: envelope.header.seq, hash: envelope.hash)
            return envelope
        }
    }

    func stamp(daysAgo days: UInt64) -> HLCTimestamp {
        HLCTimestamp(wallMillis: UInt64(Date().timeIntervalSince1970 * 1000) - days * 86_400_000, counter: 0)
    }

    func testimonyOperations(_ fields: [(String, String)]) -> [RecordOperation] {
        [.create(kind: "testimony")] + fields.map { RecordOperation.set(field: $0.0, value: $0.1, pred: []) }
            + [.seal(contentHash: RecordState.sealHash(kind: "testimony", fields: fields))]
    }

    /// Appends envelopes to a sync file (created if missing) with the real sync-file code.
    func write(_ envelopes: [Envelope], to url: URL, vaultID: [UInt8]) throws {
        let written = try SyncFile.open(at: url, vaultID: vaultID, create: true).append(envelopes)
        #expect(written == envelopes.count, "the sync file took \(written) of \(envelopes.count) envelopes")
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// The device ids `members --json` lists.
    func memberIDs(_ runner: CLIRunner) throws -> [String] {
        (try json(try runner.ok(["members", "--json"])) as? [[String: Any]] ?? []).compactMap {
            $0["device"] as? String
        }
    }

    /// `status --json`'s held_back entries.
    func heldBack(_ runner: CLIRunner) throws -> [(device: String, reason: String, changes: Int)] {
        (try runner.status()["held_back"] as? [[String: Any]] ?? []).map {
            ($0["device"] as? String ?? "", $0["reason"] as? String ?? "", $0["changes"] as? Int ?? 0)
        }
    }

    func deviceHex(_ runner: CLIRunner) throws -> String { try runner.status()["device"] as? String ?? "" }

    /// `a` made with init (coordinator), `b` joined from a's invitation (member).
    func makePair(_ scratch: Scratch) throws -> (CLIRunner, CLIRunner) {
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator laptop")
        let b = try join(scratch, "b", invitedBy: a, name: "field laptop")
        return (a, b)
    }

    /// A new device `name` joined from an invitation of `inviter` with `role`.
    func join(_ scratch: Scratch, _ dir: String, invitedBy inviter: CLIRunner, name: String, role: String = "member")
        throws -> CLIRunner
    {
        try scratch.join(dir, invitedBy: inviter, deviceName: name, role: role, invitation: "invite-\(dir).amanat")
    }

    /// `show`, `show --json`, `history` and `verify` of record `id` on `runner` tell the truth: the real narrative,
    /// the real author's creating change as the sealed original, no trace of the fabrication.
    func expectTruth(
        _ runner: CLIRunner, _ id: String, narrative: String, fabricated: String, author: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let show = try runner.ok(["show", id])
        #expect(show.contains(narrative) && !show.contains(fabricated), "\(show)", sourceLocation: sourceLocation)
        let record = try json(try runner.ok(["show", id, "--json"])) as? [String: Any] ?? [:]
        #expect(record["kind"] as? String == "testimony", sourceLocation: sourceLocation)
        #expect((record["fields"] as? [String: String])?["narrative"] == narrative, sourceLocation: sourceLocation)
        let history = try runner.ok(["history", id])
        #expect(!history.contains(fabricated), "\(history)", sourceLocation: sourceLocation)
        let originals = history.split(separator: "\n").filter { $0.contains("(original, sealed)") }
        #expect(originals.count == 1, "\(history)", sourceLocation: sourceLocation)
        #expect(
            originals.first?.contains(String(author.prefix(12))) == true, "\(history)", sourceLocation: sourceLocation)
        #expect(!history.contains("(amendment)"), "\(history)", sourceLocation: sourceLocation)
    }

    // MARK: 1. Re-creating another member's sealed testimony

    @Test func aDeviceMintedWithTheVaultKeyCannotRewriteASealedTestimony() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("team.sync").path
        let narrative = "I was detained at the checkpoint on the road to Herat."
        let id = try b.ok(["add", "testimony", "--witness", "W-017", "--narrative", narrative, "--location", "Herat"])
        _ = try b.ok(["sync", "--create", stick])
        _ = try a.ok(["sync", "--create", stick])
        let bHex = try deviceHex(b)

        // Someone who holds the vault key (taken from b's unlocked vault) mints a device that sorts first and
        // re-creates b's testimony, 30 days before it was written.
        let stolen = try loot(b)
        var minted = Chain(vaultID: stolen.vaultID, signer: mintFirstSortingDevice())
        let fabricatedText = "I was never detained; the checkpoint story is invented."
        let fabricated = [("witness", "W-017"), ("narrative", fabricatedText), ("location", "Herat")]
        let record = try #require(RecordID(hex: id))
        let forged = try minted.change(record, key: stolen.key, at: stamp(daysAgo: 30), testimonyOperations(fabricated))
        let file = scratch.path("forged.amanat-sync")
        try write([forged], to: file, vaultID: stolen.vaultID)

        let imported = try a.run(["import", file.path])
        #expect(imported.status == 0, "\(imported.stderr)")
        try expectTruth(a, id, narrative: narrative, fabricated: fabricatedText, author: bHex)
        let verify = try a.run(["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.contains("held back"), "\(verify.stderr)")
        #expect(verify.stderr.contains(String(minted.device.hex.prefix(12))), "\(verify.stderr)")
        #expect(try heldBack(a).contains { $0.device == minted.device.hex && $0.changes == 1 })
        #expect(try !memberIDs(a).contains(minted.device.hex))
        #expect((try a.status()["forks"] as? [Any])?.isEmpty == true)
    }

    /// The same attack, with the minted device also writing the upgrade entry of a first-release vault (`adopt`)
    /// that names itself coordinator with a legacy head under which any record id may be created.
    @Test func aDeviceMintedWithTheVaultKeyCannotAdoptTheVaultAndRewriteASealedTestimony() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("team.sync").path
        let narrative = "I was detained at the checkpoint on the road to Herat."
        let id = try b.ok(["add", "testimony", "--witness", "W-017", "--narrative", narrative, "--location", "Herat"])
        _ = try b.ok(["sync", "--create", stick])
        _ = try a.ok(["sync", "--create", stick])
        let bHex = try deviceHex(b)

        let stolen = try loot(b)
        var minted = Chain(vaultID: stolen.vaultID, signer: mintFirstSortingDevice())
        let mintedID = minted.device
        let fabricatedText = "I was never detained; the checkpoint story is invented."
        let fabricated = [("witness", "W-017"), ("narrative", fabricatedText), ("location", "Herat")]
        let record = try #require(RecordID(hex: id))
        let name = try SealedName.seal("coordinator laptop", key: stolen.key, vaultID: stolen.vaultID, device: mintedID)
        let forged = [
            try minted.change(record, key: stolen.key, at: stamp(daysAgo: 30), testimonyOperations(fabricated)),
            try minted.entry(
                .adopt(
                    coordinator: mintedID, members: [LegacyMember(device: mintedID, head: 1_000)],
                    agreementKey: AgreementKeyPair.generate().publicKey, name: name), at: stamp(daysAgo: 30)),
            try minted.change(record, key: stolen.key, at: stamp(daysAgo: 29), testimonyOperations(fabricated)),
        ]
        let file = scratch.path("forged.amanat-sync")
        try write(forged, to: file, vaultID: stolen.vaultID)

        let imported = try a.run(["import", file.path])
        #expect(imported.status == 0, "\(imported.stderr)")
        try expectTruth(a, id, narrative: narrative, fabricated: fabricatedText, author: bHex)
        let verify = try a.run(["verify"])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.contains("held back"), "\(verify.stderr)")
        #expect(try !memberIDs(a).contains(mintedID.hex), "a minted device became a member")
        #expect(try heldBack(a).contains { $0.device == mintedID.hex })
    }

    @Test func aMemberCannotRecreateAnotherMembersTestimonyNorCreateRecordsItsIDsDoNotDerive() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let c = try join(scratch, "c", invitedBy: a, name: "hostile member")
        let stick = scratch.path("team.sync").path
        let narrative = "Soldiers searched every house in the village."
        let id = try b.ok(["add", "testimony", "--witness", "W-020", "--narrative", narrative])
        let statement = try a.ok(["add", "statement", "--title", "Coalition statement"])
        for runner in [a, b, c, a, b, c] { _ = try runner.ok(["sync", "--create", stick]) }
        let before = try a.ok(["list", "--json"])
        let bHex = try deviceHex(b)

        // c's modified client writes three changes at its next seqs and pushes them into the sync file.
        let own = try loot(c)
        var hostile = Chain(vaultID: own.vaultID, signer: own.signer, head: own.head)
        let fabricatedText = "Nobody searched anything."
        let forged = [
            try hostile.change(
                try #require(RecordID(hex: id)), key: own.key, at: stamp(daysAgo: 30),
                testimonyOperations([("witness", "W-020"), ("narrative", fabricatedText)])),
            try hostile.change(
                try RecordID(Sodium.randomBytes(16)), key: own.key, at: stamp(daysAgo: 0),
                [.create(kind: "statement"), .set(field: "title", value: "an id that does not derive", pred: [])]),
            try hostile.change(
                try #require(RecordID(hex: statement)), key: own.key, at: stamp(daysAgo: 30),
                [.create(kind: "testimony")]),
        ]
        try write(forged, to: URL(fileURLWithPath: stick), vaultID: own.vaultID)

        for runner in [a, b] {
            _ = try runner.ok(["sync", "--create", stick])
            try expectTruth(runner, id, narrative: narrative, fabricated: fabricatedText, author: bHex)
            #expect(try runner.ok(["list", "--json"]) == before)
            let kind = (try json(try runner.ok(["show", statement, "--json"])) as? [String: Any])?["kind"] as? String
            #expect(kind == "statement")
            let verify = try runner.run(["verify"])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(
                verify.stderr.contains("3 changes of hostile member")
                    && verify.stderr.contains("creates a record it may not create"), "\(verify.stderr)")
            // `status` reports how many changes are held back and from whom, as `verify` does (issue 9 §3).
            let held = try heldBack(runner)
            #expect(
                held.contains { $0.device == own.device.hex && $0.reason == "creates a record it may not create" },
                "status --json held_back: \(held)")
        }
    }

    // MARK: 2. Forks planted by a key that is not a member

    @Test func forksPlantedByAKeyThatIsNotAMemberAreNotRecorded() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("team.sync").path
        _ = try a.ok(["add", "statement", "--title", "Coalition statement"])
        for runner in [a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        // The vault id is all a courier needs: it is in every envelope of the sync file.
        let vaultID = try open(a).vaultID
        let signer = mintFirstSortingDevice()
        var one = Chain(vaultID: vaultID, signer: signer)
        var two = Chain(vaultID: vaultID, signer: signer)
        let device = try DeviceID(signer.publicKey)
        func name(_ text: String) throws -> SealedName {
            try SealedName.seal(text, key: .generate(epoch: 1), vaultID: vaultID, device: device)
        }
        let first = scratch.path("first.amanat-sync")
        let second = scratch.path("second.amanat-sync")
        try write([try one.entry(.rename(try name("one")), at: stamp(daysAgo: 0))], to: first, vaultID: vaultID)
        try write(
            [
                try two.entry(.rename(try name("two")), at: stamp(daysAgo: 0)),
                try two.entry(.rename(try name("three")), at: stamp(daysAgo: 0)),
            ], to: second, vaultID: vaultID)
        for (runner, files) in [(a, [first, second]), (b, [second, first])] {
            for file in files {
                let r = try runner.run(["import", file.path])
                #expect(r.status == 0, "\(r.stderr)")
                #expect(!r.stderr.contains("forked") && !r.stderr.contains("signed two different"), "\(r.stderr)")
            }
            #expect((try runner.status()["forks"] as? [Any])?.isEmpty == true)
            let status = try runner.ok(["status"])
            #expect(!status.contains("FORK"), "\(status)")
            let verify = try runner.run(["verify"])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(try !memberIDs(runner).contains(device.hex))
        }
    }

    // MARK: 3. A reader's writes

    @Test func aReadersWritesAreHeldBackEverywhere() async throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let reader = try join(scratch, "reader", invitedBy: a, name: "lawyer laptop", role: "reader")
        let stick = scratch.path("team.sync").path
        let statement = try a.ok(["add", "statement", "--title", "Coalition statement"])
        for runner in [a, b, reader, a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        let beforeA = try a.ok(["list", "--json"])
        let beforeB = try b.ok(["list", "--json"])
        let readerHex = try deviceHex(reader)

        // The reader's modified client writes anyway and pushes with the real file carrier.
        let own = try loot(reader)
        var chain = Chain(vaultID: own.vaultID, signer: own.signer, head: own.head)
        let forged = [
            try chain.change(
                RecordID.derived(author: own.device, seq: own.head.seq + 1), key: own.key, at: stamp(daysAgo: 0),
                [.create(kind: "statement"), .set(field: "title", value: "written by a reader", pred: [])]),
            try chain.change(
                try #require(RecordID(hex: statement)), key: own.key, at: stamp(daysAgo: 0),
                [.set(field: "title", value: "rewritten by a reader", pred: [])]),
        ]
        let carrier = try FileCarrier(url: URL(fileURLWithPath: stick), vaultID: own.vaultID)
        let pushed = try await carrier.push(forged)
        #expect(pushed == 2)

        for (runner, before) in [(a, beforeA), (b, beforeB)] {
            _ = try runner.ok(["sync", "--create", stick])
            #expect(try runner.ok(["list", "--json"]) == before)
            let show = try runner.ok(["show", statement])
            #expect(show.contains("Coalition statement") && !show.contains("rewritten"), "\(show)")
            let verify = try runner.run(["verify"])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(
                verify.stderr.contains("held back: 2 changes of lawyer laptop") && verify.stderr.contains("(reader)"),
                "\(verify.stderr)")
            #expect(
                try heldBack(runner).contains { $0.device == readerHex && $0.reason == "reader" && $0.changes == 2 })
        }
        let add = try reader.run(["add", "statement", "--title", "a reader tries the command line"])
        #expect(add.status == 77, "\(add.stderr)")
    }

    // MARK: 4. A second use of an invitation

    @Test func anInvitationAdmitsOneDeviceOnly() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator laptop")
        let invitation = scratch.path("invite.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        let b = scratch.runner("b")
        _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "field laptop"])
        let stick = scratch.path("team.sync").path
        for runner in [b, a] { _ = try runner.ok(["sync", "--create", stick]) }

        let second = scratch.runner("second")
        _ = try second.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "second"])
        let secondHex = try deviceHex(second)
        // Before it has synced, the second device believes it is a member and writes.
        _ = try second.run(["add", "statement", "--title", "written by the second device"])
        let told = try second.run(["sync", "--create", stick])
        #expect(told.status == 0, "\(told.stderr)")
        #expect(told.stderr.contains("this device was not admitted"), "\(told.stderr)")

        let warned = try a.run(["sync", "--create", stick])
        #expect(warned.status == 0, "\(warned.stderr)")
        #expect(
            warned.stderr.contains("tried to join with an invitation already used")
                && warned.stderr.contains(String(secondHex.prefix(12))), "\(warned.stderr)")
        _ = try b.ok(["sync", "--create", stick])
        for runner in [a, b, second] {
            #expect(try !memberIDs(runner).contains(secondHex), "\(runner.vault.lastPathComponent)")
        }
        for runner in [a, b] {
            #expect(try !runner.ok(["list", "--json"]).contains("written by the second device"))
            #expect(try heldBack(runner).contains { $0.device == secondHex && $0.reason == "not a member" })
        }
        #expect(try deviceHex(b) != secondHex)
    }

    // MARK: 5. Revocation while a member is offline

    @Test func revokingWhileAMemberIsOfflineRotatesTheKeyThroughAUSBFile() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let c = try join(scratch, "c", invitedBy: a, name: "office laptop")
        let stick = scratch.path("team.sync").path
        for runner in [a, b, c, a, b, c] { _ = try runner.ok(["sync", "--create", stick]) }
        let bHex = try deviceHex(b)

        // Only a coordinator revokes.
        let notAllowed = try c.run(["revoke", String(bHex.prefix(12))])
        #expect(notAllowed.status == 77, "\(notAllowed.stderr)")

        // b writes after the last change of b that a has seen (b does not know yet).
        _ = try b.ok(["add", "statement", "--title", "written by b after the cut"])
        _ = try a.ok(["revoke", String(bHex.prefix(12))])
        let secret = "The safe house moved to the old bakery."
        let testimony = try a.ok(["add", "testimony", "--witness", "W-099", "--narrative", secret])

        // c was offline; it syncs only with the USB file a wrote.
        let usb = scratch.path("usb.amanat-sync").path
        _ = try a.ok(["sync", "--create", usb])
        _ = try c.ok(["sync", "--create", usb])
        #expect(try c.ok(["show", testimony]).contains(secret))
        #expect(try c.list().contains { $0["id"] as? String == testimony })

        // b gets the file too: it reads nothing new, its late change travels, and it cannot write any more.
        let pulled = try b.run(["sync", "--create", usb])
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(try b.run(["show", testimony]).status != 0)
        #expect(try !b.ok(["list", "--json"]).contains(secret))
        let add = try b.run(["add", "statement", "--title", "b once more"])
        #expect(add.status == 77, "\(add.stderr)")
        #expect(try b.status()["role"] as? String == "revoked")

        for runner in [a, c] {
            _ = try runner.ok(["sync", "--create", usb])
            #expect(try heldBack(runner).contains { $0.device == bHex && $0.reason == "revoked" && $0.changes == 1 })
            #expect(try !runner.ok(["list", "--json"]).contains("written by b after the cut"))
            let verify = try runner.run(["verify"])
            #expect(verify.status == 0 && verify.stderr.contains("(revoked)"), "\(verify.stderr)")
            let members = try json(try runner.ok(["members", "--json"])) as? [[String: Any]] ?? []
            let revoked = members.first { $0["device"] as? String == bHex }
            #expect(revoked?["status"] as? String == "revoked")
        }
        #expect(try a.digest() == c.digest())
    }

    @Test func theLastCoordinatorCannotBeRevokedOrDemoted() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let aHex = try deviceHex(a)
        let stick = scratch.path("team.sync").path
        for runner in [a, b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        #expect(try a.run(["revoke", String(aHex.prefix(12))]).status != 0)
        #expect(try a.run(["role", String(aHex.prefix(12)), "member"]).status != 0)
        #expect(try b.run(["revoke", String(aHex.prefix(12))]).status == 77)
        // With a second coordinator, one of them may revoke the other, never both: the vault keeps a coordinator.
        let bHex = try deviceHex(b)
        _ = try a.ok(["role", String(bHex.prefix(12)), "coordinator"])
        for runner in [a, b] { _ = try runner.ok(["sync", "--create", stick]) }
        _ = try a.ok(["revoke", String(bHex.prefix(12))])
        #expect(try a.run(["role", String(aHex.prefix(12)), "reader"]).status != 0)
        let members = try json(try a.ok(["members", "--json"])) as? [[String: Any]] ?? []
        let active = members.filter { $0["status"] as? String == "active" && $0["role"] as? String == "coordinator" }
        #expect(active.map { $0["device"] as? String } == [aHex])
    }

    // MARK: 6. A vault restored from a copy

    @Test func aRestoredCopyIsToldToRecoverAndItsWorkReachesTheOthers() throws {
        let scratch = try Scratch()
        let (a, b) = try makePair(scratch)
        let stick = scratch.path("team.sync").path
        _ = try b.ok(["add", "statement", "--title", "before the backup"])
        for runner in [b, a] { _ = try runner.ok(["sync", "--create", stick]) }
        let oldHex = try deviceHex(b)

        let restored = scratch.runner("restored")
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = ["-a", b.vault.path, restored.vault.path]
        try copy.run()
        copy.waitUntilExit()
        #expect(copy.terminationStatus == 0)

        _ = try b.ok(["add", "statement", "--title", "from the original laptop"])
        _ = try b.ok(["sync", "--create", stick])
        _ = try restored.ok(["add", "statement", "--title", "restored one"])
        _ = try restored.ok(["add", "statement", "--title", "restored two"])
        let told = try restored.run(["sync", "--create", stick])
        #expect(told.status == 0, "\(told.stderr)")
        #expect(
            told.stderr.contains("this laptop's own device identity has forked")
                && told.stderr.contains("amanat recover"), "\(told.stderr)")
        let newHex = try restored.ok(["recover"])
        #expect(newHex.count == 64 && newHex != oldHex, "\(newHex)")
        _ = try restored.ok(["sync", "--create", stick])
        for runner in [a, b] { _ = try runner.ok(["sync", "--create", stick]) }

        let titles = try a.list().compactMap { ($0["fields"] as? [String: String])?["title"] }.sorted()
        #expect(titles == ["before the backup", "from the original laptop", "restored one", "restored two"])
        let members = try json(try a.ok(["members", "--json"])) as? [[String: Any]] ?? []
        let newcomer = members.first { $0["device"] as? String == newHex }
        #expect(newcomer?["admitted_by"] as? String == oldHex, "\(members)")
        #expect(newcomer?["status"] as? String == "active")
        #expect(try a.run(["verify"]).status == 0)
        _ = try restored.ok(["sync", "--create", stick])
        #expect(try a.digest() == b.digest())
        #expect(try a.digest() == restored.digest())
        // The original keeps working.
        _ = try b.ok(["add", "statement", "--title", "the original still works"])
        _ = try b.ok(["sync", "--create", stick])
        _ = try a.ok(["sync", "--create", stick])
        #expect(try a.list().contains { ($0["fields"] as? [String: String])?["title"] == "the original still works" })
    }
}
