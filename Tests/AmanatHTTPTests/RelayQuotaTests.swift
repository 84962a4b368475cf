import AmanatCore
import AmanatCrypto
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatHTTP

/// `amanat serve --quota` bounds a vault's records on a relay as well as its attachments (Protocol/http-api.md §5):
/// without it, one member could fill the relay's disk with envelopes and stop every vault it serves.
@Suite struct RelayQuotaTests {
    static let quota: UInt64 = 64 * 1024

    /// A record whose sealed change is about `bytes` long (random text does not compress).
    static func bigRecord(_ vault: Vault, _ witness: String, bytes: Int = 20_000) throws -> RecordID {
        let text = Hex.encode(Sodium.randomBytes(bytes / 2))
        return try vault.createRecord(
            kind: "testimony", fields: [("witness", witness), ("narrative", text)], tags: [], seal: false)
    }

    /// Whether the database's per-vault counts (schema 4's triggers) equal the bytes its tables hold.
    static func countsAgree(_ spec: TestStorage) throws -> Bool {
        guard let location = spec.location else { return true }
        let answer = try PostgresTestServer.shared.get().psql(
            """
            SELECT 'agree=' || bool_and(COALESCE(u.envelope_bytes, 0) = COALESCE((SELECT sum(octet_length(body))
                FROM relay_envelope e WHERE e.vault = v.id), 0) AND COALESCE(u.chunk_bytes, 0) = COALESCE((SELECT
                sum(octet_length(sealed)) FROM relay_chunk c WHERE c.vault = v.id), 0) + COALESCE((SELECT
                sum(octet_length(sealed)) FROM relay_chunk_damaged d WHERE d.vault = v.id), 0))
            FROM relay_vault v LEFT JOIN relay_vault_usage u ON u.vault = v.id
            """, database: location.database)
        return answer.contains("agree=true")
    }

    /// A member's push past the quota is answered 507 through both push routes and stores nothing; the member's sync
    /// still pulls, and says how many changes wait. A coordinator's changes are stored past it (a revocation or purge
    /// must get through), and a coordinator carrying a member's changes still gets its own through.
    @Test(arguments: RelayStorageKind.allCases)
    func aPushPastTheQuotaIsRefusedWhileThePullGoesOn(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec) { $0.quota = Self.quota }
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        try await relaySync(a, relay.url)
        try await relaySync(b, relay.url)
        let shared = try a.createRecord(kind: "testimony", fields: [("witness", "W-Q1")], tags: [], seal: false)
        try await relaySync(a, relay.url)
        let heldBefore = try await relay.storage.count(vaultID: a.vaultID)

        // The member's four large records would pass the quota: refused whole, and the pull still brings the record.
        for i in 0..<4 { _ = try Self.bigRecord(b, "W-B\(i)") }
        let refused = try await relaySync(b, relay.url)
        #expect(refused.carrierFullReason?.contains("reached the relay's quota of 65536 bytes") == true, "\(refused)")
        #expect(refused.pushed == 0 && refused.unpushed == 4, "\(refused)")
        #expect((try? b.resolveRecord(shared.hex)) != nil, "the pull stopped with the push")
        #expect(try await relay.storage.count(vaultID: a.vaultID) == heldBefore)

