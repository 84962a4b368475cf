import AmanatCrypto
import AmanatHTTP
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatCore
@testable import AmanatStore
import AmanatWire

/// Every attack a hostile peer can make with what it sends — forged authorship, reused seqs with different content,
/// `pred` naming ops of another field or no op at all, ops for unknown records, values and counts over every limit,
/// envelopes of another vault or epoch, replays — built as the attacker builds them and delivered through both
/// carriers: a hand-made sync file (written with the real sync-file code, or edited with SQL where that code would
/// refuse) and a hostile relay on a loopback port that answers the real HTTP client with crafted bytes.
///
/// Each attack is either **rejected** (one clear sentence, the victim's `state_digest` and change count unchanged)
/// or **held back** (kept as evidence and not applied; `status` or `verify` says so), and honest replicas that also
/// receive the hostile input still converge (equal `state_digest`).
///
/// Limits this suite covers, each just over: envelope seq (2^63 − 1), relay vector seq (2^63 − 1) and one entry per
/// author, relay counts larger than their data, envelopes per relay answer (10 000), relay answer size (24 MiB),
/// `remaining` at 2^64 − 1 (saturating), varints (10 bytes, minimal), operation index (2^32 − 1), fork evidence per
/// device (16), kept-apart envelopes per device (1 000), device names (96 bytes) and sealed names (256 bytes). The
/// change format sets no limit of its own on a field value's size, on operations per change or on tags per record
/// (Protocol/change.md §3): an envelope is bounded by its carrier (8 MiB per relay request; a sync file row by
/// SQLite's 1 GB blob limit).
@Suite struct MaliciousPeerTests {
    /// The two ways hostile envelopes reach a replica.
    enum Route: String, CaseIterable, CustomStringConvertible {
        case syncFile = "a hand-made sync file"
        case hostileRelay = "a hostile relay"
        var description: String { rawValue }
    }

    /// A team of four: `a` founds the vault and wrote one record, `b` and `c` are honest replicas, `mole` is a
    /// member whose client was modified. Everyone synced through an honest sync file first.
    struct Scene {
        let dir: TemporaryDirectory
        let a: Vault
        let b: Vault
        let c: Vault
        let mole: Vault
        let record: RecordID

        init() async throws {
            dir = try TemporaryDirectory()
            let team = try makeTeam(4, in: dir)
            (a, b, c, mole) = (team[0], team[1], team[2], team[3])
            record = try a.createRecord(
                kind: "statement", fields: [("title", "t"), ("body", "b")], tags: ["x"], seal: false)
            let honest = dir.path("honest.sync")
            for vault in team + team { try await fileSync(vault, honest) }
        }

        var honest: [Vault] { [a, b, c] }

        /// The mole's chain so far.
        func moleChain() throws -> ForgedChain {
            ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        }

        /// Every envelope of `vault`'s own chain.
        func chain(of vault: Vault) throws -> [Envelope] {
            try vault.envelopes(of: vault.deviceID, after: 0, limit: 10_000)
        }

        /// Delivers `envelopes` to `victim` as a hostile carrier would.
        @discardableResult
        func deliver(_ envelopes: [Envelope], to victim: Vault, by route: Route) async throws -> SyncReport {
            switch route {
            case .syncFile:
                let url = dir.path("hostile-\(UUID().uuidString).sync")
                try writeSyncFile(url, vaultID: victim.vaultID, envelopes)
                return try await fileSync(victim, url)
            case .hostileRelay:
                let relay = try HostileRelay(serving: envelopes)
                let report = try await relaySync(victim, relay.url, options: testOptions(attempts: 1))
                _ = relay.port
                return report
            }
        }

        /// Delivers through `route`; the delivery must fail with a sentence containing every one of `words` and leave
        /// `victim` exactly as it was.
        func expectRejected(
            _ envelopes: [Envelope], to victim: Vault, by route: Route, mentioning words: [String],
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let digest = try victim.status().stateDigest
            let changes = try victim.changeCount()
            do {
                let report = try await deliver(envelopes, to: victim, by: route)
                Issue.record("accepted through \(route): \(report)", sourceLocation: sourceLocation)
            } catch {
                let message = MaliciousPeerTests.sentence(error)
                for word in words {
                    #expect(
                        message.lowercased().contains(word.lowercased()), "\(route): \(message)",
                        sourceLocation: sourceLocation)
                }
                #expect(!message.contains("\n"), "one sentence: \(message)", sourceLocation: sourceLocation)
            }
            #expect(try victim.status().stateDigest == digest, "\(route)", sourceLocation: sourceLocation)
            #expect(try victim.changeCount() == changes, "\(route)", sourceLocation: sourceLocation)
        }

