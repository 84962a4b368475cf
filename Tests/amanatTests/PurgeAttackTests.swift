import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import GRDB
import Testing

/// The attack review of purge (issue 17): a hostile member, a hostile coordinator, a courier who holds the stick or
/// runs the relay, and a careless user, end to end through the binary and hand-made inputs.
@Suite(.serialized) struct PurgeAttackTests {
    let purgeTests = PurgeTests()

    /// Every envelope `vault` holds, in (author, seq) order.
    static func log(of vault: Vault) throws -> [Envelope] {
        var out: [Envelope] = []
        for (device, head) in try vault.versionVector().sorted(by: { $0.key < $1.key }) {
            out += try vault.envelopes(of: device, after: 0, limit: Int(head.seq))
        }
        return out
    }

    // MARK: A courier strips membership entries

    /// A courier who strips the purge entry itself (its ciphertext is not what the signature covers) must not
    /// stop the purge: before, a replica stored the stripped entry as a change "without content", pushed it to the
    /// relay, and the relay (a duplicate by hash when the full entry came) never applied the purge and kept the
    /// content for good; so did every replica that syncs only with it.
    @Test func aCourierWhoStripsThePurgeEntryOnAStickCannotStopThePurge() throws {
        let scratch = try Scratch()
        let (a, b, c) = try purgeTests.team(scratch)
        let id = try purgeTests.testimony(a, ["--witness", "W-301", "--location", "Kandahar"])
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        defer { _ = relay.stop() }
        let stick = scratch.path("team.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try c.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        _ = try a.ok(["sync", relay.url])
        _ = try c.ok(["sync", relay.url])
        let traces = try PurgeTests.traces(of: id, in: a)
        _ = try a.ok(["purge", id, "--reason", "consent withdrawn", "--yes"])

        // The courier's stick: A's whole log, with the purge entry stripped of its ciphertext.
        let hostile = scratch.path("hostile.amanat-sync")
        do {
            let vault = try PurgeTests.open(a)
            let purgeSeq = try #require(vault.membership.purges.last).seq
            let envelopes = try Self.log(of: vault).map { envelope in
                envelope.header.author == vault.deviceID && envelope.header.seq == purgeSeq
                    ? envelope.purged() : envelope
            }
            #expect(try writeSyncFile(hostile, vaultID: vault.vaultID, envelopes) == envelopes.count)
        }
        let before = try b.digest()
        let refused = try b.run(["sync", hostile.path])
        #expect(refused.status != 0, "a stripped membership entry must be refused: \(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(try b.digest() == before)
        // B then syncs with the relay, A too, then C: the purge reaches everyone.
        _ = try b.ok(["sync", relay.url])
        _ = try a.ok(["sync", relay.url])
        _ = try b.ok(["sync", relay.url])
        _ = try c.ok(["sync", relay.url])
        let left = PurgeTests.leftovers(traces, in: ["b", "c", "relay"].map(scratch.path))
        #expect(left.isEmpty, "content of the purged record is still stored: \(left)")
        for cli in [b, c] {
            #expect(try !purgeTests.ids(cli).contains(id), "\(cli.vault.lastPathComponent) still lists the record")
        }
    }

    /// A coordinator's purge may name only record changes. Before, a purge naming a membership entry (here:
    /// another coordinator's revocation of a member) made every store that learned of the purge first keep the
    /// entry without its ciphertext, so the revocation never took effect there, while the stores that had it
    /// before the purge kept it: the replicas and the relay disagreed about who is a member, for good.
    @Test func aPurgeCannotStripAMembershipEntry() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(4, in: dir, roles: [.coordinator])
        let (a, b, c, d) = (team[0], team[1], team[2], team[3])
        for from in team { for to in team where to !== from { try exchange(from, to) } }
        let everything = try Self.log(of: d)

        // B revokes C; A's modified client signs a purge naming the revocation.
        let bHead = try ownHead(of: b)
        try b.revoke(c.deviceID)
        let revocation = try b.envelopes(of: b.deviceID, after: bHead.seq, limit: 10)
        #expect(revocation.allSatisfy(\.isAuthority) && !revocation.isEmpty)
        let note = try SealedNote.seal(
            record: try RecordID(Sodium.randomBytes(16)), reason: "cover", key: writingKey(of: a), vaultID: a.vaultID,
            author: a.deviceID)
        var chain = ForgedChain(vaultID: a.vaultID, signer: a.keyring.device, head: try ownHead(of: a))
        let targets = revocation.map {
            PurgeTarget(author: $0.header.author, seq: $0.header.seq, ciphertextHash: $0.ciphertextHash)
        }
        let forged = try chain.entry(.purge(Purge(targets: targets, chunks: [], note: note)), at: stamp(daysAgo: 1))

        // D (and the relay) learn of the purge first, then of the revocation; B had the revocation first.
        try d.ingest([forged])
        try d.ingest(revocation)
        try b.ingest([forged])
        #expect(b.membership.members[c.deviceID]?.isRevoked == true)
        #expect(d.membership.members[c.deviceID]?.isRevoked == true, "the revocation must take effect on D")
        #expect(d.membership == b.membership, "D and B must agree on the membership")
        #expect(try d.verify().problems.isEmpty)

        let relayDir = try TemporaryDirectory()
        let relay = try RelayStore(directory: relayDir.url)
        _ = try relay.register(vaultID: a.vaultID, key: a.relaySigningKey.publicKey)
        _ = try await relay.store(vaultID: a.vaultID, envelopes: everything)
        _ = try await relay.store(vaultID: a.vaultID, envelopes: [forged])
        _ = try await relay.store(vaultID: a.vaultID, envelopes: revocation)
        let stored = try await relay.envelopes(
            vaultID: a.vaultID, author: b.deviceID, after: bHead.seq, limit: 10, byteBudget: 1 << 20
        ).compactMap { try? Envelope(decoding: $0) }
        #expect(stored.count == revocation.count && stored.allSatisfy { !$0.isPurged }, "the relay stripped an entry")
        #expect(try await relay.membership(vaultID: a.vaultID).members[c.deviceID]?.isRevoked == true)
        relay.close()
    }