        // The same push through `POST …/envelopes`, as a hostile member's client would send it: 507, nothing stored.
        let own = try b.envelopes(of: b.deviceID, after: 0, limit: 1000)
        await #expect(throws: CarrierFullError.self) {
            try await HTTPCarrier.with(
                url: relay.url, vaultID: b.vaultID, key: b.relaySigningKey, device: b.keyring.device,
                options: testOptions()
            ) { try await $0.push(own) }
        }
        #expect(try await relay.storage.count(vaultID: a.vaultID) == heldBefore)

        // The coordinator's own large records are stored past the quota.
        for i in 0..<4 { _ = try Self.bigRecord(a, "W-A\(i)") }
        let coordinator = try await relaySync(a, relay.url)
        #expect(coordinator.pushed == 4 && coordinator.carrierFullReason == nil, "\(coordinator)")
        #expect(try await relay.storage.totals().envelopeBytes > Self.quota)

        // The member's changes reach the coordinator by a stick; its next relay sync carries them with its own. The
        // batch is refused, then the coordinator's own change goes alone, and the member's wait.
        let stick = dir.path("stick.amanat")
        _ = try await SyncSession(vault: b, carrier: try FileCarrier(url: stick, vaultID: b.vaultID, create: true))
            .run()
        _ = try await SyncSession(vault: a, carrier: try FileCarrier(url: stick, vaultID: a.vaultID)).run()
        let mine = try a.createRecord(kind: "testimony", fields: [("witness", "W-Q2")], tags: [], seal: false)
        let mixed = try await relaySync(a, relay.url)
        #expect(mixed.pushed == 1 && mixed.unpushed == 4 && mixed.carrierFullReason != nil, "\(mixed)")
        let later = try await relaySync(b, relay.url)
        #expect(later.carrierFullReason != nil && (try? b.resolveRecord(mine.hex)) != nil, "\(later)")

        // A member carries a coordinator's change from a stick with its own: pushed on their own after the refusal,
        // the coordinator's is stored, and the member's still wait.
        _ = try a.createRecord(kind: "testimony", fields: [("witness", "W-Q3")], tags: [], seal: false)
        let second = dir.path("second.amanat")
        _ = try await SyncSession(vault: a, carrier: try FileCarrier(url: second, vaultID: a.vaultID, create: true))
            .run()
        _ = try await SyncSession(vault: b, carrier: try FileCarrier(url: second, vaultID: b.vaultID)).run()
        let courier = try await relaySync(b, relay.url)
        #expect(courier.pushed == 1 && courier.unpushed == 4, "\(courier)")
        #expect(try await relay.storage.versionVector(vaultID: a.vaultID)[a.deviceID] == (try ownHead(of: a)))
        #expect(try Self.countsAgree(spec))
        await relay.stop()
    }

    /// Over PostgreSQL, a push that waited for the vault's row lock checks the counts its holder committed meanwhile.
    /// Another transaction holds the lock while it raises the vault's count to near the quota (what a push through
    /// another relay does); the member's push, which fits the count from before, waits, and is then refused.
    @Test func aPushThatWaitedForTheVaultsLockSeesTheCountCommittedMeanwhile() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let location = try #require(spec.location)
        let relay = try await TestRelay.start(spec) { $0.quota = Self.quota }
        let team = try makeTeam(2, in: dir)
        let (a, b) = (team[0], team[1])
        try await relaySync(a, relay.url)
        try await relaySync(b, relay.url)
        _ = try Self.bigRecord(b, "W-L1")
        let server = try PostgresTestServer.shared.get()
        let holder = Task.detached {
            try server.psql(
                """
                BEGIN;
                SELECT 1 FROM relay_vault FOR NO KEY UPDATE;
                UPDATE relay_vault_usage SET envelope_bytes = \(Self.quota - 1000);
                SELECT pg_sleep(3);
                COMMIT;
                """, database: location.database)
        }
        // Until the holder is asleep with the lock (at most 30 s).
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let sleeping = try server.psql(
                "SELECT 'n=' || count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND state = 'active'"
                    + " AND pid <> pg_backend_pid()", database: location.database)
            if sleeping.contains("n=1") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let report = try await relaySync(b, relay.url)
        _ = try await holder.value
        #expect(report.pushed == 0 && report.carrierFullReason != nil, "\(report)")
        await relay.stop()
    }

    /// A hostile member pushes its large changes stripped of their content (225 bytes each, within the quota), then
    /// puts their content back through `POST …/without-content`: the content that would pass the quota is not put
    /// back. A coordinator's is.
    @Test(arguments: RelayStorageKind.allCases)
    func contentPutBackCannotGoPastTheQuota(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec) { $0.quota = Self.quota }
        let team = try makeTeam(2, in: dir)
        let (a, hostile) = (team[0], team[1])
        try await relaySync(a, relay.url)
        try await relaySync(hostile, relay.url)
        for (vault, prefix) in [(hostile, "W-H"), (a, "W-C")] {
            let before = try ownHead(of: vault).seq
            for i in 0..<4 { _ = try Self.bigRecord(vault, "\(prefix)\(i)") }
            let full = try vault.envelopes(of: vault.deviceID, after: before, limit: 100)
            #expect(full.count == 4)
            let restored = try await HTTPCarrier.with(
                url: relay.url, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
                options: testOptions()
            ) { carrier in
                #expect(try await carrier.push(full.map { $0.purged() }) == 4)
                return try await carrier.putBackContent(full)
            }
            let bytes = try await relay.storage.totals().envelopeBytes
            if vault === hostile {
                // The first copy's content fits (about 20 kB), the rest would pass 64 KiB.
                #expect(restored < 4 && bytes <= Self.quota, "restored \(restored), \(bytes) bytes held")
            } else {
                #expect(restored == 4 && bytes > Self.quota, "restored \(restored), \(bytes) bytes held")
            }
        }
        #expect(try Self.countsAgree(spec))
        await relay.stop()
    }
}