        /// The honest replicas sync with each other through a real relay until nothing moves, and must then hold
        /// the same state.
        func expectHonestConverge(sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let relay = try await startRelay(data: dir.path("relay-\(UUID().uuidString)"))
            do {
                for vault in honest + honest { try await relaySync(vault, relay.url) }
            } catch {
                await relay.stop()
                throw error
            }
            await relay.stop()
            let digests = try honest.map { try $0.status().stateDigest }
            #expect(Set(digests).count == 1, "honest replicas diverged", sourceLocation: sourceLocation)
            for vault in honest {
                #expect(try vault.verify().problems == [], sourceLocation: sourceLocation)
            }
        }
    }

    static func sentence(_ error: any Error) -> String {
        switch error {
        case let error as StoreError: error.message
        case let error as CoreError: error.message
        case let error as RelayClientError: error.message
        default: String(describing: error)
        }
    }

    // MARK: Forged authorship

    /// The mole, holding the vault key, encrypts a change exactly as `a` would (a's envelope key, a's next seq and
    /// link) and signs it with its own key: everything checks out except whose signature it is.
    @Test(arguments: Route.allCases)
    func aChangeSignedInAnotherMembersNameIsRefused(route: Route) async throws {
        let s = try await Scene()
        let key = writingKey(of: s.mole)
        let head = try ownHead(of: s.a)
        let change = Change(
            record: s.record, timestamp: stampNow(), operations: [.set(field: "title", value: "FORGED", pred: [])])
        let plaintext = change.encoded()
        let header = EnvelopeHeader(
            vaultID: s.a.vaultID, author: s.a.deviceID, seq: head.seq + 1, previousHash: head.hash,
            keyEpoch: key.epoch, nonce: Sodium.randomBytes(24),
            ciphertextLength: UInt32(plaintext.count + AEAD.tagLength))
        let ciphertext = try key.withEnvelopeKey(author: s.a.deviceID, seq: header.seq) {
            try AEAD.seal(plaintext, additionalData: header.encoded(), nonce: header.nonce, keyBytes: $0)
        }
        let forged = Envelope(
            header: header, ciphertext: ciphertext,
            signature: s.mole.keyring.device.sign(header.encoded() + BLAKE2b.hash(ciphertext)))
        // A sync file carries a's whole chain (its rows must start at seq 1), then the forgery.
        let delivered = route == .syncFile ? try s.chain(of: s.a) + [forged] : [forged]
        for victim in [s.b, s.c] {
            try await s.expectRejected(delivered, to: victim, by: route, mentioning: ["signature"])
        }
        #expect(try s.b.visibleRecords().first?.fields["title"] == "t")
        try await s.expectHonestConverge()
    }

    /// Someone who holds the vault key (a stolen laptop's keyring, say) but was never admitted signs changes with a
    /// key of its own: they are kept apart as evidence and never applied.
    @Test(arguments: Route.allCases)
    func changesSignedByAKeyNobodyAdmittedAreKeptApart(route: Route) async throws {
        let s = try await Scene()
        var stranger = ForgedChain(vaultID: s.a.vaultID, signer: mintFirstSortingDevice())
        let key = writingKey(of: s.a)
        let ghost = try #require(RecordID(hex: String(repeating: "cd", count: 16)))
        let hostile = [
            try stranger.change(
                s.record, key: key, at: stampNow(), [.set(field: "title", value: "STRANGER", pred: [])]),
            try stranger.change(ghost, key: key, at: stampNow(), testimonyOperations([("title", "planted")])),
        ]
        let digest = try s.b.status().stateDigest
        for victim in [s.b, s.c] {
            let report = try await s.deliver(hostile, to: victim, by: route)
            #expect(report.keptApart == 2, "\(route): \(report)")
            #expect(try victim.keptApartCounts()[stranger.device] == 2)
            #expect(try victim.visibleRecords().map { $0.fields["title"] } == ["t"])
        }
        #expect(try s.b.status().stateDigest == digest, "kept apart: nothing the replica shows changed")
        try await s.expectHonestConverge()
    }

    // MARK: Reused seqs

    /// The mole signs two different changes with one seq and gives each to other replicas: the second one each
    /// replica sees is fork evidence, reported by status and verify, never merged; the other members' work still
    /// syncs.
    @Test(arguments: Route.allCases)
    func aSeqReusedWithDifferentContentIsAForkReportedAndNeverMerged(route: Route) async throws {
        let s = try await Scene()
        var first = try s.moleChain()
        var second = try s.moleChain()
        let key = writingKey(of: s.mole)
        let seq = first.head.seq + 1
        let x = try first.change(s.record, key: key, at: stampNow(), [.set(field: "body", value: "X", pred: [])])
        let y = try second.change(s.record, key: key, at: stampNow(), [.set(field: "body", value: "Y", pred: [])])
        // b and c hold branch X (through an honest sync file); then the hostile carrier gives them branch Y.
        let moleBefore = try s.chain(of: s.mole)
        try writeSyncFile(s.dir.path("x.sync"), vaultID: s.a.vaultID, moleBefore + [x])
        for victim in [s.b, s.c] { try await fileSync(victim, s.dir.path("x.sync")) }
        let digest = try s.b.status().stateDigest
        for victim in [s.b, s.c] {
            let report = try await s.deliver(route == .syncFile ? moleBefore + [y] : [y], to: victim, by: route)
            #expect(report.forks == [ForkReport(device: s.mole.deviceID, seq: seq)], "\(route): \(report)")
            #expect(try victim.status().forks.map(\.device) == [s.mole.deviceID])
            #expect(try victim.verify().problems.contains { $0.contains("forked") })
        }
        #expect(try s.b.status().stateDigest == digest, "the second branch is evidence, not state")
        #expect(try s.c.status().stateDigest == digest)
        #expect(try s.b.resolveRecord(s.record.hex).view?.fields["body"] == "X")

        // A replica that saw the other branch first keeps it: fork evidence stays on the replicas that saw both
        // branches and is not forwarded (a residual risk, Docs/threat-model.md), and they push nothing more of the
        // forked device. Everyone else's work still reaches every replica.
        let d = try addMember(to: s.a, at: s.dir.path("d"), name: "d")
        for vault in [s.a, d] { try await fileSync(vault, s.dir.path("honest.sync")) }
        try await s.deliver(moleBefore + [y], to: d, by: .syncFile)
        _ = try s.a.createRecord(kind: "statement", fields: [("title", "after the fork")], tags: [], seal: false)
        for vault in [s.a, d, s.b, d] { try await fileSync(vault, s.dir.path("honest.sync")) }
        #expect(try d.resolveRecord(s.record.hex).view?.fields["body"] == "Y")
        #expect(try s.b.resolveRecord(s.record.hex).view?.fields["body"] == "X")
        #expect(try d.visibleRecords().contains { $0.fields["title"] == "after the fork" })
        #expect(try s.b.visibleRecords().contains { $0.fields["title"] == "after the fork" })
    }

    /// Fork evidence is recorded for members only, at most 16 envelopes per device, and a coordinator can dismiss it
    /// while it stays stored.
    @Test func forkEvidenceOfOneDeviceIsCappedAndCanBeDismissedWhileItStays() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (coordinator, member) = (team[0], team[1])
        for _ in 0..<30 {
            _ = try member.createRecord(kind: "statement", fields: [("title", "honest")], tags: [], seal: false)
        }
        let stick = dir.path("stick.sync")
        for vault in [member, coordinator] { try await fileSync(vault, stick) }
        let honest = try member.envelopes(of: member.deviceID, after: 0, limit: 100)
        #expect(honest.count == 31)
        let key = try #require(member.key(epoch: 1))
        var forks = 0
        for original in honest.dropFirst() {
            // A genuinely signed, different change at the same seq and link: what a cloned laptop would sign.
            let change = Change(
                record: RecordID.derived(author: member.deviceID, seq: original.header.seq), timestamp: stampNow(),
                operations: [.create(kind: "statement"), .set(field: "title", value: "other branch", pred: [])])
            let conflicting = try Envelope.seal(
                change, vaultID: member.vaultID, key: key, signer: member.keyring.device, seq: original.header.seq,
                previousHash: original.header.previousHash)
            forks += try coordinator.ingest([conflicting]).forks.count
        }
        #expect(forks == 30, "every conflict is reported")
        let stored = try await coordinator.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork")
        }
        #expect(stored == Vault.forkEvidencePerDevice, "but at most \(Vault.forkEvidencePerDevice) are kept")
        #expect(try coordinator.verify().problems.contains { $0.contains("forked") })

        // A member may not dismiss; the coordinator may, and the evidence stays.
        #expect(throws: StoreError.self) { try member.dismissForks(of: member.deviceID) }
        try coordinator.dismissForks(of: member.deviceID)
        #expect(try coordinator.verify().problems == [])
        #expect(try coordinator.forks().allSatisfy(\.dismissed))
        let kept = try await coordinator.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fork") }
        #expect(kept == stored)
        #expect(throws: StoreError.self) { try coordinator.dismissForks(of: member.deviceID) }
    }

    // MARK: pred and unknown records

    /// A member's modified client writes odd but genuinely signed changes: honest replicas take them in any order
    /// and still converge, and nothing they show depends on which arrived first.
    @Test func predsNamingOtherFieldsOrNothingAndEditsOfUnknownRecordsConvergeInAnyOrder() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(3, in: dir)
        let (author, first, second) = (team[0], team[1], team[2])
        let record = try author.createRecord(
            kind: "statement", fields: [("title", "t"), ("body", "b")], tags: ["x"], seal: false)
        let honest = try author.envelopes(of: author.deviceID, after: 0, limit: 100)
        let state = try author.resolveRecord(record.hex)
        let bodyOp = try #require(state.values["body"]?.first?.op)

        let mole = first
        var chain = ForgedChain(vaultID: mole.vaultID, signer: mole.keyring.device, head: try ownHead(of: mole))
        let odd = try Self.oddChanges(&chain, key: writingKey(of: mole), record: record, bodyOp: bodyOp)
        let moleChain = try mole.envelopes(of: mole.deviceID, after: 0, limit: 100)

        // Two honest replicas receive the same envelopes in opposite orders.
        try first.ingest(honest)
        for envelope in odd.reversed() { _ = try? second.ingest([envelope]) }  // out of order: refused, nothing kept
        try second.ingest(moleChain + odd)
        try second.ingest(honest)
        try first.ingest(odd)
        #expect(try first.status().stateDigest == second.status().stateDigest)
        try Self.expectOddChangesShown(second, record: record)
        #expect(try first.verify().problems == [])
    }

    /// A set of `title` whose pred names the op of `body`; a set naming an op that does not exist; an edit and a tag
    /// on a record nobody created; an empty change.
    static func oddChanges(_ chain: inout ForgedChain, key: VaultKey, record: RecordID, bodyOp: OpID) throws
        -> [Envelope]
    {
        let ghost = try #require(RecordID(hex: String(repeating: "ab", count: 16)))
        let missing = OpID(device: chain.device, seq: 999, index: 7)
        return [
            try chain.change(record, key: key, at: stampNow(), [.set(field: "title", value: "t2", pred: [bodyOp])]),
            try chain.change(record, key: key, at: stampNow(), [.set(field: "body", value: "b2", pred: [missing])]),
            try chain.change(ghost, key: key, at: stampNow(), [.set(field: "title", value: "ghost", pred: [])]),
            try chain.change(ghost, key: key, at: stampNow(), [.addTag("ghost")]),
            try chain.change(record, key: key, at: stampNow(), []),
        ]
    }

    static func expectOddChangesShown(
        _ vault: Vault, record: RecordID, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let view = try #require(try vault.resolveRecord(record.hex).view, sourceLocation: sourceLocation)
        // Removal by op id is global within a record (Docs/architecture.md): the title's pred removed the body's
        // first value, and overwrote no title value, so the title shows a conflict; a pred naming nothing
        // removes nothing.
        #expect(
            Set([view.fields["title"]] + (view.conflicts["title"] ?? []).map(Optional.some)) == ["t", "t2"],
            sourceLocation: sourceLocation)
        #expect(view.fields["body"] == "b2" && view.conflicts["body"] == nil, sourceLocation: sourceLocation)
        #expect(
            try vault.visibleRecords().map(\.id) == [record], "a record nobody created is never shown",
            sourceLocation: sourceLocation)
        #expect(try vault.verify().problems == [], sourceLocation: sourceLocation)
    }

    /// The same odd changes through each carrier: b takes them from a sync file, c from a hostile relay.
    @Test func predsNamingOtherFieldsOrNothingAndEditsOfUnknownRecordsThroughBothCarriers() async throws {
        let s = try await Scene()
        let bodyOp = try #require(try s.a.resolveRecord(s.record.hex).values["body"]?.first?.op)
        var chain = try s.moleChain()
        let odd = try Self.oddChanges(&chain, key: writingKey(of: s.mole), record: s.record, bodyOp: bodyOp)
        try await s.deliver(try s.chain(of: s.mole) + odd, to: s.b, by: .syncFile)
        try await s.deliver(odd, to: s.c, by: .hostileRelay)
        #expect(try s.b.status().stateDigest == s.c.status().stateDigest)
        try Self.expectOddChangesShown(s.b, record: s.record)
        try await s.expectHonestConverge()
    }

    // MARK: Another vault, another epoch

    /// A genuine envelope of another vault, replayed into this one.
    @Test(arguments: Route.allCases)
    func anEnvelopeOfAnotherVaultIsRefused(route: Route) async throws {
        let s = try await Scene()
        let other = try Vault.create(
            at: s.dir.path("other"), passphrase: passphrase, deviceName: "o", strength: .interactive)
        _ = try other.createRecord(kind: "statement", fields: [("title", "foreign")], tags: [], seal: false)
        let foreign = try other.envelopes(of: other.deviceID, after: 0, limit: 10)
        switch route {
        case .syncFile:
            // The sync-file code refuses to write it, so the attacker writes the rows with SQL.
            let url = s.dir.path("foreign.sync")
            try writeSyncFile(url, vaultID: s.a.vaultID, [])
            let file = try SyncFile.open(at: url, vaultID: s.a.vaultID, create: false)
            try file.executeForTesting("INSERT INTO device(key) VALUES (?)", [Data(other.deviceID.bytes)])
            for envelope in foreign {
                try file.executeForTesting(
                    "INSERT INTO envelope(id, body) VALUES (((SELECT id FROM device WHERE key = ?) << 40) | \(envelope.header.seq), ?)",
                    [Data(other.deviceID.bytes), Data(envelope.encoded())])
            }
            for victim in [s.b, s.c] {
                let digest = try victim.status().stateDigest
                do {
                    try await fileSync(victim, url)
                    Issue.record("a foreign envelope was accepted")
                } catch let error as StoreError {
                    #expect(error.message.contains("another vault"), "\(error.message)")
                }
                #expect(try victim.status().stateDigest == digest)
            }
        case .hostileRelay:
            for victim in [s.b, s.c] {
                try await s.expectRejected(foreign, to: victim, by: route, mentioning: ["another vault"])
            }
        }
        try await s.expectHonestConverge()
    }

    /// An outsider who knows only the vault id signs an epoch-0 envelope whose plaintext is not an entry, in a sync
    /// file every member uses: kept apart as a stranger's evidence, and honest syncs go on.
    @Test func anOutsidersGarbageInASyncFileDoesNotStopHonestSyncs() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        let sync = dir.path("team.sync")
        for v in [a, b, a, b] { try await fileSync(v, sync) }
        var outsider = ForgedChain(vaultID: a.vaultID, signer: SigningKeyPair.generate())
        #expect(try writeSyncFile(sync, vaultID: a.vaultID, [try outsider.unreadable(epoch: 0)]) == 1)
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST AFTER POISON")], tags: [], seal: false)
        try await fileSync(b, sync)
        let report = try await fileSync(a, sync)
        #expect(report.keptApart == 1, "kept apart as a stranger's evidence, not applied")
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST AFTER POISON" })
        #expect(try a.verify().problems == [])
        #expect(try a.status().stateDigest == b.status().stateDigest)
    }

    /// A member pushes a record change of the current epoch whose ciphertext does not decrypt, through a real
    /// relay (which cannot tell): kept as the member's held-back evidence, and honest syncs go on.
    @Test func aMembersUndecryptableChangeOnARelayDoesNotStopHonestSyncs() async throws {
        let dir = try TemporaryDirectory()
        let relay = try await startRelay(data: dir.path("relay"))
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        for v in [a, b, c, a, b, c] { try await relaySync(v, relay.url) }
        var hostile = ForgedChain(vaultID: c.vaultID, signer: c.keyring.device, head: try ownHead(of: c))
        let junk = try hostile.unreadable(epoch: writingKey(of: c).epoch)
        let pushed = try await HTTPCarrier.with(
            url: relay.url, vaultID: c.vaultID, key: c.relaySigningKey, device: c.keyring.device, options: testOptions()
        ) { try await $0.push([junk]) }
        #expect(pushed == 1, "the relay cannot tell: it cannot decrypt")
        _ = try b.createRecord(kind: "statement", fields: [("title", "HONEST AFTER POISON")], tags: [], seal: false)
        try await relaySync(b, relay.url)
        try await relaySync(a, relay.url)
        #expect(try a.visibleRecords().contains { $0.fields["title"] == "HONEST AFTER POISON" })
        let report = try a.verify()
        #expect(report.problems == [])
        #expect(report.heldBack.contains { $0.device == c.deviceID && $0.reason == .undecryptable })
        #expect(try a.status().stateDigest == b.status().stateDigest)
        await relay.stop()
    }

    /// A member signs a change of an epoch nobody was given: it is kept unread (signed and chained), counted by
    /// verify, and never applied.
    @Test(arguments: Route.allCases)
    func aMembersEnvelopeOfAnEpochNobodyHoldsIsKeptUnread(route: Route) async throws {
        let s = try await Scene()
        var chain = try s.moleChain()
        let unknownEpoch = try chain.unreadable(epoch: 77)
        let digest = try s.b.status().stateDigest
        for victim in [s.b, s.c] {
            try await s.deliver(
                route == .syncFile ? try s.chain(of: s.mole) + [unknownEpoch] : [unknownEpoch], to: victim, by: route)
            #expect(try victim.verify().unreadable == 1, "\(route)")
            #expect(try victim.verify().problems == [])
        }
        #expect(try s.b.status().stateDigest == digest)
        try await s.expectHonestConverge()
    }

    // MARK: Replays

    /// Every envelope the victims already hold, sent again (and the mole's chain twice in one delivery): nothing
    /// changes, and each is counted as a duplicate.
    @Test(arguments: Route.allCases)
    func replayedEnvelopesAreDuplicatesAndChangeNothing(route: Route) async throws {
        let s = try await Scene()
        let replayed = try s.chain(of: s.a) + s.chain(of: s.mole)
        for victim in [s.b, s.c] {
            let digest = try victim.status().stateDigest
            let changes = try victim.changeCount()
            let report = try await s.deliver(replayed, to: victim, by: route)
            #expect(report.pulled == 0 && report.keptApart == 0, "\(route): \(report)")
            #expect(try victim.status().stateDigest == digest)
            #expect(try victim.changeCount() == changes)
        }
        // Replayed inside one batch, twice over, by ingest itself.
        let again = try s.chain(of: s.mole)
        let result = try s.b.ingest(again + again)
        #expect(result.applied == 0 && result.duplicates == again.count * 2)
        try await s.expectHonestConverge()
    }

    // MARK: Values and counts over every limit

    /// Member-signed changes whose plaintext breaks a limit of the change format decrypt but do not decode: each is
    /// held back as its author's evidence, and nothing else is affected.
    @Test(arguments: Route.allCases)
    func changesOverTheFormatsLimitsAreHeldBack(route: Route) async throws {
        let s = try await Scene()
        let key = writingKey(of: s.mole)
        let opID = OpID(device: s.a.deviceID, seq: 1, index: 0)
        let base = Change(
            record: s.record, timestamp: stampNow(), operations: [.set(field: "title", value: "v", pred: [opID])]
        ).encoded(padded: false)
        // An operation index of 2^32 (the last varint of the change: the pred's index).
        let indexTooLarge = Array(base.dropLast()) + [0x80, 0x80, 0x80, 0x80, 0x10]
        // An operation count written in 11 varint bytes; and in a non-minimal 2 bytes.
        let countAt = 1 + 16 + 8 + 4
        let tooLong = Array(base[..<countAt]) + [UInt8](repeating: 0x80, count: 10) + [0x01] + base[(countAt + 1)...]
        let nonMinimal = Array(base[..<countAt]) + [0x81, 0x00] + base[(countAt + 1)...]
        // An operation count of 2^40 in a change of a few bytes.
        let countOverData =
            Array(base[..<countAt]) + [0x80, 0x80, 0x80, 0x80, 0x80, 0x20] + base[(countAt + 1)...]
        let plaintexts = [indexTooLarge, tooLong, nonMinimal, countOverData]
        let expected = [
            "an operation index is too large", "a number is too large", "not minimally encoded", "larger than the data",
        ]
        for (plaintext, words) in zip(plaintexts, expected) {
            do {
                _ = try Change(decoding: Change.pad(plaintext))
                Issue.record("a change over a limit decoded")
            } catch let error as CoreError {
                #expect(error.message.lowercased().contains(words), "\(error.message)")
            }
        }
        var chain = try s.moleChain()
        var hostile: [Envelope] = []
        for plaintext in plaintexts {
            let envelope = try Envelope.sealPlaintext(
                Change.pad(plaintext), vaultID: s.mole.vaultID, key: key, signer: s.mole.keyring.device,
                seq: chain.head.seq + 1, previousHash: chain.head.hash)
            hostile.append(envelope)
            chain = ForgedChain(
                vaultID: s.mole.vaultID, signer: s.mole.keyring.device,
                head: ChainHead(seq: envelope.header.seq, hash: envelope.hash))
        }
        let digest = try s.b.status().stateDigest
        for victim in [s.b, s.c] {
            try await s.deliver(route == .syncFile ? try s.chain(of: s.mole) + hostile : hostile, to: victim, by: route)
            let held = try victim.verify().heldBack
            #expect(held.contains { $0.device == s.mole.deviceID && $0.reason == .undecryptable && $0.changes == 4 })
        }
        #expect(try s.b.status().stateDigest == digest, "held back: nothing the replica shows changed")
        try await s.expectHonestConverge()
    }

    /// A name sealed by hand, without the length check of `SealedName.seal`.
    static func sealName(_ plain: [UInt8], key: VaultKey, vaultID: [UInt8], device: DeviceID) throws -> SealedName {
        let padded = plain + [UInt8](repeating: 0, count: 32 - plain.count % 32)
        let nonce = Sodium.randomBytes(24)
        let ciphertext = try AEAD.seal(
            padded,
            additionalData: VaultSealing.associatedData(
                label: SealedName.label, vaultID: vaultID, device: device, epoch: key.epoch),
            nonce: nonce, key: key.subkey(id: 5, context: "amnt-nam"))
        return SealedName(epoch: key.epoch, nonce: nonce, ciphertext: ciphertext)
    }

    /// The mole renames itself: a name of exactly 96 bytes is shown; one of 97 bytes (which no Amanat seals) is shown
    /// as no name at all; a sealed name of 257 bytes makes the entry malformed, held back as evidence.
    @Test(arguments: Route.allCases)
    func namesOverTheLimitAreNeverShownAndOversizedOnesAreHeldBack(route: Route) async throws {
        let s = try await Scene()
        let key = writingKey(of: s.mole)
        let device = s.mole.deviceID
        let base = stampNow().wallMillis
        let atLimit = String(repeating: "N", count: SealedName.maximumLength)
        var chain = try s.moleChain()
        let entries = [
            try chain.entry(
                .rename(try Self.sealName(Array(atLimit.utf8), key: key, vaultID: s.a.vaultID, device: device)),
                at: HLCTimestamp(wallMillis: base, counter: 0)),
            try chain.entry(
                .rename(try Self.sealName(Array((atLimit + "X").utf8), key: key, vaultID: s.a.vaultID, device: device)),
                at: HLCTimestamp(wallMillis: base + 1, counter: 0)),
            try chain.entry(
                .rename(
                    SealedName(epoch: key.epoch, nonce: Sodium.randomBytes(24), ciphertext: Sodium.randomBytes(257))),
                at: HLCTimestamp(wallMillis: base + 2, counter: 0)),
        ]
        let prefix = route == .syncFile ? try s.chain(of: s.mole) : []
        for victim in [s.b, s.c] {
            try await s.deliver(prefix + entries[..<1], to: victim, by: route)
            #expect(victim.memberName(device) == atLimit, "\(route)")
            try await s.deliver(prefix + entries[..<2], to: victim, by: route)
            #expect(victim.memberName(device) == nil, "\(route): a 97-byte name is shown")
            #expect(victim.deviceLabel(device) == String(device.hex.prefix(12)))
            try await s.deliver(prefix + entries, to: victim, by: route)
            #expect(victim.memberName(device) == nil)
            #expect(try victim.verify().heldBack.contains { $0.device == device && $0.reason == .undecryptable })
        }
        try await s.expectHonestConverge()
    }

    /// Only the vault id is needed: a stranger's key signs two different envelopes at seq 2^63 + 7 (a seq SQLite's
    /// integers cannot hold). The envelope decoder refuses them, so the relay's answer is malformed.
    @Test func envelopesAtASeqAbove2To63AreMalformed() async throws {
        let s = try await Scene()
        let stranger = SigningKeyPair.generate()
        let author = try DeviceID(stranger.publicKey)
        let forged = (0..<2).map { _ -> [UInt8] in
            let ciphertext = Sodium.randomBytes(80)
            let header = EnvelopeHeader(
                vaultID: s.a.vaultID, author: author, seq: (1 << 63) + 7, previousHash: Sodium.randomBytes(32),
                keyEpoch: 1, nonce: Sodium.randomBytes(24), ciphertextLength: UInt32(ciphertext.count))
            let signature = stranger.sign(header.encoded() + BLAKE2b.hash(ciphertext))
            return Envelope(header: header, ciphertext: ciphertext, signature: signature).encoded()
        }
        try await expectRelayAnswerRefused(
            s, vector: RelayWire.encodeVector([:]),
            exchange: RelayWire.ExchangeResponse(stored: 0, remaining: 0, diverged: [], envelopes: forged).encoded(),
            mentioning: ["malformed", "sequence number"])
        #expect(throws: CoreError.self) { try Envelope(decoding: forged[0]) }
        try await s.expectHonestConverge()
    }

    /// A hostile relay's answers with every count just over its limit: each is refused as malformed (or, for counts
    /// that only say how much is left, taken with saturating arithmetic); no crash, nothing changed.
    @Test func relayAnswersOverEveryCountLimitAreRefusedOrSaturated() async throws {
        let s = try await Scene()
        let empty = RelayWire.ExchangeResponse(stored: 0, remaining: 0, diverged: [], envelopes: []).encoded()
        let stranger = try DeviceID(SigningKeyPair.generate().publicKey)
        let hash = [UInt8](repeating: 7, count: 32)

        // A vector seq of 2^63 (one over the largest).
        var vector = RelayWire.encodeVector([stranger: ChainHead(seq: 1, hash: hash)])
        vector.replaceSubrange((vector.count - 40)..<(vector.count - 32), with: [0x80, 0, 0, 0, 0, 0, 0, 0])
        try await expectRelayAnswerRefused(s, vector: vector, exchange: empty, mentioning: ["malformed"])

        // One author named twice in a vector.
        let once = RelayWire.encodeVector([stranger: ChainHead(seq: 1, hash: hash)])
        var twice = once
        twice.replaceSubrange(5..<9, with: [0, 0, 0, 2])
        twice += once[9...]
        try await expectRelayAnswerRefused(s, vector: twice, exchange: empty, mentioning: ["malformed"])

        // A vector whose count is larger than its data.
        var overCount = once
        overCount.replaceSubrange(5..<9, with: [0, 0, 0, 2])
        try await expectRelayAnswerRefused(s, vector: overCount, exchange: empty, mentioning: ["malformed"])

        // 10 001 envelopes in one answer (the relay's limit is 10 000): the smallest bodies that the count check
        // lets through are 193 bytes each, so the answer is about 2 MiB.
        let oneEnvelope = try s.chain(of: s.a)[0].encoded()
        let tooMany = RelayWire.ExchangeResponse(
            stored: 0, remaining: 0, diverged: [],
            envelopes: [[UInt8]](repeating: oneEnvelope, count: RelayWire.maxEnvelopesPerMessage + 1)
        ).encoded()
        try await expectRelayAnswerRefused(
            s, vector: RelayWire.encodeVector([:]), exchange: tooMany, mentioning: ["more than 10000"])

        // An answer one byte over 24 MiB.
        var huge = empty
        huge += [UInt8](repeating: 0, count: RelayWire.maxResponseBytes + 1 - huge.count)
        try await expectRelayAnswerRefused(s, vector: RelayWire.encodeVector([:]), exchange: huge, mentioning: [])

        // A diverged-author count larger than the data.
        var diverged = empty
        diverged.replaceSubrange(17..<21, with: [0xFF, 0xFF, 0xFF, 0xFF])
        try await expectRelayAnswerRefused(s, vector: RelayWire.encodeVector([:]), exchange: diverged, mentioning: [])

        // Two authors at the largest seq (the client's arithmetic over the vector saturates) and an answer that
        // says 2^64 − 1 envelopes are still to come, again and again: the sync ends, no crash, nothing changed.
        let strangers = try (0..<2).map { _ in try DeviceID(SigningKeyPair.generate().publicKey) }
        let maxVector = RelayWire.encodeVector(
            Dictionary(uniqueKeysWithValues: strangers.map { ($0, ChainHead(seq: UInt64(Int64.max), hash: hash)) }))
        let endless = RelayWire.ExchangeResponse(
            stored: 1, remaining: UInt64.max, diverged: [], envelopes: [oneEnvelope]
        ).encoded()
        for (vector, exchange) in [(maxVector, empty), (RelayWire.encodeVector([:]), endless)] {
            let digest = try s.b.status().stateDigest
            let relay = try HostileRelay(vector: vector, exchange: exchange, laterExchange: exchange)
            _ = try await relaySync(s.b, relay.url, options: testOptions(attempts: 1))
            _ = relay.port
            #expect(try s.b.status().stateDigest == digest)
        }
        try await s.expectHonestConverge()
    }

    /// Runs a sync of b against a hostile relay that answers with `vector` and `exchange`: it must fail with one
    /// sentence naming `words`, and b must be unchanged.
    func expectRelayAnswerRefused(
        _ s: Scene, vector: [UInt8], exchange: [UInt8], mentioning words: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let digest = try s.b.status().stateDigest
        let relay = try HostileRelay(vector: vector, exchange: exchange, laterExchange: exchange)
        do {
            let report = try await relaySync(s.b, relay.url, options: testOptions(attempts: 1))
            Issue.record("a hostile answer was accepted: \(report)", sourceLocation: sourceLocation)
        } catch {
            let message = Self.sentence(error)
            for word in words {
                #expect(
                    message.lowercased().contains(word.lowercased()), "\(message)", sourceLocation: sourceLocation)
            }
            #expect(!message.isEmpty && !message.contains("\n"), "\(message)", sourceLocation: sourceLocation)
        }
        _ = relay.port
        #expect(try s.b.status().stateDigest == digest, sourceLocation: sourceLocation)
    }

    /// A stranger floods a sync file with more envelopes than a replica keeps apart for one device (1 000): the
    /// rest are dropped, honest syncs go on.
    @Test func keptApartEnvelopesOfOneStrangerAreCapped() async throws {
        let s = try await Scene()
        var stranger = ForgedChain(vaultID: s.a.vaultID, signer: SigningKeyPair.generate())
        let flood = try (0...Vault.keptApartPerDevice).map { _ in try stranger.unreadable(epoch: 0) }
        let digest = try s.b.status().stateDigest
        let report = try await s.deliver(flood, to: s.b, by: .syncFile)
        #expect(report.keptApart == Vault.keptApartPerDevice, "\(report)")
        #expect(try s.b.keptApartCounts()[stranger.device] == Vault.keptApartPerDevice)
        #expect(try s.b.status().stateDigest == digest)
        try await s.expectHonestConverge()
    }
}
