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
        let first = try await storage.missing(vaultID: vaultID, for: [:], limit: 7, byteBudget: 1 << 22)
        #expect(labels(first.bodies) == labels(everything.prefix(7)))
        #expect(same(first.bodies, everything.prefix(7)), "the bodies are not the stored wire forms")
        #expect(first.remaining == UInt64(everything.count - 7))
        #expect(first.diverged.isEmpty)

        // Up to date with the first author, two behind the second, one in on the third: only what each lacks.
        let (a, b, c) = (authors[0], authors[1], authors[2])
        let vector: [DeviceID: ChainHead] = [
            a: heads[a]!, b: try head(of: team, b, at: heads[b]!.seq - 2), c: try head(of: team, c, at: 1),
        ]
        let lagging = try await storage.missing(vaultID: vaultID, for: vector, limit: 1000, byteBudget: 1 << 22)
        let lacked = Array(chains[b]!.suffix(2)) + Array(chains[c]!.dropFirst())
        #expect(labels(lagging.bodies) == labels(lacked))
        #expect(same(lagging.bodies, lacked), "the bodies are not the stored wire forms")
        #expect(lagging.remaining == 0)
        #expect(lagging.diverged.isEmpty)

        // A hash the relay does not hold at a seq it holds, and a head with another hash: both diverged, nothing sent.
        var forked = vector
        forked[b] = ChainHead(seq: 1, hash: Array(repeating: 7, count: 32))
        forked[c] = ChainHead(seq: heads[c]!.seq, hash: Array(repeating: 9, count: 32))
        let diverged = try await storage.missing(vaultID: vaultID, for: forked, limit: 1000, byteBudget: 1 << 22)
        #expect(Set(diverged.diverged) == [b, c])
        #expect(diverged.bodies.isEmpty && diverged.remaining == 0)

        // A byte budget one byte above the first body: that body alone; the others are counted as remaining.
        let tight = try await storage.missing(
            vaultID: vaultID, for: [:], limit: 1000, byteBudget: everything[0].count + 1)
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