    // MARK: Two purges naming one envelope

    /// A store looked up only the *first* purge naming an (author, seq): a second purge naming the same envelope by
    /// its real ciphertext hash (the first named another hash: a fork, or a coordinator's mistake) was not
    /// recognised, so `verify` called the change "without content" and a relay that received the full envelope
    /// after both purges stored its content.
    @Test func aSecondPurgeNamingTheSameEnvelopeIsRecognised() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        try exchange(a, b)
        try exchange(b, a)
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-9")], tags: [], seal: false)
        try exchange(a, b)
        let bHead = try ownHead(of: b)
        try b.commit(record: record) { _ in [.set(field: "location", value: "Herat", pred: [])] }
        let edit = try #require(try b.envelopes(of: b.deviceID, after: bHead.seq, limit: 1).first)
        try exchange(b, a)

        // A first names B's edit with a wrong hash, then purges the record for real.
        var chain = ForgedChain(vaultID: a.vaultID, signer: a.keyring.device, head: try ownHead(of: a))
        let note = try SealedNote.seal(
            record: try RecordID(Sodium.randomBytes(16)), reason: "first", key: writingKey(of: a), vaultID: a.vaultID,
            author: a.deviceID)
        let wrong = PurgeTarget(author: b.deviceID, seq: edit.header.seq, ciphertextHash: Sodium.randomBytes(32))
        try a.ingest([try chain.entry(.purge(Purge(targets: [wrong], chunks: [], note: note)), at: stampNow())])
        try a.purge(record: record, reason: "consent withdrawn")
        #expect(a.membership.purges.count == 2)
        let report = try a.verify()
        #expect(report.withoutContent == 0 && report.purged == 2, "\(report.withoutContent) \(report.purged)")

