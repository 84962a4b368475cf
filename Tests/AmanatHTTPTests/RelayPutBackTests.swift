import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import AmanatWire
import Foundation
import GRDB
import Testing

/// Copies without content on a relay (Protocol/http-api.md §11, sync.md §2 step 6): a member who received record
/// changes stripped (a courier removed their ciphertext) pushes them to the relay before their author does. The
/// relay announces such copies; the author's next sync gives it the content back, so a replica that syncs only with
/// the relay still gets every testimony. Nothing a purge names ever comes back.
@Suite struct RelayPutBackTests {
    /// A team of three where `b` holds `a`'s record changes without content (as a stripped stick gave them) and
    /// pushed them, stripped, to the relay before `a` synced there.
    struct Scene {
        let dir: TemporaryDirectory
        let spec: TestStorage
        let relay: TestRelay
        let a: Vault
        let b: Vault
        let c: Vault
        let record: RecordID
        /// `a`'s record changes, as `a` holds them (in full).
        let full: [Envelope]

        init(_ kind: RelayStorageKind, prepare: (TestStorage) throws -> Void = { _ in }) async throws {
            dir = try TemporaryDirectory()
            spec = try testStorage(kind, dir.path("relay"))
            try prepare(spec)
            relay = try await TestRelay.start(spec)
            let team = try makeTeam(3, in: dir)
            (a, b, c) = (team[0], team[1], team[2])
            record = try a.createRecord(
                kind: "testimony", fields: [("witness", "W-311"), ("summary", "Taken from the clinic at night")],
                tags: [], seal: false)
            _ = try a.commit(record: record) { _ in [.set(field: "location", value: "Herat", pred: [])] }
            full = try a.envelopes(of: a.deviceID, after: 0, limit: 1000).filter { !$0.isAuthority }
            let stripped = try b.ingest(
                try a.envelopes(of: a.deviceID, after: 0, limit: 1000).map {
                    $0.isAuthority ? $0 : $0.purged()
                })
            #expect(stripped.withoutContent == full.count, "\(stripped)")
            try await relaySync(b, relay.url)
        }

        /// What the relay holds of `a`'s chain, decoded.
        func held() async throws -> [Envelope] {
            try await relay.storage.envelopes(
                vaultID: a.vaultID, author: a.deviceID, after: 0, limit: 1000, byteBudget: 1 << 24
            ).map { try Envelope(decoding: $0) }
        }

