import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatTestSupport
import AmanatWire
import Foundation
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A relay with one registered vault of two members, and a raw HTTP client to attack it with.
struct Setup {
    let dir: TemporaryDirectory
    let spec: TestStorage
    let relay: TestRelay
    let client: RelayHTTPClient
    let team: [Vault]
    var store: any RelayStorage { relay.storage }

    var vaultHex: String { Hex.encode(team[0].vaultID) }
    var base: String { "/v1/vaults/\(vaultHex)" }

    static func make(_ kind: RelayStorageKind) async throws -> Setup {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(kind, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(kind: "statement", fields: [("title", "first")], tags: [], seal: false)
        try await relaySync(team[0], relay.url)
        return Setup(dir: dir, spec: spec, relay: relay, client: RelayHTTPClient(baseURL: relay.url), team: team)
    }

    func finish() async {
        await client.shutdown()
        await relay.stop()
    }

    /// Runs `body` with a new setup and finishes it whether `body` returns or throws: a test that fails with an error
    /// then reports it, instead of dropping a client that was never shut down (AsyncHTTPClient traps on that).
    static func with(_ kind: RelayStorageKind, _ body: (Setup) async throws -> Void) async throws {
        let s = try await make(kind)
        do {
            try await body(s)
        } catch {
            await s.finish()
            throw error
        }
        await s.finish()
    }

    func count() async throws -> Int { try await store.count(vaultID: team[0].vaultID) }
}

@Suite struct RelayServerTests {
    @Test(arguments: RelayStorageKind.allCases)
    func theStorageHoldsNoPlaintextAndNoKey(_ kind: RelayStorageKind) async throws {
        let s = try await Setup.make(kind)
        let narrative = try String(
            contentsOf: repositoryRoot.appendingPathComponent(
                "seeds/coalition-statement-on-russia-recognition.txt"),
            encoding: .utf8)
        #expect(narrative.contains("shaking the bloody hands"))
        _ = try s.team[0].createRecord(
            kind: "testimony",
            fields: [("witness", "W-SECRET-4711"), ("narrative", narrative), ("location", "Kandahar")],
            tags: ["detention"], seal: true)
        try await relaySync(s.team[0], s.relay.url)
        try await relaySync(s.team[1], s.relay.url)
        #expect(try s.team[1].visibleRecords().count == 2)
        await s.finish()

        let secrets: [(String, [UInt8])] = [
            ("phrase", Array("shaking the bloody hands".utf8)), ("witness", Array("W-SECRET-4711".utf8)),
            ("location", Array("Kandahar".utf8)), ("tag", Array("detention".utf8)),
            ("vault key", s.team[0].keyring.currentKey.root.copyBytes()),
            ("relay seed", s.team[0].relaySigningKey.seed.copyBytes()),
        ]
        // Every file of the SQLite folder, or a pg_dump of the PostgreSQL database (bytea in hex: the secrets are
        // looked for as bytes and as hex).
        let contents = try s.spec.rawContents()
        #expect(!contents.isEmpty)
        #expect(contents.reduce(0) { $0 + $1.bytes.count } > narrative.utf8.count, "the ciphertext is there")
        for (file, bytes) in contents {
            for (name, secret) in secrets {
                #expect(bytes.range(of: Data(secret)) == nil, "\(name) found in \(file)")
                #expect(bytes.range(of: Data(Hex.encode(secret).utf8)) == nil, "\(name) found in hex in \(file)")
            }
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func withoutTheVaultKeyNobodyReadsOrWrites(_ kind: RelayStorageKind) async throws {
        try await Setup.with(kind) { s in
            let member = s.team[1].relaySigningKey
            let vector = s.base + "/vector"
            let before = try await s.count()

            // No signature at all.
            var answer = try await s.client.send("GET", vector)
            #expect(answer.status == 401 && answer.errorMessage?.isEmpty == false)

            // A stranger's key, another vault's key, and a member's device key (not the relay key).
            let other = try makeTeam(1, in: s.dir, prefix: "other")[0]
            try await relaySync(other, s.relay.url)
            for key in [SigningKeyPair.generate(), other.relaySigningKey, s.team[1].keyring.device] {
                answer = try await s.client.sendSigned("GET", vector, key: key)
                #expect(answer.status == 403, "read with a foreign key")
                let push = RelayWire.encodeEnvelopeList(
                    try s.team[0].envelopes(of: s.team[0].deviceID, after: 0, limit: 10).map { $0.encoded() })
                answer = try await s.client.sendSigned("POST", s.base + "/envelopes", key: key, body: push)
                #expect(answer.status == 403, "write with a foreign key")
                answer = try await s.client.sendSigned("PUT", s.base, key: key)
                #expect(answer.status == 403, "re-registration with a foreign key")
            }
            // Another vault's member cannot push its own envelopes into this vault either.
            _ = try other.createRecord(kind: "statement", fields: [("title", "x")], tags: [], seal: false)
            let foreign = RelayWire.encodeEnvelopeList(
                try other.envelopes(of: other.deviceID, after: 0, limit: 10).map { $0.encoded() })
            answer = try await s.client.sendSigned("POST", s.base + "/envelopes", key: member, body: foreign)
            #expect(answer.status == 422, "envelopes of another vault")

            // A replayed request: the same signed headers sent twice.
            let headers = RelayHTTPClient.signedHeaders(key: member, method: "GET", path: vector, body: [])
            #expect(try await s.client.send("GET", vector, headers: headers).status == 200)
            answer = try await s.client.send("GET", vector, headers: headers)
            #expect(answer.status == 401 && answer.errorMessage?.contains("replayed") == true)

            // A signature made for another path, or another body.
            let otherPath = s.base + "/envelopes?author=\(s.team[0].deviceID.hex)&after=0&limit=10"
            answer = try await s.client.send(
                "GET", otherPath,
                headers: RelayHTTPClient.signedHeaders(key: member, method: "GET", path: vector, body: [])
            )
            #expect(answer.status == 401)
            let empty = RelayWire.encodeEnvelopeList([])
            answer = try await s.client.send(
                "POST", s.base + "/envelopes",
                headers: RelayHTTPClient.signedHeaders(
                    key: member, method: "POST", path: s.base + "/envelopes", body: empty),
                body: RelayWire.encodeEnvelopeList([Array(repeating: 1, count: 300)]))
            #expect(answer.status == 401)
            answer = try await s.client.send(
                "POST", s.base + "/envelopes",
                headers: RelayHTTPClient.signedHeaders(
                    key: member, method: "PUT", path: s.base + "/envelopes", body: empty),
                body: empty)
            #expect(answer.status == 401, "signature for another method")

            // Timestamps too far in the past or future; malformed headers.
            for offset in [-600, 600] as [Int64] {
                let stamp = Int64(Date().timeIntervalSince1970) + offset
                answer = try await s.client.send(
                    "GET", vector,
                    headers: RelayHTTPClient.signedHeaders(
                        key: member, method: "GET", path: vector, body: [], timestamp: stamp))
                #expect(answer.status == 401 && answer.errorMessage?.contains("clock") == true)
            }
            var broken = RelayHTTPClient.signedHeaders(key: member, method: "GET", path: vector, body: [])
            broken[3].1 = String(repeating: "zz", count: 64)
            #expect(try await s.client.send("GET", vector, headers: broken).status == 401)

            // A vault the relay does not hold.
            answer = try await s.client.sendSigned(
                "GET", "/v1/vaults/\(String(repeating: "ab", count: 16))/vector", key: member)
            #expect(answer.status == 404)

            // Nothing was stored, and members still sync.
            #expect(try await s.count() == before)
            try await relaySync(s.team[1], s.relay.url)
            #expect(try s.team[1].changeCount() == before + 1, "what the relay held, and team[1]'s own join")
            let carrier = try HTTPCarrier(
                url: s.relay.url, vaultID: s.team[0].vaultID, key: SigningKeyPair.generate(), options: testOptions())
            await #expect(throws: RelayClientError.self) { _ = try await carrier.versionVector() }
            await carrier.shutdown()
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func malformedTruncatedAndOversizedBodiesAreRefusedAndTheRelayKeepsServing(_ kind: RelayStorageKind) async throws {
        try await Setup.with(kind) { s in
            let key = s.team[1].relaySigningKey
            let before = try await s.count()
            _ = try s.team[0].createRecord(kind: "statement", fields: [("title", "second")], tags: [], seal: false)
            _ = try s.team[0].createRecord(kind: "statement", fields: [("title", "third")], tags: [], seal: false)
            let mine = try s.team[0].envelopes(of: s.team[0].deviceID, after: 0, limit: 10)
            let valid = RelayWire.encodeEnvelopeList(mine.map { $0.encoded() })
            let exchange = RelayWire.ExchangeRequest(vector: [:], envelopes: mine.map { $0.encoded() }, limit: 10)
                .encoded()
            var hugeCount = RelayWire.encodeEnvelopeList([])
            hugeCount.replaceSubrange(5..<9, with: [0xff, 0xff, 0xff, 0xff])
            var badLength = valid
            badLength[12] ^= 0x01  // the first envelope's length field

            let bad: [(String, String, [UInt8], Int)] = [
                ("POST", "/envelopes", [1, 2, 3], 400),
                ("POST", "/envelopes", Array(valid.dropLast(7)), 400),
                ("POST", "/envelopes", hugeCount, 400),
                ("POST", "/envelopes", badLength, 400),
                ("POST", "/envelopes", valid + [0], 400),
                ("POST", "/exchange", Array(exchange.dropLast(10)), 400),
                ("POST", "/exchange", Array(exchange.prefix(5)), 400),
                ("POST", "/exchange", [], 400),
                ("GET", "/envelopes?author=zz&after=0", [], 400),
                ("POST", "/without-content", [1, 2, 3], 400),
                ("POST", "/without-content", Array(valid.dropLast(7)), 400),
                (
                    "POST", "/without-content",
                    RelayWire.encodeEnvelopeList(Array(repeating: mine[0].encoded(), count: 257)), 400
                ),
                ("GET", "/envelopes?author=\(s.team[0].deviceID.hex)&after=-1", [], 400),
            ]
            // Misbehaving requests arrive at the same time.
            let client = s.client
            let base = s.base
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for (method, suffix, body, expected) in bad {
                        let answer = try await client.sendSigned(method, base + suffix, key: key, body: body)
                        #expect(answer.status == expected, "\(method) \(suffix) \(body.count) bytes")
                        #expect(answer.errorMessage?.isEmpty == false)
                    }
                }
                group.addTask {
                    let oversized = [UInt8](repeating: 7, count: RelayWire.maxRequestBytes + 1024)
                    // The relay answers 413 as soon as the body passes the limit and closes the connection; a client
                    // still sending may see the connection closed before it reads the answer. Either is a refusal;
                    // that the relay keeps serving is checked below.
                    if let answer = try? await client.sendSigned("POST", base + "/envelopes", key: key, body: oversized)
                    {
                        #expect(answer.status == 413)
                    }
                }
                try await group.waitForAll()
            }
            // Refused envelopes: a forged signature, a gap (the relay holds the first `before` of them).
            let forged = Envelope(
                header: mine[before + 1].header, ciphertext: mine[before + 1].ciphertext,
                signature: [UInt8](repeating: 9, count: 64))
            for list in [[mine[before], forged], [mine[before + 1]]] {
                let answer = try await s.client.sendSigned(
                    "POST", s.base + "/envelopes", key: key,
                    body: RelayWire.encodeEnvelopeList(list.map { $0.encoded() }))
                #expect(answer.status == 422)
            }
            // Path oddities.
            #expect(try await s.client.sendSigned("GET", "/v1/vaults/xyz/vector", key: key).status == 400)
            let unknown = try await s.client.send("GET", "/v1/nothing-here")
            #expect(unknown.status == 404 && unknown.errorMessage?.isEmpty == false)

            #expect(try await s.count() == before, "nothing was stored")
            #expect(try await s.client.send("GET", "/v1/health").status == 200)
            try await relaySync(s.team[0], s.relay.url)
            try await relaySync(s.team[1], s.relay.url)
            #expect(try s.team[0].status().stateDigest == s.team[1].status().stateDigest)
            #expect(try await s.count() == before + 2 + 1, "two new records and team[1]'s join")
        }
    }

    @Test(arguments: RelayStorageKind.allCases)
    func aForkPushedToTheRelayIsRefusedWith409AndTheFirstChainStays(_ kind: RelayStorageKind) async throws {
        try await Setup.with(kind) { s in
            // A cloned laptop: the same device key in a second vault directory, writing its own change 2.
            let original = s.team[0]
            let clone = try cloneVault(original, to: s.dir.path("clone"))
            try await relaySync(clone, s.relay.url)
            let cloneBase = try #require(try clone.versionVector()[clone.deviceID]).seq
            _ = try original.createRecord(kind: "statement", fields: [("title", "original 2")], tags: [], seal: false)
            _ = try clone.createRecord(kind: "statement", fields: [("title", "clone 2")], tags: [], seal: false)
            try await relaySync(original, s.relay.url)
            let firstHead = try #require(try original.versionVector()[original.deviceID])

            let forked = try clone.envelopes(of: clone.deviceID, after: cloneBase, limit: 1)
            let answer = try await s.client.sendSigned(
                "POST", s.base + "/envelopes", key: clone.relaySigningKey,
                body: RelayWire.encodeEnvelopeList(forked.map { $0.encoded() }))
            #expect(answer.status == 409)
            #expect(answer.errorMessage?.contains("two different changes") == true)
            let viaExchange = try await s.client.sendSigned(
                "POST", s.base + "/exchange", key: clone.relaySigningKey,
                body: RelayWire.ExchangeRequest(vector: [:], envelopes: forked.map { $0.encoded() }, limit: 10)
                    .encoded())
            #expect(viaExchange.status == 409)
            let carrier = try HTTPCarrier(
                url: s.relay.url, vaultID: clone.vaultID, key: clone.relaySigningKey, options: testOptions())
            await #expect { _ = try await carrier.push(forked) } throws: { ($0 as? RelayClientError)?.code == .fork }
            await carrier.shutdown()

            let vector = try await s.store.versionVector(vaultID: original.vaultID)
            #expect(vector[original.deviceID] == firstHead, "the relay keeps the first chain")
            // The clone's own sync sees the fork, records it, and does not push its branch.
            let report = try await relaySync(clone, s.relay.url)
            #expect(report.forks.map(\.device) == [clone.deviceID])
            #expect(try await s.store.versionVector(vaultID: original.vaultID)[original.deviceID] == firstHead)
        }
    }

    @Test func everyRouteOfTheRouterIsInOpenAPIAndNoOther() async throws {
        let yaml = try String(
            contentsOf: repositoryRoot.appendingPathComponent("Protocol/openapi.yaml"), encoding: .utf8)
        var documented: Set<String> = []
        var inPaths = false
        var currentPath: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") {
                inPaths = true
                continue
            }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") && !line.isEmpty && !line.hasPrefix("#") { break }  // the next top-level key
            if line.hasPrefix("  /") {
                currentPath = String(line.dropFirst(2).dropLast(line.hasSuffix(":") ? 1 : 0))
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path = currentPath {
                let key = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "put", "post", "delete", "patch", "head", "options"].contains(String(key)) {
                    documented.insert("\(key.uppercased()) \(path)")
                }
            }
        }
        let served = Set(RelayRoute.allCases.map { "\($0.method) \($0.path)" })
        #expect(documented == served)

        // And the running router answers each of them (401 for signed routes, not "no such route").
        let dir = try TemporaryDirectory()
        let relay = try await startRelay(data: dir.path("relay"))
        let client = RelayHTTPClient(baseURL: relay.url)
        for route in RelayRoute.allCases {
            let path = route.path.replacingOccurrences(of: "{vault}", with: String(repeating: "0", count: 32))
                .replacingOccurrences(of: "{chunk}", with: String(repeating: "0", count: 64))
            do {
                let answer = try await client.send(route.method, path, body: route.method == "GET" ? nil : [])
                #expect(answer.status == (route.isAuthenticated ? 401 : 200), "\(route.method) \(route.path)")
            } catch {
                Issue.record("\(route.method) \(route.path): \(error)")
            }
        }
        await client.shutdown()
        await relay.stop()
    }
}

@Suite struct RelayOperatorTests {
    @Test(arguments: RelayStorageKind.allCases)
    func metricsCountRequestsAndWhatIsStoredAndLogsHoldNoContentsOrKeys(_ kind: RelayStorageKind) async throws {
        let dir = try TemporaryDirectory()
        let log = CollectedLog()
        let relay = try await TestRelay.start(try testStorage(kind, dir.path("relay")), logger: log.logger())
        let team = try makeTeam(2, in: dir)
        _ = try team[0].createRecord(
            kind: "testimony", fields: [("witness", "W-METRICS-3141"), ("location", "Mazar")], tags: ["detention"],
            seal: true)
        try await relaySync(team[0], relay.url)
        try await relaySync(team[1], relay.url)
        let client = RelayHTTPClient(baseURL: relay.url)
        // A refusal is counted with its status too.
        #expect(
            try await client.sendSigned("GET", "/v1/vaults/\(Hex.encode(team[0].vaultID))/vector", key: .generate())
                .status == 403)
        let answer = try await client.send("GET", "/metrics")
        await client.shutdown()
        #expect(answer.status == 200)
        let text = String(decoding: answer.body, as: UTF8.self)
        let stored = try await relay.storage.count(vaultID: team[0].vaultID)
        await relay.stop()

        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap {
                Double($0.split(separator: " ")[1])
            }
        }
        #expect(value("amanat_relay_vaults") == 1, "\(text)")
        #expect(value("amanat_relay_envelopes") == Double(stored))
        #expect(value("amanat_relay_envelopes_stored_total") == Double(stored), "this relay stored all of them")
        #expect((value("amanat_relay_envelope_bytes") ?? 0) > 0)
        #expect(value("amanat_relay_envelope_bytes_stored_total") == value("amanat_relay_envelope_bytes"))
        #expect(text.contains(#"amanat_relay_requests_total{route="exchange",method="POST",status="200"}"#), "\(text)")
        #expect(text.contains(#"amanat_relay_requests_total{route="vector",method="GET",status="403"}"#), "\(text)")
        #expect(text.contains(#"amanat_relay_request_duration_seconds_bucket{route="exchange",le="0.1"}"#), "\(text)")
        #expect(text.contains(#"amanat_relay_request_duration_seconds_count{route="exchange"}"#))

        // The metrics name no vault or device; neither they nor the log hold record text or keys, and the log names a
        // vault by its prefix only, a refusal's path included.
        let logged = log.text
        #expect(logged.contains("stored"), "\(logged)")
        #expect(logged.contains(String(Hex.encode(team[0].vaultID).prefix(8))), "lines carry the vault's prefix")
        #expect(logged.contains("refused") && logged.contains("403"), "\(logged)")
        #expect(!logged.contains(Hex.encode(team[0].vaultID)), "the log holds a whole vault id")
        for secret in [Hex.encode(team[0].vaultID), team[0].deviceID.hex, team[1].deviceID.hex] {
            #expect(!text.contains(secret), "the metrics hold \(secret)")
        }
        for secret in [
            "W-METRICS-3141", "Mazar", "detention", Hex.encode(team[0].relaySigningKey.publicKey),
            Hex.encode(team[0].relaySigningKey.seed.copyBytes()),
            Hex.encode(team[0].keyring.currentKey.root.copyBytes()),
        ] {
            #expect(!text.contains(secret), "the metrics hold \(secret)")
            #expect(!logged.contains(secret), "the log holds \(secret)")
        }
    }
}