        // The relay learns A's log (with both purges) before B pushes its edit in full.
        let relayDir = try TemporaryDirectory()
        let relay = try RelayStore(directory: relayDir.url)
        _ = try relay.register(vaultID: a.vaultID, key: a.relaySigningKey.publicKey)
        let aLog = try Self.log(of: a).filter { $0.header.author == a.deviceID }
        let bJoin = try b.envelopes(of: b.deviceID, after: 0, limit: Int(bHead.seq))
        _ = try await relay.store(vaultID: a.vaultID, envelopes: aLog + bJoin)
        _ = try await relay.store(vaultID: a.vaultID, envelopes: [edit])
        let stored = try await relay.envelopes(
            vaultID: a.vaultID, author: b.deviceID, after: bHead.seq, limit: 1, byteBudget: 1 << 20
        ).map { try Envelope(decoding: $0) }
        #expect(stored.first?.isPurged == true, "the relay stored the content of a purged change")
        relay.close()
    }

    // MARK: Stripped record changes are put back

    /// A courier strips every record change on a stick (no purge names them): the replica stores them as changes
    /// without content, `verify` warns but passes, and the next sync with an honest stick or the relay puts the
    /// content back.
    @Test func strippedChangesAreStoredWithoutContentAndPutBackFromAStickOrTheRelay() throws {
        let scratch = try Scratch()
        let (a, b, c) = try purgeTests.team(scratch)
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try c.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let id = try purgeTests.testimony(a, ["--witness", "W-351", "--location", "Ghazni"])
        _ = try a.ok(["edit", id, "--set", "location=Zabul"])
        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        defer { _ = relay.stop() }
        _ = try a.ok(["sync", relay.url])
        _ = try a.ok(["sync", stick])
        let hostile = scratch.path("hostile.amanat-sync")
        do {
            let vault = try PurgeTests.open(a)
            try writeSyncFile(
                hostile, vaultID: vault.vaultID, try Self.log(of: vault).map { $0.isAuthority ? $0 : $0.purged() })
        }
        for cli in [b, c] {
            let pulled = try cli.run(["sync", hostile.path])
            #expect(pulled.status == 0 && pulled.stderr.contains("without content"), "\(pulled.stderr)")
            #expect(try !purgeTests.ids(cli).contains(id))
            let verify = try cli.run(["verify"])
            #expect(verify.status == 0 && verify.stderr.contains("without content"), "\(verify.stderr)")
        }
        // B meets the relay, C the honest stick: both get the content back.
        let fromRelay = try b.run(["sync", relay.url])
        let fromStick = try c.run(["sync", stick])
        for (cli, r) in [(b, fromRelay), (c, fromStick)] {
            #expect(r.status == 0 && r.stderr.contains("Put back the content of 2 changes"), "\(r.stderr)")
            #expect(try purgeTests.ids(cli).contains(id))
            let verify = try cli.run(["verify"])
            #expect(verify.status == 0 && !verify.stderr.contains("without content"), "\(verify.stderr)")
            #expect(try cli.digest() == (try a.digest()))
        }
    }

    /// A member whose changes left its laptop only stripped (every carrier holds them so) sorts before an honest
    /// member whose one change a courier stripped on the way to A. Each sync looks at 256 changes without content;
    /// they take turns, so the honest change is put back within two syncs instead of never.
    @Test func changesNoCarrierCanPutBackDoNotStarveOnesItCan() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let a = team[0]
        let (low, high) = team[1].deviceID < team[2].deviceID ? (team[1], team[2]) : (team[2], team[1])
        let honest = dir.path("honest.sync")
        for vault in team + team { try await fileSync(vault, honest) }
        for i in 0..<270 {
            _ = try low.createRecord(
                kind: "statement", fields: [("title", "only stripped \(i)")], tags: [], seal: false)
        }
        let id = try high.createRecord(
            kind: "statement", fields: [("title", "stripped on the way")], tags: [], seal: false)
        try await fileSync(high, honest)
        let strippedLow = try low.envelopes(of: low.deviceID, after: 0, limit: 1000).map {
            $0.isAuthority ? $0 : $0.purged()
        }
        let strippedHigh = try high.envelopes(of: high.deviceID, after: 0, limit: 1000).map {
            $0.isAuthority ? $0 : $0.purged()
        }
        _ = try writeSyncFile(honest, vaultID: a.vaultID, strippedLow)
        let hostile = dir.path("hostile.sync")
        _ = try writeSyncFile(hostile, vaultID: a.vaultID, strippedLow + strippedHigh)
        try await fileSync(a, hostile)
        #expect(try a.changesWithoutContent().count == 271)
        #expect(try !a.visibleRecords().contains { $0.id == id })
        var restored = 0
        for _ in 0..<3 where restored == 0 { restored += try await fileSync(a, honest).restored }
        #expect(restored == 1, "the honest change was starved by 270 that no carrier can put back")
        #expect(try a.visibleRecords().contains { $0.id == id && $0.fields["title"] == "stripped on the way" })
        #expect(try a.changesWithoutContent().count == 270)
    }

    // MARK: A purge entry near the envelope limit

    /// A coordinator's purge naming 20,000 envelopes (1.3 MB; 100,000 fit under the 8 MiB limit), none of which
    /// do not exist: a replica and the relay take it without trapping or hanging and nothing else changes.
    @Test func aPurgeEntryNearTheEnvelopeLimitIsTakenAndChangesNothingElse() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        try exchange(a, b)
        try exchange(b, a)
        let kept = try a.createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        try exchange(a, b)
        var generator = SeededGenerator(seed: 17)
        print("seed 17")
        var targets: [PurgeTarget] = []
        for _ in 0..<20_000 {
            let author = try DeviceID((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let hash = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            targets.append(
                PurgeTarget(
                    author: author, seq: UInt64.random(in: 1...1_000_000, using: &generator), ciphertextHash: hash))
        }
        let note = try SealedNote.seal(
            record: try RecordID(Sodium.randomBytes(16)), reason: "bulk", key: writingKey(of: a), vaultID: a.vaultID,
            author: a.deviceID)
        var chain = ForgedChain(vaultID: a.vaultID, signer: a.keyring.device, head: try ownHead(of: a))
        let big = try chain.entry(.purge(Purge(targets: targets, chunks: [], note: note)), at: stampNow())
        #expect(big.encodedLength > 1_000_000 && big.encodedLength < Envelope.maximumLength)
        try a.ingest([big])
        let stick = dir.path("s.amanat-sync")
        try writeSyncFile(stick, vaultID: a.vaultID, try Self.log(of: a))
        let digest = try b.status().stateDigest
        try await fileSync(b, stick)
        #expect(b.membership.purges.count == 1)
        #expect(try b.allStates().map(\.id) == [kept])
        #expect(try b.status().stateDigest == digest)
        #expect(try b.verify().problems.isEmpty)

        let relayDir = try TemporaryDirectory()
        let relay = try RelayStore(directory: relayDir.url)
        _ = try relay.register(vaultID: a.vaultID, key: a.relaySigningKey.publicKey)
        let result = try await relay.store(vaultID: a.vaultID, envelopes: try Self.log(of: a))
        #expect(result.purged == 0 && result.refused == 0)
        relay.close()
    }

    // MARK: Chunks uploaded after the purge

    /// A replica whose text sync ended just before the purge reached the relay goes on uploading the record's
    /// attachment chunks: before, the relay stored them after it had applied the purge, and nothing ever removed
    /// them.
    @Test func theRelayDoesNotStoreChunksOfAPurgedRecordUploadedAfterThePurge() async throws {
        let scratch = try Scratch()
        let (a, b, _) = try purgeTests.team(scratch)
        let id = try purgeTests.testimony(a, ["--witness", "W-401"])
        let media = TestMedia.make(size: 1_048_576 + 5, seed: TestMedia.seed("late chunks"))
        let file = scratch.path("video.bin")
        try TestMedia.write(media, to: file)
        _ = try a.ok(["attach", id, file.path])
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let traces = try PurgeTests.traces(of: id, in: a)
        #expect(traces.chunkNames.count == 2)
        #expect(PurgeTests.leftovers(traces, in: [scratch.path("b")]).count >= 2, "B holds the chunks")

        let relayData = scratch.path("relay")
        let relay = try ServeProcess(data: relayData)
        defer { _ = relay.stop() }
        _ = try b.ok(["sync", relay.url, "--no-attachments"])
        _ = try a.ok(["purge", id, "--reason", "withdrawn", "--yes"])
        _ = try a.ok(["sync", relay.url])
        // B's media phase, which began before it could learn of the purge.
        let vault = try PurgeTests.open(b)
        _ = try await HTTPCarrier.with(
            url: relay.url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
            options: testOptions()
        ) { try await ChunkSync(vault: vault, carrier: $0).run() }
        let left = PurgeTests.leftovers(traces, in: [relayData])
        #expect(left.isEmpty, "the relay stored chunks of a purged record: \(left)")
    }

    // MARK: Paths that could bring content back

    /// A careless user imports an evidence bundle of the record that was exported before the purge back into the
    /// team's vault: the testimony would come back as a new record on every device that syncs.
    @Test func importingABundleExportedBeforeThePurgeDoesNotBringTheRecordBack() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator laptop")
        let id = try purgeTests.testimony(a, ["--witness", "W-501", "--consent", "share"])
        let key = scratch.path("lawyer.txt").path
        #expect(try shell("age-keygen -o '\(key)'").0 == 0)
        let recipient = try shell("age-keygen -y '\(key)'").1.trimmingCharacters(in: .whitespacesAndNewlines)
        let bundle = scratch.path("evidence.age").path
        _ = try a.ok(["export", "--out", bundle, "--recipient", recipient, "--id", id])
        _ = try a.ok(["purge", id, "--reason", "consent withdrawn", "--yes"])

        let imported = try a.run(["import", bundle, "--identity", key])
        #expect(try purgeTests.ids(a).isEmpty, "the purged testimony came back: \(imported.stderr)")
        #expect(imported.stderr.contains("purged"), "\(imported.status) \(imported.stderr)")
    }

    /// `undelete` of a record deleted, then purged: one sentence, exit 67, nothing changes.
    @Test func undeleteOfAPurgedRecordSaysItWasPurged() throws {
        let scratch = try Scratch()
        let a = scratch.runner("a")
        try a.initialize(name: "coordinator laptop")
        let id = try purgeTests.testimony(a, ["--witness", "W-601"])
        _ = try a.ok(["delete", id])
        _ = try a.ok(["purge", id, "--reason", "withdrawn", "--yes"])
        let before = try a.digest()
        let r = try a.run(["undelete", id])
        #expect(r.status == 67 && r.stderr.contains("purged"), "\(r.status) \(r.stderr)")
        #expect(try a.digest() == before)
    }

    /// A backup made before the purge, restored: the content is back on that laptop (documented), and the next
    /// sync with a carrier holding the purge removes it again from every file of the restored vault.
    @Test func aBackupRestoredAfterThePurgeLosesTheContentAtItsNextSync() throws {
        let scratch = try Scratch()
        let (a, b, _) = try purgeTests.team(scratch)
        let id = try purgeTests.testimony(a, ["--witness", "W-701"])
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        let backup = scratch.path("b.backup")
        _ = try b.ok(["backup", "--out", backup.path])
        let traces = try PurgeTests.traces(of: id, in: a)
        _ = try a.ok(["purge", id, "--reason", "withdrawn", "--yes"])
        _ = try a.ok(["sync", stick])
        _ = try b.ok(["sync", stick])

        let restored = scratch.runner("restored")
        let r = try restored.run(["restore", backup.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!PurgeTests.leftovers(traces, in: [scratch.path("restored")]).isEmpty, "the backup has the content")
        let synced = try restored.run(["sync", stick])
        #expect(synced.status == 0, "\(synced.stderr)")
        let left = PurgeTests.leftovers(traces, in: [scratch.path("restored"), URL(fileURLWithPath: stick)])
        #expect(left.isEmpty, "\(left)")
        #expect(try !purgeTests.ids(restored).contains(id))
    }

    // MARK: Malformed purged envelopes

    /// Purged forms made by hand and put into a sync file: each refused with one sentence and a non-zero exit,
    /// and the replica that syncs is left exactly as it was.
    @Test func malformedPurgedEnvelopesInASyncFileAreRefusedAndChangeNothing() throws {
        let scratch = try Scratch()
        let (a, b, _) = try purgeTests.team(scratch)
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try purgeTests.testimony(a, ["--witness", "W-801"])
        let vault = try PurgeTests.open(a)
        let change = try #require(try vault.envelopes(of: vault.deviceID, after: 0, limit: 1000).last)
        #expect(!change.isAuthority)
        let purged = change.purged().encoded()
        let header = Array(purged.prefix(EnvelopeHeader.length))
        var shortLength = header
        shortLength.replaceSubrange(121..<125, with: [0, 0, 0, 40])
        var wrongHash = purged
        wrongHash[EnvelopeHeader.length + 10] ^= 0xff
        let variants: [(String, [UInt8])] = [
            ("a ciphertext_length under 80", shortLength + Array(purged.dropFirst(EnvelopeHeader.length))),
            ("a wrong ciphertext hash", wrongHash),
            ("one byte short", Array(purged.dropLast())),
            ("one byte long", purged + [0]),
            ("a marker that is not AMNP", header + Array("AMNQ".utf8) + Array(purged.dropFirst(129))),
        ]
        let before = try b.digest()
        for (name, body) in variants {
            let url = scratch.path("bad-\(variants.firstIndex { $0.0 == name }!).amanat-sync")
            try FileManager.default.copyItem(atPath: stick, toPath: url.path)
            try writeSyncFile(url, vaultID: vault.vaultID, try Self.log(of: vault))
            let queue = try DatabaseQueue(path: url.path)
            try queue.write { db in
                try db.execute(
                    sql: "UPDATE envelope SET body = ? WHERE id = (SELECT MAX(id) FROM envelope WHERE body = ?)",
                    arguments: [Data(body), Data(change.encoded())])
                #expect(db.changesCount == 1, "\(name)")
            }
            try queue.close()
            let r = try b.run(["sync", url.path])
            #expect(r.status != 0 && r.status != 1, "\(name): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(name): \(r.stderr)")
            #expect(try b.digest() == before, "\(name) changed the replica")
        }
        #expect(try b.run(["verify"]).status == 0)
    }

    // MARK: A stripped copy on a carrier is put back

    /// A team where a courier stripped A's new testimony on a stick and B pulled it (stored without content): B is
    /// about to push it, stripped, to a carrier before A does.
    func strippedTestimony(_ scratch: Scratch, witness: String) throws -> (
        a: CLIRunner, b: CLIRunner, c: CLIRunner, id: String
    ) {
        let (a, b, c) = try purgeTests.team(scratch)
        let stick = scratch.path("s.amanat-sync").path
        _ = try a.ok(["sync", stick, "--create"])
        _ = try b.ok(["sync", stick])
        _ = try c.ok(["sync", stick])
        _ = try a.ok(["sync", stick])
        let id = try purgeTests.testimony(a, ["--witness", witness])
        let hostile = scratch.path("hostile.amanat-sync")
        do {
            let vault = try PurgeTests.open(a)
            let envelopes = try Self.log(of: vault).map { $0.isAuthority ? $0 : $0.purged() }
            try writeSyncFile(hostile, vaultID: vault.vaultID, envelopes)
        }
        _ = try b.ok(["sync", hostile.path])
        return (a, b, c, id)
    }

    /// After B pushed the stripped copies to `carrier`: A's sync puts the content back and says so, C (which syncs
    /// only with `carrier`) gets the testimony whole, and A's next sync has nothing more to put back.
    func expectPutBack(
        on carrier: String, _ s: (a: CLIRunner, b: CLIRunner, c: CLIRunner, id: String),
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let put = try s.a.run(["sync", carrier])
        #expect(
            put.status == 0 && put.stderr.contains("Put back on \(carrier) the content of 1 change"), "\(put.stderr)",
            sourceLocation: sourceLocation)
        let synced = try s.c.run(["sync", carrier])
        #expect(
            synced.status == 0 && !synced.stderr.contains("without content"), "\(synced.stderr)",
            sourceLocation: sourceLocation)
        #expect(try purgeTests.ids(s.c).contains(s.id), "C never gets the testimony", sourceLocation: sourceLocation)
        let again = try s.a.run(["sync", carrier])
        #expect(
            again.status == 0 && !again.stderr.contains("Put back"), "\(again.stderr)", sourceLocation: sourceLocation)
    }

    /// A courier strips record changes on a stick; a member pulls them (stored without content) and pushes them to
    /// the relay before their author does. The author's full copies are duplicates by hash, so without a way to put
    /// content back the relay would hold them stripped for good, and a replica that syncs only with the relay would
    /// never get the testimony. The relay announces the copies it holds without content; the author's sync puts
    /// them back (Protocol/sync.md §2, step 6).
    @Test func aStrippedChangeOnTheRelayIsPutBackWhenItsAuthorSyncs() throws {
        let scratch = try Scratch()
        let s = try strippedTestimony(scratch, witness: "W-901")
        let relay = try ServeProcess(data: scratch.path("relay"))
        defer { _ = relay.stop() }
        _ = try s.b.ok(["sync", relay.url])
        try expectPutBack(on: relay.url, s)
    }

    /// The same through a stick: a member who pulled stripped copies writes them to the team's sync file before their
    /// author does; the author's next sync with the file puts the content back, and a new reader of the file gets
    /// the testimony.
    @Test func aStrippedChangeOnASyncFileIsPutBackWhenItsAuthorSyncs() throws {
        let scratch = try Scratch()
        let s = try strippedTestimony(scratch, witness: "W-902")
        let team = scratch.path("team.amanat-sync").path
        _ = try s.b.ok(["sync", team, "--create"])
        try expectPutBack(on: team, s)
    }
}