        /// The relay's copies without content, as it would list them.
        func listed() async throws -> [Envelope] {
            try await relay.storage.copiesWithoutContent(vaultID: a.vaultID, limit: 1000).map {
                try Envelope(decoding: $0)
            }
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func theAuthorsSyncPutsBackWhatAMemberPushedStripped(_ kind: RelayStorageKind) async throws {
        let s = try await Scene(kind)
        #expect(try await s.listed().map(\.hash) == s.full.map(\.hash), "the relay lists its stripped copies")
        #expect(try await s.held().filter(\.isPurged).count == s.full.count)

        let put = try await relaySync(s.a, s.relay.url)
        #expect(put.restoredOnCarrier == s.full.count, "\(put)")
        #expect(try await s.held().allSatisfy { !$0.isPurged }, "the relay still holds a stripped copy")
        #expect(try await s.held().filter { !$0.isAuthority }.map { $0.encoded() } == s.full.map { $0.encoded() })
        #expect(try await s.listed().isEmpty)

        // C syncs only with the relay and gets the testimony whole.
        let got = try await relaySync(s.c, s.relay.url)
        #expect(got.withoutContent == 0, "\(got)")
        #expect(try s.c.resolveRecord(s.record.hex).view?.fields["witness"] == "W-311")
        // B gets its content back from the relay too (sync.md §2 step 5).
        _ = try await relaySync(s.b, s.relay.url)
        #expect(try s.b.changesWithoutContent().isEmpty)
        #expect(try s.b.resolveRecord(s.record.hex).view?.fields["location"] == "Herat")
        // Nothing is announced any more: the next sync puts nothing back.
        #expect(try await relaySync(s.a, s.relay.url).restoredOnCarrier == 0)
        await s.relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aCopyWhoseCiphertextDiffersIsNotPutBack(_ kind: RelayStorageKind) async throws {
        let s = try await Scene(kind)
        // A member forges "content" for a stripped copy: the same header and signature over another ciphertext. Its
        // hash differs from the one the relay holds, so nothing changes.
        let forged = s.full.map { envelope in
            var ciphertext = envelope.ciphertext
            ciphertext[0] ^= 0x01
            return Envelope(header: envelope.header, ciphertext: ciphertext, signature: envelope.signature)
        }
        let restored = try await HTTPCarrier.with(
            url: s.relay.url, vaultID: s.b.vaultID, key: s.b.relaySigningKey, device: s.b.keyring.device,
            options: testOptions()
        ) { try await $0.putBackContent(forged) }
        #expect(restored == 0)
        #expect(try await s.held().filter(\.isPurged).count == s.full.count)
        #expect(try await s.listed().count == s.full.count)
        await s.relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func nothingAPurgeNamesIsPutBack(_ kind: RelayStorageKind) async throws {
        let s = try await Scene(kind)
        _ = try await relaySync(s.a, s.relay.url)
        let traces = try RelayPurgeTests.traces(of: s.record, in: s.a)
        #expect(
            traces.found(in: try s.spec.rawContents()).count == s.full.count, "the relay holds the record's changes")

        // Over PostgreSQL a second relay process serves the vault before the purge (its membership is cached then),
        // and B later offers the purged content to it: it must read the purge from the database.
        let second = kind == .postgres ? try await TestRelay.start(s.spec) : nil
        if let second { _ = try await relaySync(s.c, second.url) }
        _ = try s.a.purge(record: s.record, reason: "consent withdrawn")
        _ = try await relaySync(s.a, s.relay.url)
        #expect(traces.found(in: try s.spec.rawContents()) == [], "the relay kept what the purge destroyed")
        // The purged copies are not copies without content: they are neither listed nor announced.
        #expect(try await s.listed().isEmpty)
        #expect(try await relaySync(s.c, s.relay.url).restoredOnCarrier == 0)

        // B kept the full copies it had before; it offers them back. The relay holds a purge naming each: refused.
        for url in [s.relay.url] + (second.map { [$0.url] } ?? []) {
            let restored = try await HTTPCarrier.with(
                url: url, vaultID: s.b.vaultID, key: s.b.relaySigningKey, device: s.b.keyring.device,
                options: testOptions()
            ) { try await $0.putBackContent(s.full) }
            #expect(restored == 0, "\(url)")
        }
        #expect(traces.found(in: try s.spec.rawContents()) == [], "a purged change came back")
        await second?.stop()
        await s.relay.stop()
    }

    /// A change to the record a coordinator purged, written by B before B learned of the purge (a late change), reaches
    /// C after C did: C drops its content on arrival and pushes it without content. No purge names it, so the relay
    /// lists it. B then syncs with the relay: B must learn the purge (and drop its own late change) before it offers
    /// anything back, or the relay would hold content of a purged record again.
    @Test(arguments: RelayStorageKind.allCases)
    func aLateChangeToAPurgedRecordIsNotPutBack(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(3, in: dir)
        let (a, b, c) = (team[0], team[1], team[2])
        let record = try a.createRecord(kind: "testimony", fields: [("witness", "W-412")], tags: [], seal: false)
        for vault in [a, b, c] { try await relaySync(vault, relay.url) }

        let before = try #require(try b.versionVector()[b.deviceID])
        _ = try b.commit(record: record) { _ in [.set(field: "location", value: "Kabul, Karte Seh", pred: [])] }
        let late = try b.envelopes(of: b.deviceID, after: before.seq, limit: 1)
        let traces = try RelayPurgeTests.traces(of: record, in: b, author: b.deviceID)
        #expect(late.count == 1 && traces.slices.count == 1)

        _ = try a.purge(record: record, reason: "consent withdrawn")
        try await relaySync(a, relay.url)
        try await relaySync(c, relay.url)
        let arrived = try c.ingest(late)
        #expect(arrived.purgedOnArrival == 1, "\(arrived)")
        try await relaySync(c, relay.url)
        #expect(try await relay.storage.copiesWithoutContent(vaultID: a.vaultID, limit: 256).count == 1)

        let report = try await relaySync(b, relay.url)
        #expect(report.restoredOnCarrier == 0, "\(report)")
        #expect(traces.found(in: try spec.rawContents()) == [], "the relay holds the late change's content")
        await relay.stop()
    }

    /// With more copies without content than one listing holds, each listing starts at a random place and wraps
    /// around: it always holds 256 distinct copies (a listing that did not wrap would hold fewer when it starts near the
    /// end), and over listings every copy comes up, so copies nobody can fill never keep the others out.
    @Test(arguments: RelayStorageKind.allCases)
    func aListingOfManyCopiesWrapsAround(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        for i in 0..<300 {
            _ = try a.createRecord(kind: "testimony", fields: [("witness", "W-\(i)")], tags: [], seal: false)
        }
        let log = try a.envelopes(of: a.deviceID, after: 0, limit: 10_000)
        _ = try b.ingest(log.map { $0.isAuthority ? $0 : $0.purged() })
        try await relaySync(b, relay.url)
        let stripped = Set(log.filter { !$0.isAuthority }.map(\.hash))
        #expect(stripped.count == 300)
        var seen: Set<[UInt8]> = []
        for _ in 0..<24 {
            let listed = try await relay.storage.copiesWithoutContent(vaultID: a.vaultID, limit: 256).map {
                try Envelope(decoding: $0).hash
            }
            #expect(listed.count == 256 && Set(listed).count == 256 && Set(listed).isSubset(of: stripped))
            seen.formUnion(listed)
        }
        // 24 listings of 256 from random places miss a given copy with probability below 10^-16.
        #expect(seen.count == stripped.count, "listings from random places never reached some copies")
        #expect(try await relaySync(a, relay.url).restoredOnCarrier == 256)
        #expect(try await relaySync(a, relay.url).restoredOnCarrier == 44)
        #expect(try await relay.storage.copiesWithoutContent(vaultID: a.vaultID, limit: 256).isEmpty)
        await relay.stop()
    }

    /// A relay file made before copies without content were announced has no index for them: it gets one when it is
    /// opened, and put-back works on it. A PostgreSQL database of schema 1 is migrated to schema 4 the same way
    /// (2 added that index, 3 the table of chunk copies set aside as damaged, 4 each vault's counted bytes); a
    /// database of schema 3 that holds envelopes gets its counts from the rows.
    @Test(arguments: RelayStorageKind.allCases)
    func storageOfThePreviousReleaseIsBroughtUpToDate(_ kind: RelayStorageKind) async throws {
        let first = try await Scene(kind) { spec in
            guard let location = spec.location else { return }
            // The schema version 1 exactly as the previous release created it (Tests/Fixtures).
            let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/relay-postgres-schema-1.sql")
            try PostgresTestServer.shared.get().psql(
                try String(contentsOf: fixture, encoding: .utf8), database: location.database)
        }
        if let location = first.spec.location {
            let server = try PostgresTestServer.shared.get()
            let version = try server.psql("SELECT version FROM amanat_relay_schema", database: location.database)
            #expect(version.contains(" 4\n") && version.contains("(1 row)"), "\(version)")
            let damaged = try server.psql(
                "SELECT count(*) FROM relay_chunk_damaged", database: location.database)
            #expect(damaged.contains(" 0\n"), "\(damaged)")
            let index = try server.psql(
                "SELECT indexname FROM pg_indexes WHERE indexname = 'relay_envelope_without_content'",
                database: location.database)
            #expect(index.contains("(1 row)"), "\(index)")
            #expect(try await relaySync(first.a, first.relay.url).restoredOnCarrier == first.full.count)
            await first.relay.stop()
            // Back to schema 3, as a relay of the previous release left it, now holding envelopes: the counts come
            // from the rows when a relay of this release starts.
            _ = try server.psql(
                """
                DROP TABLE relay_vault_usage;
                DROP FUNCTION amanat_count_envelope_bytes() CASCADE;
                DROP FUNCTION amanat_count_chunk_bytes() CASCADE;
                UPDATE amanat_relay_schema SET version = 3;
                """, database: location.database)
            let again = try await TestRelay.start(first.spec)
            let counted = try server.psql(
                "SELECT 'bytes=' || envelope_bytes FROM relay_vault_usage", database: location.database)
            #expect(!counted.contains("bytes=0\n") && counted.contains("(1 row)"), "\(counted)")
            #expect(try RelayQuotaTests.countsAgree(first.spec))
            _ = try first.a.createRecord(kind: "testimony", fields: [("witness", "W-U4")], tags: [], seal: false)
            #expect(try await relaySync(first.a, again.url).pushed == 1)
            #expect(try RelayQuotaTests.countsAgree(first.spec))
            await again.stop()
            return
        }
        // SQLite: drop the index as a previous release's file lacks it, then open the folder again.
        await first.relay.stop()
        let file = try #require(
            try FileManager.default.contentsOfDirectory(at: first.spec.data, includingPropertiesForKeys: nil).first {
                $0.pathExtension == "relay"
            })
        let queue = try DatabaseQueue(path: file.path)
        try await queue.write { try $0.execute(sql: "DROP INDEX envelope_without_content") }
        try queue.close()
        let reopened = try await TestRelay.start(first.spec)
        #expect(try await relaySync(first.a, reopened.url).restoredOnCarrier == first.full.count)
        let indexes = try await DatabaseQueue(path: file.path).read {
            try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        #expect(indexes.contains("envelope_without_content"), "\(indexes)")
        await reopened.stop()
    }

    // MARK: A hostile relay

    /// A relay that announces copies without content in a form no relay writes, or lists envelopes that are not
    /// such copies: the sync ends with one sentence and the vault is unchanged. A list of real copies without content
    /// gets the vault's full copies, nothing else.
    @Test func aHostileRelaysAnnouncementsAreCheckedBeforeAnythingIsSent() async throws {
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        _ = try a.createRecord(kind: "testimony", fields: [("witness", "W-5")], tags: [], seal: false)
        let mine = try a.envelopes(of: a.deviceID, after: 0, limit: 1000)
        let heads = [a.deviceID: ChainHead(seq: mine.last!.header.seq, hash: mine.last!.hash)]
        let vector = RelayWire.encodeVector(heads)
        let empty = RelayWire.ExchangeResponse(stored: 0, remaining: 0, diverged: [], envelopes: []).encoded()
        let recordChange = try #require(mine.first { !$0.isAuthority })
        let otherVault = try makeTeam(1, in: dir, prefix: "o")[0]
        _ = try otherVault.createRecord(kind: "testimony", fields: [("witness", "W-7")], tags: [], seal: false)
        let foreign = try #require(
            try otherVault.envelopes(of: otherVault.deviceID, after: 0, limit: 1000).last)

        let refused: [(String, [String], [Envelope])] = [
            ("too many", ["amanat-without-content: 9999"], [recordChange.purged()]),
            ("not a number", ["amanat-without-content: 1e2"], [recordChange.purged()]),
            ("zero", ["amanat-without-content: 0"], []),
            ("twice", ["amanat-without-content: 1", "amanat-without-content: 1"], [recordChange.purged()]),
            ("the same copy twice", ["amanat-without-content: 1"], [recordChange.purged(), recordChange.purged()]),
            ("a full envelope", ["amanat-without-content: 1"], [recordChange]),
            ("another vault's copy", ["amanat-without-content: 1"], [foreign.purged()]),
        ]
        for (what, headers, listed) in refused {
            let digest = try a.status().stateDigest
            let relay = try HostileRelay(
                vector: vector, exchange: empty, vectorHeaders: headers,
                withoutContent: RelayWire.encodeEnvelopeList(listed.map { $0.encoded() }))
            // A header no relay writes makes the vector answer one this client does not understand: the sync ends.
            // A listing that is not one of copies without content ends only the put-back, which the sync reports.
            let announcement = headers.count != 1 || headers[0] != "amanat-without-content: 1"
            do {
                let report = try await relaySync(a, relay.url, options: testOptions(attempts: 1))
                if announcement { Issue.record("\(what): accepted (\(report))") }
                #expect(
                    report.putBackProblem?.contains("listed copies without content that are not such copies") == true,
                    "\(what): \(report)")
            } catch let error as RelayClientError {
                #expect(announcement, "\(what): \(error)")
                #expect(error.code == .badResponse, "\(what): \(error)")
                #expect(error.message.contains("without content"), "\(what): \(error.message)")
                #expect(!error.message.contains("\n"))
            }
            #expect(relay.putBacks == 0, "\(what): content was sent")
            #expect(try a.status().stateDigest == digest, "\(what)")
        }

        // A relay that lists copies and then takes none: the first request of full copies (about 4 MiB) is the last
        // of the sync, however many were listed.
        let large = try (0..<3).map { i in
            let id = try a.createRecord(
                kind: "testimony", fields: [("narrative", String(repeating: "testimony \(i) ", count: 250_000))],
                tags: [], seal: false)
            return try #require(try a.history(of: try a.resolveRecord(id.hex)).first?.0)
        }
        #expect(large.allSatisfy { $0.encodedLength > 2_000_000 })
        let refusing = try HostileRelay(
            vector: vector, exchange: empty, vectorHeaders: ["amanat-without-content: 3"],
            withoutContent: RelayWire.encodeEnvelopeList(large.map { $0.purged().encoded() }))
        _ = try await relaySync(a, refusing.url, options: testOptions(attempts: 1))
        #expect(refusing.putBacks == 1, "a relay that took nothing was given more")

        // A relay whose chain of A differs from A's own at its head (a fork, as far as A can tell): the pull did not
        // take everything the relay holds, so a purge may lie beyond it; nothing is put back in that sync.
        let forkedVector = RelayWire.encodeVector([
            a.deviceID: ChainHead(seq: mine.last!.header.seq, hash: Array(repeating: 7, count: 32))
        ])
        let forking = try HostileRelay(
            vector: forkedVector, exchange: empty, vectorHeaders: ["amanat-without-content: 1"],
            withoutContent: RelayWire.encodeEnvelopeList([recordChange.purged().encoded()]))
        _ = try? await relaySync(a, forking.url, options: testOptions(attempts: 1))
        #expect(forking.putBacks == 0, "content was offered after a pull that met a fork")

        // Putting back is an extra to a sync that has pulled and pushed: a relay that stalls the listing, or answers
        // the put-back with something that is not a count, costs one request with its own deadline (here the 2 s of
        // the options, at most 30 s) and no retry, never the retries' minutes, and the sync goes through with a
        // warning.
        var quick = testOptions(attempts: 3)
        quick.requestTimeout = .seconds(2)
        let stalling = try HostileRelay(
            vector: vector, exchange: empty, vectorHeaders: ["amanat-without-content: 1"],
            withoutContent: RelayWire.encodeEnvelopeList([recordChange.purged().encoded()]), stallsListing: true)
        let stalled = try await relaySync(a, stalling.url, options: quick)
        #expect(stalling.listings == 1, "the stalled listing was retried")
        #expect(stalled.putBackProblem?.contains("cannot be reached") == true, "\(stalled)")
        #expect(stalling.putBacks == 0)
        for answer in [#"{"restored":true}"#, #"{"restored":-1}"#, "restored", #"{"restored":2}"#] {
            let garbled = try HostileRelay(
                vector: vector, exchange: empty, vectorHeaders: ["amanat-without-content: 1"],
                withoutContent: RelayWire.encodeEnvelopeList([recordChange.purged().encoded()]), putBackAnswer: answer)
            let report = try await relaySync(a, garbled.url, options: testOptions(attempts: 1))
            #expect(garbled.putBacks == 1)
            #expect(report.restoredOnCarrier == 0, "\(answer) was read as a count")
            #expect(report.putBackProblem?.contains("does not understand") == true, "\(answer): \(report)")
        }

        // An honest-looking list: the copy of a change the vault holds in full gets it; a copy of a change it does
        // not hold (B's) gets nothing, so with only that listed, nothing is sent.
        _ = try b.createRecord(kind: "testimony", fields: [("witness", "W-6")], tags: [], seal: false)
        let bChange = try #require(try b.envelopes(of: b.deviceID, after: 0, limit: 1000).last)
        for (listed, sends) in [([recordChange.purged()], 1), ([bChange.purged()], 0)] {
            let relay = try HostileRelay(
                vector: vector, exchange: empty, vectorHeaders: ["amanat-without-content: 1"],
                withoutContent: RelayWire.encodeEnvelopeList(listed.map { $0.encoded() }))
            _ = try await relaySync(a, relay.url, options: testOptions(attempts: 1))
            #expect(relay.putBacks == sends)
        }
    }

