import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

/// `amanat purge` (issue 17): a coordinator destroys a testimony's content on every replica, sync file and relay;
/// signatures and chains stay whole, and nothing brings the content back.
@Suite(.serialized) struct PurgeTests {
    /// What of a record must be gone after its purge: a 48-byte slice of each of its changes' ciphertexts (no
    /// store may hold it, so no key can ever open it), and the files of its attachment chunks.
    struct Traces {
        var ciphertexts: [Data] = []
        var chunkNames: [String] = []
    }

    static func open(_ cli: CLIRunner) throws -> Vault {
        try Vault.open(at: cli.vault, passphrase: SecureBytes(Array(cli.passphrase.utf8)))
    }

    static func traces(of id: String, in cli: CLIRunner) throws -> Traces {
        let vault = try open(cli)
        let state = try vault.resolveRecord(id, includeDeleted: true)
        var traces = Traces()
        for (envelope, _) in try vault.history(of: state) {
            traces.ciphertexts.append(Data(envelope.ciphertext[16..<64]))
        }
        for info in state.allAttachments {
            traces.chunkNames += try vault.chunkAddresses(of: info).map { String(Hex.encode($0).dropFirst(2)) }
        }
        return traces
    }

    /// Every file under `roots` that still holds a ciphertext slice or is a purged chunk.
    static func leftovers(_ traces: Traces, in roots: [URL]) -> [String] {
        var found: [String] = []
        for root in roots {
            var rootIsDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root.path, isDirectory: &rootIsDirectory)
            // A file is scanned itself (an enumerator of a file yields nothing).
            let files =
                rootIsDirectory.boolValue
                ? FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }
                    ?? [] : [root]
            for file in files {
                if traces.chunkNames.contains(file.lastPathComponent) { found.append(file.path) }
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory),
                    !isDirectory.boolValue, let data = try? Data(contentsOf: file, options: .alwaysMapped)
                else { continue }
                for slice in traces.ciphertexts where data.range(of: slice) != nil {
                    found.append("\(file.path) holds ciphertext \(slice.prefix(4).map { String($0) })")
                }
            }
        }
        return found
    }

    /// Adds a testimony whose narrative is typed on standard input; returns its id.
    func testimony(_ cli: CLIRunner, _ extra: [String]) throws -> String {
        let r = try cli.run(["add", "testimony", "--narrative-file", "-"] + extra, stdin: "They came at night. ")
        guard r.status == 0 else { throw CLIFailure(description: "add testimony exited \(r.status): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The ids `list` shows (none: `list` exits 2).
    func ids(_ cli: CLIRunner) throws -> [String] {
        let r = try cli.run(["list", "--json"])
        guard r.status == 0 else { return [] }
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        return rows.compactMap { $0["id"] as? String }
    }

    func team(_ scratch: Scratch) throws -> (a: CLIRunner, b: CLIRunner, c: CLIRunner) {
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator laptop")
        var members: [CLIRunner] = []
        for name in ["b", "c"] {
            let invitation = scratch.path("invite-\(name).amanat").path
            let code = try a.ok(["invite", "--out", invitation])
            let member = scratch.runner(name)
            _ = try member.ok([
                "join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "laptop \(name)",
            ])
            members.append(member)
        }
        return (a, members[0], members[1])
    }

    @Test func aPurgeReachesASyncFileAndTheRelayAndNothingBringsTheContentBack() throws {
        let scratch = try Scratch()
        let (a, b, c) = try team(scratch)
        let id = try testimony(a, ["--witness", "W-017", "--location", "Kabul"])
        _ = try a.ok(["edit", id, "--set", "location=Herat"])
        let media = TestMedia.make(size: 2 * 1_048_576 + 77, seed: TestMedia.seed("purge"))
        let file = scratch.path("interview.bin")
        try TestMedia.write(media, to: file)
        _ = try a.ok(["attach", id, file.path])
        let kept = try a.ok(["add", "statement", "--title", "Kept statement", "--body", "Stays."])

        // B gets everything through a stick and edits the testimony too; C through the relay.
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try b.ok(["edit", id, "--set", "location=Mazar"])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        _ = try a.ok(["sync", relay.url])
        _ = try c.ok(["sync", relay.url])
        #expect(try ids(c).contains(id))
        // An old copy of the stick, as someone may keep in a drawer.
        let oldStick = scratch.path("old.amanat-sync").path
        try FileManager.default.copyItem(atPath: stick, toPath: oldStick)
        try FileManager.default.copyItem(atPath: stick + ".chunks", toPath: oldStick + ".chunks")

        let traces = try Self.traces(of: id, in: a)
        #expect(traces.ciphertexts.count == 4 && traces.chunkNames.count == 3)
        #expect(!Self.leftovers(traces, in: [relayData, scratch.path("c")]).isEmpty, "the test must see the traces")

        // Only a coordinator may purge; a script must confirm.
        let refused = try b.run(["purge", id, "--reason", "consent withdrawn", "--yes"])
        #expect(refused.status == 77 && refused.stderr.contains("Only a coordinator"), "\(refused.stderr)")
        let unconfirmed = try a.run(["purge", id, "--reason", "consent withdrawn"])
        #expect(unconfirmed.status == 64 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stderr)")
        let noReason = try a.run(["purge", id, "--reason", " ", "--yes"])
        #expect(noReason.status == 64, "\(noReason.stderr)")

        let purged = try a.run(["purge", id, "--reason", "The witness withdrew consent.", "--yes"])
        #expect(purged.status == 0, "\(purged.stderr)")
        #expect(purged.stderr.contains("4 changes and 3 attachment chunks"), "\(purged.stderr)")

        // The purge travels: A to the stick and the relay, then B from the stick and C from the relay.
        _ = try a.ok(["sync", stick])
        _ = try a.ok(["sync", relay.url])
        // Each says what arrived: the record purged, by id only.
        let arrivedB = try b.run(["sync", stick])
        #expect(arrivedB.status == 0 && arrivedB.stderr.contains("1 record purged"), "\(arrivedB.stderr)")
        #expect(arrivedB.stderr.contains("PURGED \(id.prefix(12))"), "\(arrivedB.stderr)")
        #expect(!arrivedB.stderr.contains("W-017"), "\(arrivedB.stderr)")
        let arrivedC = try JSONOutputTests.Checker().check("sync", c, ["sync", relay.url])
        #expect(arrivedC["purged"]?.array?.compactMap(\.string) == [id], "\(arrivedC)")
        // B syncs the old copy of the stick: nothing comes back, and the copy loses the content too.
        _ = try b.ok(["sync", oldStick])

        let roots = [
            "a", "b", "c", "relay", "team.amanat-sync", "team.amanat-sync.chunks", "old.amanat-sync",
            "old.amanat-sync.chunks",
        ].map(scratch.path)
        let left = Self.leftovers(traces, in: roots)
        #expect(left.isEmpty, "content of the purged record is still stored: \(left)")

        for cli in [a, b, c] {
            let shown = try ids(cli)
            #expect(!shown.contains(id) && shown.contains(kept), "\(cli.vault.lastPathComponent): \(shown)")
            let verify = try cli.run(["verify"])
            #expect(verify.status == 0, "\(cli.vault.lastPathComponent): \(verify.stderr)")
            #expect(verify.stderr.contains("purged: 4 changes"), "\(verify.stderr)")
            let history = try cli.run(["history", id])
            #expect(history.status == 0 && history.stdout.contains("purged by coordinator laptop"), "\(history)")
            #expect(history.stdout.contains("The witness withdrew consent."), "\(history.stdout)")
            #expect(!history.stdout.contains("Herat") && !history.stdout.contains("W-017"), "\(history.stdout)")
            let show = try cli.run(["show", id])
            #expect(show.status == 67 && show.stderr.contains("was purged"), "\(show.stderr)")
            // Even with the vault key, no store of this device yields a change of the record.
            let vault = try Self.open(cli)
            #expect(try vault.allStates().allSatisfy { $0.id.hex != id })
        }
        // Every store that took the purge agrees on the state.
        #expect(try a.digest() == (try b.digest()) && (try b.digest()) == (try c.digest()))
        _ = relay.stop()
    }

    @Test func aChangeWrittenBeforeItsAuthorLearnedOfThePurgeIsDroppedToo() throws {
        let scratch = try Scratch()
        let (a, b, _) = try team(scratch)
        let id = try testimony(a, ["--witness", "W-5"])
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        // B edits offline while A purges.
        _ = try b.ok(["edit", id, "--set", "location=Bamyan"])
        let late = try Self.traces(of: id, in: b)
        _ = try a.ok(["purge", id, "--reason", "danger to the witness", "--yes"])
        _ = try a.ok(["sync", stick])
        // B learns of the purge before it pushes: its own late edit is dropped before it leaves the laptop.
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let left = Self.leftovers(late, in: ["a", "b", "s.amanat-sync"].map(scratch.path))
        #expect(left.isEmpty, "\(left)")
        for cli in [a, b] {
            #expect(try cli.run(["verify"]).status == 0)
            #expect(try !ids(cli).contains(id))
        }
    }

    @Test func aLateEditThatReachesACoordinatorInFullIsPurgedEverywhereByAFollowUp() throws {
        let scratch = try Scratch()
        let (a, b, _) = try team(scratch)
        let id = try testimony(a, ["--witness", "W-6"])
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        // B's edit reaches the stick before the purge does.
        _ = try b.ok(["edit", id, "--set", "location=Kunduz"])
        _ = try b.ok(["sync", stick])
        let late = try Self.traces(of: id, in: b)
        _ = try a.ok(["purge", id, "--reason", "withdrawn", "--yes"])
        // A pulls B's late edit: it is dropped and named by a follow-up purge, which reaches the stick and B.
        _ = try a.ok(["sync", stick])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let left = Self.leftovers(late, in: ["a", "b", "s.amanat-sync"].map(scratch.path))
        #expect(left.isEmpty, "\(left)")
        for cli in [a, b] {
            let verify = try cli.run(["verify"])
            #expect(verify.status == 0 && !verify.stderr.contains("without content"), "\(verify.stderr)")
        }
    }

    @Test func aPurgeEntryForgedByAMemberIsIgnoredByEveryReplicaAndTheRelay() async throws {
        let scratch = try Scratch()
        let (a, b, c) = try team(scratch)
        let id = try testimony(a, ["--witness", "W-7"])
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        _ = try a.ok(["sync", relay.url])
        _ = try b.ok(["sync", relay.url])
        let traces = try Self.traces(of: id, in: a)

        // A modified client on B signs a purge entry naming A's change, with B's own key, and syncs it.
        do {
            let vault = try Self.open(b)
            let state = try vault.resolveRecord(id)
            let targets = try vault.history(of: state).map {
                PurgeTarget(
                    author: $0.envelope.header.author, seq: $0.envelope.header.seq,
                    ciphertextHash: $0.envelope.ciphertextHash)
            }
            let note = try SealedNote.seal(
                record: state.id, reason: "forged", key: writingKey(of: vault), vaultID: vault.vaultID,
                author: vault.deviceID)
            var chain = ForgedChain(vaultID: vault.vaultID, signer: vault.keyring.device, head: try ownHead(of: vault))
            let forged = try chain.entry(.purge(Purge(targets: targets, chunks: [], note: note)), at: stampNow())
            try vault.ingest([forged])
        }
        _ = try b.ok(["sync", relay.url])
        _ = try c.ok(["sync", relay.url])
        _ = try a.ok(["sync", relay.url])
        // Nothing was destroyed anywhere: the content is still on the relay and on every laptop.
        for root in ["a", "b", "c", "relay"] {
            #expect(!Self.leftovers(traces, in: [scratch.path(root)]).isEmpty, "\(root) lost the content")
        }
        for cli in [a, b, c] {
            #expect(try ids(cli).contains(id))
            #expect(try cli.run(["verify"]).status == 0)
        }
        _ = relay.stop()
    }
}
