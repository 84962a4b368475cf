import AmanatCore
import AmanatCrypto
import AmanatRelay
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// What both storages answer to the reads and checks every request makes: what a replica lacks (the exchange's
/// answer) and the admission of a signed request. PostgreSQL answers each in one or two statements; these tests
/// hold both storages to the same answers.
@Suite struct RelayReadTests {
    /// Runs `body` with three members, each with its own chain of a different length, synced through a relay of
    /// `kind`, and the relay's storage; stops the relay afterwards.
    static func withTeam(
        _ kind: RelayStorageKind, _ body: ([Vault], any RelayStorage) async throws -> Void
    ) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        do {
            let team = try makeTeam(3, in: dir)
            for (i, vault) in team.enumerated() {
                for n in 0..<(3 + 2 * i) {
                    _ = try vault.createRecord(
                        kind: "statement", fields: [("title", "member \(i) record \(n)")], tags: [], seal: false)
                }
                try await relaySync(vault, relay.url)
            }
            try await body(team, relay.storage)
        } catch {
            await relay.stop()
            throw error
        }
        await relay.stop()
    }

    @Test(arguments: RelayStorageKind.allCases)
    func whatAReplicaLacksComesInAuthorOrderWithinTheLimit(_ kind: RelayStorageKind) async throws {
        try await Self.withTeam(kind) { team, storage in try await lacks(team, storage) }
    }

    func lacks(_ team: [Vault], _ storage: any RelayStorage) async throws {
        let vaultID = team[0].vaultID
        let heads = try await storage.versionVector(vaultID: vaultID)
        #expect(heads.count == 3, "every member's chain is held")
        let authors = heads.keys.sorted()
        var chains: [DeviceID: [[UInt8]]] = [:]
        for author in authors {
            let owner = try #require(team.first { $0.deviceID == author })
            chains[author] = try owner.envelopes(of: author, after: 0, limit: 1000).map { $0.encoded() }
            #expect(UInt64(chains[author]!.count) == heads[author]!.seq)
        }
        let everything = authors.flatMap { chains[$0]! }

        // A new replica, a limit smaller than all: the first authors' chains in order, the rest counted.
        let first = try await lacking(storage, vaultID, [:], limit: 7, budget: 1 << 22)
        #expect(labels(first.bodies) == labels(everything.prefix(7)))
        #expect(same(first.bodies, everything.prefix(7)), "the bodies are not the stored wire forms")
        #expect(first.remaining == UInt64(everything.count - 7))
        #expect(first.diverged.isEmpty)

        // Up to date with the first author, two behind the second, one in on the third: only what each lacks.
        let (a, b, c) = (authors[0], authors[1], authors[2])
        let vector: [DeviceID: ChainHead] = [
            a: heads[a]!, b: try head(of: team, b, at: heads[b]!.seq - 2), c: try head(of: team, c, at: 1),
        ]
        let lagging = try await lacking(storage, vaultID, vector, limit: 1000, budget: 1 << 22)
        let lacked = Array(chains[b]!.suffix(2)) + Array(chains[c]!.dropFirst())
        #expect(labels(lagging.bodies) == labels(lacked))
        #expect(same(lagging.bodies, lacked), "the bodies are not the stored wire forms")
        #expect(lagging.remaining == 0)
        #expect(lagging.diverged.isEmpty)

        // A hash the relay does not hold at a seq it holds, and a head with another hash: both diverged, nothing sent.
        var forked = vector
        forked[b] = ChainHead(seq: 1, hash: Array(repeating: 7, count: 32))
        forked[c] = ChainHead(seq: heads[c]!.seq, hash: Array(repeating: 9, count: 32))
        let diverged = try await lacking(storage, vaultID, forked, limit: 1000, budget: 1 << 22)
        #expect(Set(diverged.diverged) == [b, c])
        #expect(diverged.bodies.isEmpty && diverged.remaining == 0)

        // A byte budget one byte above the first body: that body alone; the others are counted as remaining.
        let tight = try await lacking(storage, vaultID, [:], limit: 1000, budget: everything[0].count + 1)
        #expect(labels(tight.bodies) == labels([everything[0]]))
        #expect(tight.remaining == UInt64(everything.count - 1))

        // A vault the relay does not hold.
        await #expect(throws: RelayStoreError.self) {
            _ = try await storage.missing(vaultID: Sodium.randomBytes(16), for: [:], limit: 10, byteBudget: 1000)
        }
        await #expect(throws: RelayStoreError.self) {
            _ = try await storage.versionVector(vaultID: Sodium.randomBytes(16))
        }
    }

    /// A replica far behind a chain of large envelopes is sent those that fit the byte budget. PostgreSQL must not
    /// read the bodies past them: each exchange with such a replica would read the whole limit's worth, and a new
    /// member's first sync of n large envelopes a number growing with n² (the SQLite store stops at the budget).
    /// Counted by the database itself, in the statistics of the envelopes' out-of-line storage (TOAST), read once
    /// the relay's connections have ended and reported them.
    @Test func postgresReadsNoBodyPastTheByteBudget() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let server = try PostgresTestServer.shared.get()
        let database = try #require(spec.location).database
        let vault = try makeTeam(1, in: dir)[0]
        for n in 0..<48 {
            // 200 KiB of text a record, which no compression shrinks once sealed: 9.6 MB in all.
            let body = Hex.encode(Sodium.randomBytes(100 * 1024))
            _ = try vault.createRecord(
                kind: "statement", fields: [("title", "large \(n)"), ("body", body)], tags: [], seal: false)
        }
        let relay = try await TestRelay.start(spec)
        // No autovacuum worker may read the table between the two counts.
        try server.psql(
            "ALTER TABLE relay_envelope SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)",
            database: database)
        do { try await relaySync(vault, relay.url) } catch {
            await relay.stop()
            throw error
        }
        await relay.stop()

        /// The one number a query printed (psql's aligned output: a header, the value, a row count).
        func number(_ sql: String) throws -> Int {
            let lines = try server.psql(sql, database: database).split(separator: "\n")
            let value = lines.map { $0.trimmingCharacters(in: .whitespaces) }.first {
                !$0.isEmpty && $0.allSatisfy(\.isNumber)
            }
            return try #require(value.flatMap { Int($0) }, "\(lines)")
        }
        /// Blocks of the envelopes' TOAST table read or found in the buffer cache, once no other session is left.
        func toastBlocks() throws -> Int {
            let deadline = Date().addingTimeInterval(30)
            while try number(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ) != 0 {
                guard Date() < deadline else { throw SessionsLeft() }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return try number(
                """
                SELECT coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0) FROM pg_statio_all_tables
                WHERE relid = 'relay_envelope'::regclass
                """)
        }

        let before = try toastBlocks()
        let storage = try await spec.open()
        let budget = 1 << 20
        let answer: RelayMissing
        let inTwoReads: RelayMissing
        let envelopes: [[UInt8]]
        let chain: UInt64
        do {
            chain = try #require(try await storage.versionVector(vaultID: vault.vaultID)[vault.deviceID]).seq
            answer = try await storage.missing(vaultID: vault.vaultID, for: [:], limit: 1000, byteBudget: budget)
            // The fallback when the one statement's rows come out of order: the same answer, read the same way.
            let postgres = try #require(storage as? PostgresRelayStorage)
            inTwoReads = try await postgres.missingInTwoReads(
                vaultID: vault.vaultID, for: [:], limit: 1000, byteBudget: budget)
            envelopes = try await storage.envelopes(
                vaultID: vault.vaultID, author: vault.deviceID, after: 0, limit: 1000, byteBudget: budget)
        } catch {
            await storage.close()
            throw error
        }
        await storage.close()
        let read = try toastBlocks() - before

        let sent = answer.bodies.reduce(0) { $0 + $1.count }
        #expect(answer.bodies.count >= 3 && answer.bodies.count < 10, "\(answer.bodies.count) bodies in 1 MiB")
        #expect(envelopes == answer.bodies)
        #expect(inTwoReads == answer)
        #expect(answer.remaining == chain - UInt64(answer.bodies.count))
        // Three reads of `sent` bytes, 8 KiB blocks of about 8 KB of body each: about 3 × sent / 8000, and far from
        // the 3 × 9.6 MB of reading every body of the chain.
        #expect(read > 0, "the statistics counted no read")
        #expect(read < 4 * sent / 8000, "\(read) blocks read to send \(sent) bytes three times")
    }

    struct SessionsLeft: Error {}

    @Test(arguments: RelayStorageKind.allCases)
    func aRequestIsAdmittedOnlyWithTheVaultsKeyAndANewNonce(_ kind: RelayStorageKind) async throws {
        try await Self.withTeam(kind) { team, storage in try await admits(team, storage) }
    }

    func admits(_ team: [Vault], _ storage: any RelayStorage) async throws {
        let vaultID = team[0].vaultID
        let key = team[0].relaySigningKey.publicKey
        let now = Int64(Date().timeIntervalSince1970)
        let nonce = Sodium.randomBytes(16)

        let unknown = try await storage.admit(
            vaultID: Sodium.randomBytes(16), key: key, nonce: nonce, expires: now + 301, now: now)
        #expect(unknown.isUnknownVault)
        // Another key is refused and records nothing: the same nonce is still new for the vault's own key.
        let other = try await storage.admit(
            vaultID: vaultID, key: SigningKeyPair.generate().publicKey, nonce: nonce, expires: now + 301, now: now)
        #expect(other.isOtherKey)
        let admitted = try await storage.admit(vaultID: vaultID, key: key, nonce: nonce, expires: now + 301, now: now)
        #expect(admitted.membership?.members.count == 3, "the membership comes with the admission")
        let again = try await storage.admit(vaultID: vaultID, key: key, nonce: nonce, expires: now + 301, now: now)
        #expect(again.isReplayed)
        // The nonce is the one `useNonce` knows: a replay whichever way it is checked.
        #expect(try await storage.useNonce(vaultID: vaultID, nonce: nonce, expires: now + 301, now: now) == false)

        // `GET …/vector` is admitted with the vector read alongside: the vault's vector when admitted, nothing else.
        let vector = try await storage.versionVector(vaultID: vaultID)
        let (withVector, read) = try await storage.admitWithVector(
            vaultID: vaultID, key: key, nonce: Sodium.randomBytes(16), expires: now + 301, now: now)
        #expect(withVector.membership?.members.count == 3)
        #expect(read == vector && read.count == 3)
        let (replayed, none) = try await storage.admitWithVector(
            vaultID: vaultID, key: key, nonce: nonce, expires: now + 301, now: now)
        #expect(replayed.isReplayed && none.isEmpty)
        let (refused, nothing) = try await storage.admitWithVector(
            vaultID: vaultID, key: SigningKeyPair.generate().publicKey, nonce: Sodium.randomBytes(16),
            expires: now + 301, now: now)
        #expect(refused.isOtherKey && nothing.isEmpty, "a vector was read for another key")
    }

    /// The answer Protocol/http-api.md §4.5 describes, for a replica that has nothing: each author's share of
    /// `limit` is what the shares before it leave; an author stops at the first body past the budget, and an author
    /// after the budget is spent gets nothing.
    static func reference(_ chains: [[[UInt8]]], limit: Int, budget: Int) -> (bodies: [[UInt8]], remaining: UInt64) {
        var out: [[UInt8]] = []
        var bytes = 0
        var planned = 0
        var remaining: UInt64 = 0
        for chain in chains {
            let share = max(0, min(limit - planned, chain.count))
            planned += share
            var got = 0
            if share > 0 && !(bytes >= budget && !out.isEmpty) {
                for body in chain.prefix(share) {
                    if bytes > 0 && bytes + body.count > budget { break }
                    bytes += body.count
                    out.append(body)
                    got += 1
                }
            }
            remaining += UInt64(chain.count - got)
        }
        return (out, remaining)
    }

    /// The budget cuts the first author's chain at a large change; the second author still gets its share of the
    /// limit, and both storages send the same bodies (a review found PostgreSQL sending fewer).
    @Test(arguments: RelayStorageKind.allCases)
    func anAuthorCutByTheBudgetLeavesTheOthersTheirShares(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")))
        do {
            let team = try makeTeam(2, in: dir).sorted { $0.deviceID < $1.deviceID }
            for (t, vault) in team.enumerated() {
                for n in 0..<6 {
                    let title = t == 0 && n == 1 ? Hex.encode(Sodium.randomBytes(20_000)) : "record \(n)"
                    _ = try vault.createRecord(kind: "statement", fields: [("title", title)], tags: [], seal: false)
                }
                try await relaySync(vault, relay.url)
            }
            let storage = relay.storage
            let vaultID = team[0].vaultID
            var chains: [[[UInt8]]] = []
            for author in try await storage.versionVector(vaultID: vaultID).keys.sorted() {
                chains.append(
                    try await storage.envelopes(
                        vaultID: vaultID, author: author, after: 0, limit: 1000, byteBudget: 1 << 30))
            }
            let first = chains[0]
            let cut = try #require(first.firstIndex { $0.count > 15_000 })
            try #require(cut > 0 && chains[1].count >= 4)
            // The limit leaves the second author three; the budget stops the first at its large change and would
            // leave room for four of the second author's (a store that gave it what the bodies sent left would
            // send four).
            let limit = first.count + 3
            let room = chains[1].prefix(4).reduce(0) { $0 + $1.count }
            try #require(room < first[cut].count)
            let budget = first.prefix(cut).reduce(0) { $0 + $1.count } + room
            let expected = Self.reference(chains, limit: limit, budget: budget)
            #expect(expected.bodies.count == cut + 3)
            let got = try await lacking(storage, vaultID, [:], limit: limit, budget: budget)
            #expect(labels(got.bodies) == labels(expected.bodies))
            #expect(same(got.bodies, expected.bodies), "the bodies are not the stored wire forms")
            #expect(got.remaining == expected.remaining)
        } catch {
            await relay.stop()
            throw error
        }
        await relay.stop()
    }

    /// A statement whose preparation failed once (here: `lock_timeout` while an operator's maintenance holds the
    /// envelope table) is remembered by postgres-nio for the connection's life; the relay closes such a connection,
    /// so requests are admitted again once the lock is released. (Found by a review: 10 of 10 failed before.)
    @Test func aPreparationThatFailedOnceDoesNotBreakTheConnectionForGood() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let server = try PostgresTestServer.shared.get()
        let location = try #require(spec.location)
        await (try spec.open()).close()  // the schema is made; the next pool starts with nothing prepared
        _ = try server.psql("ALTER DATABASE \(location.database) SET lock_timeout = '300ms'")
        let storage = try await spec.open()
        let vaultID = Sodium.randomBytes(16)
        let key = Sodium.randomBytes(32)
        let now = Int64(Date().timeIntervalSince1970)
        _ = try await storage.register(vaultID: vaultID, key: key, now: now)

        // Maintenance holds the envelope table (VACUUM FULL, REINDEX, ALTER TABLE…) until it is cancelled.
        let maintenance = Task.detached {
            _ = try? server.psql(
                "BEGIN; LOCK TABLE relay_envelope IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT",
                database: location.database)
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while !(try server.psql(
            """
            SELECT 'held=' || count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE c.relname = 'relay_envelope' AND l.mode = 'AccessExclusiveLock' AND l.granted
            """, database: location.database
        ).contains("held=1")) {
            try #require(ContinuousClock.now < deadline, "the maintenance never took its lock")
            try await Task.sleep(for: .milliseconds(50))
        }
        await #expect(throws: StoreError.self, "the admission waits past lock_timeout") {
            _ = try await storage.admit(
                vaultID: vaultID, key: key, nonce: Sodium.randomBytes(16), expires: now + 301, now: now)
        }
        _ = try server.psql(
            """
            SELECT pg_cancel_backend(pid) FROM pg_stat_activity
            WHERE datname = '\(location.database)' AND query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()
            """)
        await maintenance.value
        var failures = 0
        for _ in 0..<10 {
            do {
                let admitted = try await storage.admit(
                    vaultID: vaultID, key: key, nonce: Sodium.randomBytes(16), expires: now + 301, now: now)
                if admitted.membership == nil { failures += 1 }
            } catch {
                failures += 1
            }
        }
        #expect(failures == 0, "\(failures) of 10 admissions failed after the lock was released")
        await storage.close()
    }

    /// What `storage` answers a replica whose vector is `vector`; for PostgreSQL, also checked against the answer
    /// read in two statements (what the one-statement read falls back to).
    func lacking(
        _ storage: any RelayStorage, _ vaultID: [UInt8], _ vector: [DeviceID: ChainHead], limit: Int, budget: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RelayMissing {
        let answer = try await storage.missing(vaultID: vaultID, for: vector, limit: limit, byteBudget: budget)
        if let postgres = storage as? PostgresRelayStorage {
            let again = try await postgres.missingInTwoReads(
                vaultID: vaultID, for: vector, limit: limit, byteBudget: budget)
            #expect(again == answer, "the two-statement read answers differently", sourceLocation: sourceLocation)
        }
        return answer
    }

    /// Each envelope as its author's first digits and its seq, for a readable failure.
    func labels(_ bodies: some Collection<[UInt8]>) -> [String] {
        bodies.map { body in
            (try? Envelope(decoding: body)).map { "\($0.header.author.hex.prefix(6))#\($0.header.seq)" }
                ?? "undecodable"
        }
    }

    /// Whether two lists of wire forms are the same bytes (compared apart, so that a failure does not print them).
    func same(_ a: [[UInt8]], _ b: some Collection<[UInt8]>) -> Bool { a == Array(b) }

    /// The head of `author`'s chain at `seq`, as the member that wrote it holds it.
    func head(of team: [Vault], _ author: DeviceID, at seq: UInt64) throws -> ChainHead {
        let owner = try #require(team.first { $0.deviceID == author })
        let envelope = try #require(try owner.envelopes(of: author, after: seq - 1, limit: 1).first)
        return ChainHead(seq: seq, hash: envelope.hash)
    }
}

extension RelayAdmission {
    var isUnknownVault: Bool {
        if case .unknownVault = self { return true }
        return false
    }
    var isOtherKey: Bool {
        if case .otherKey = self { return true }
        return false
    }
    var isReplayed: Bool {
        if case .replayed = self { return true }
        return false
    }
    var membership: MembershipState? {
        if case .admitted(let state) = self { return state }
        return nil
    }
}