    // MARK: The compact authentication header

    /// A relay older than `Amanat-Auth` refuses it as unsigned: the carrier signs that request and every later one
    /// with the hex headers, and the sync goes through. A relay that refuses both forms gets each form once; one that
    /// refuses for another reason (the clock) gets no second form. Bounded in time: a client that kept switching
    /// forms would loop against a relay that answers at once.
    @Test(.timeLimit(.minutes(1))) func aRelayThatRefusesTheCompactHeaderGetsTheHexHeaders() async throws {
        let dir = try TemporaryDirectory()
        let a = try makeTeam(1, in: dir)[0]
        _ = try a.createRecord(kind: "testimony", fields: [("witness", "W-5")], tags: [], seal: false)
        let mine = try a.envelopes(of: a.deviceID, after: 0, limit: 1000)
        let vector = RelayWire.encodeVector([a.deviceID: ChainHead(seq: mine.last!.header.seq, hash: mine.last!.hash)])
        let empty = RelayWire.ExchangeResponse(stored: 0, remaining: 0, diverged: [], envelopes: []).encoded()

        let current = try HostileRelay(vector: vector, exchange: empty)
        _ = try await relaySync(a, current.url, options: testOptions(attempts: 1))
        #expect(!current.authForms.isEmpty && current.authForms.allSatisfy { $0 == "compact" }, "\(current.authForms)")

        let old = try HostileRelay(vector: vector, exchange: empty, refuses: .compact)
        _ = try await relaySync(a, old.url, options: testOptions(attempts: 1))
        #expect(old.authForms.first == "compact", "\(old.authForms)")
        #expect(old.authForms.count >= 2 && old.authForms.dropFirst().allSatisfy { $0 == "hex" }, "\(old.authForms)")

        let refusing = try HostileRelay(vector: vector, exchange: empty, refuses: .all)
        let digest = try a.status().stateDigest
        await #expect(throws: RelayClientError.self) {
            _ = try await relaySync(a, refusing.url, options: testOptions(attempts: 1))
        }
        #expect(refusing.authForms == ["compact", "hex"], "\(refusing.authForms)")
        let clock = try HostileRelay(vector: vector, exchange: empty, refuses: .clock)
        await #expect(throws: RelayClientError.self) {
            _ = try await relaySync(a, clock.url, options: testOptions(attempts: 1))
        }
        #expect(clock.authForms == ["compact"], "\(clock.authForms)")
        #expect(try a.status().stateDigest == digest)
    }
}
