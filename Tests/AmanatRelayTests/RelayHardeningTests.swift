import AmanatCore
import AmanatCrypto
import AmanatHTTP
@testable import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import AmanatWire
import Foundation
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A settable clock for the relay (unix seconds).
final class TestClock: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var seconds: Int64

    init(_ start: Int64 = Int64(Date().timeIntervalSince1970)) { seconds = start }

    var now: Int64 {
        get { lock.withLock { seconds } }
        set { lock.withLock { seconds = newValue } }
    }
}

@Suite struct RelayHardeningTests {
    static let code = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"

    /// Runs `body` with a relay over `dir` and a raw client to it; both are shut down whatever happens (an HTTP client
    /// dropped without shutdown stops the whole test process).
    func withRelay(
        _ kind: RelayStorageKind, _ dir: TemporaryDirectory, code: String? = nil, maxVaults: Int = 1000,
        clock: TestClock? = nil, _ body: (TestRelay, any RelayStorage, RelayHTTPClient) async throws -> Void
    ) async throws {
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec, maxVaults: maxVaults, registrationCode: code) { server in
            if let clock { server.now = { clock.now } }
        }
        let client = RelayHTTPClient(baseURL: relay.url)
        do {
            try await body(relay, relay.storage, client)
        } catch {
            await client.shutdown()
            await relay.stop()
            throw error
        }
        await client.shutdown()
        await relay.stop()
    }

    /// A PUT that registers `vault` with `key`, presenting `code` in the signed body.
    func register(
        _ client: RelayHTTPClient, vault: [UInt8], key: SigningKeyPair, code: String?, at time: Int64? = nil
    ) async throws -> RelayHTTPClient.Answer {
        let path = "/v1/vaults/\(Hex.encode(vault))"
        let body = RelayWire.registrationBody(code: code)
        let headers = RelayHTTPClient.signedHeaders(key: key, method: "PUT", path: path, body: body, timestamp: time)
        return try await client.send("PUT", path, headers: headers, body: body)
    }

    @Test(arguments: RelayStorageKind.allCases)
    func onlyTheOperatorsCodeRegistersAVault(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        try await withRelay(kind, dir, code: Self.code) { relay, store, client in
            let vault = Sodium.randomBytes(16)
            let key = SigningKeyPair.generate()

            let none = try await register(client, vault: vault, key: key, code: nil)
            #expect(none.status == 403)
            #expect(none.errorMessage?.contains("registration code") == true, "\(none.errorMessage ?? "")")
            let wrong = try await register(client, vault: vault, key: key, code: "ABCD-EFGH-IJKL-MNOP-QRST-UVWY")
            #expect(wrong.status == 403)
            #expect(try await store.totals().vaults == 0, "nothing was registered")

            // The code travels in the signed body: moved under another signature it no longer verifies.
            let path = "/v1/vaults/\(Hex.encode(vault))"
            let emptySigned = RelayHTTPClient.signedHeaders(key: key, method: "PUT", path: path, body: [])
            let moved = try await client.send(
                "PUT", path, headers: emptySigned, body: RelayWire.registrationBody(code: Self.code))
            #expect(moved.status == 401)

            // Dashes, spaces and case do not matter.
            let right = try await register(client, vault: vault, key: key, code: " abcd efgh-ijkl-mnop-qrst-uvwx")
            #expect(right.status == 201)
            // Once registered, the vault's members need no code; another key still gets 403.
            #expect(try await register(client, vault: vault, key: key, code: nil).status == 200)
            #expect(try await register(client, vault: vault, key: .generate(), code: Self.code).status == 403)

            // A real team syncs through it: the first sync with the code, the others without.
            let team = try makeTeam(2, in: dir)
            _ = try team[0].createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
            do {
                try await relaySync(team[0], relay.url)
                Issue.record("a sync without the code registered the vault")
            } catch let error as RelayClientError {
                #expect(error.code == .forbidden)
                #expect(error.message.contains("needs a registration code"), "\(error.message)")
            }
            var options = testOptions()
            options.registrationCode = Self.code
            try await relaySync(team[0], relay.url, options: options)
            try await relaySync(team[1], relay.url)
            #expect(try team[1].visibleRecords().count == 1)
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func withoutACodeFileTheFirstContactRegistersAsBefore(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        try await withRelay(kind, dir) { _, store, client in
            let answer = try await register(client, vault: Sodium.randomBytes(16), key: .generate(), code: nil)
            #expect(answer.status == 201)
            #expect(try await store.totals().vaults == 1)
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func squattedVaultsThatNeverStoreAnythingExpire(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let clock = TestClock()
        try await withRelay(kind, dir, maxVaults: 3, clock: clock) { relay, store, client in
            let start = clock.now
            // A squatter fills the relay with vaults that never store anything; a team registers and stores one change.
            // Every request is stamped with the relay's test clock, so a test run slowed down for minutes by other
            // tests never falls outside the timestamp window.
            for _ in 0..<2 {
                let answer = try await register(
                    client, vault: Sodium.randomBytes(16), key: .generate(), code: nil, at: clock.now)
                #expect(answer.status == 201)
            }
            let team = try makeTeam(1, in: dir)
            _ = try team[0].createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
            var options = testOptions()
            options.now = { clock.now }
            try await relaySync(team[0], relay.url, options: options)
            #expect(try await store.totals().vaults == 3)

            // Full: a new vault is refused while the squatted ones are younger than a day.
            clock.now = start + 3600
            let early = try await register(
                client, vault: Sodium.randomBytes(16), key: .generate(), code: nil, at: clock.now)
            #expect(early.status == 507)

            // A day later the empty ones are gone when the next vault registers; the team's vault stays.
            clock.now = start + RelayStore.unusedVaultLifetime + 60
            let later = try await register(
                client, vault: Sodium.randomBytes(16), key: .generate(), code: nil, at: clock.now)
            #expect(later.status == 201, "\(later.errorMessage ?? "")")
            #expect(try await store.totals().vaults == 2)
            #expect(try await store.registeredKey(of: team[0].vaultID) != nil)
        }
    }

    /// What the relay's log lines show of a request has its control and bidirectional characters escaped, exactly as
    /// the command line shows vault data.
    @Test func logMetadataFromARequestIsEscapedAsOnATerminal() {
        let hostile = "/v1/vaults/\u{1B}]0;pwned\u{07}\u{9B}31m\u{202E}evil\u{2028}x\nfake line"
        let escaped = Logger.MetadataValue.escaped(hostile)
        #expect(escaped == .string(TerminalText.escape(hostile)))
        #expect("\(escaped)" == "/v1/vaults/\\u{1B}]0;pwned\\u{7}\\u{9B}31m\\u{202E}evil\\u{2028}x\\u{A}fake line")
    }
}
