import AmanatCore
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// `amanat serve --database` and `amanat sync URL1 URL2` as a team and an operator run them: relays as their own
/// processes over one real PostgreSQL database, one of them killed.
@Suite struct PostgresRelayCommandTests {
    /// A new database, or the test cancelled (skipped, with the reason) when PostgreSQL cannot run here and CI does
    /// not require it.
    /// Returns the server, the database's URL, its password and its name.
    func database() throws -> (PostgresTestServer, String, String, String) {
        do {
            let server = try PostgresTestServer.shared.get()
            let location = try server.makeDatabase()
            let url =
                "postgres://\(location.user)@127.0.0.1:\(location.port)/\(location.database)?sslmode=disable"
            return (server, url, location.password ?? "", location.database)
        } catch let error as PostgresUnavailable where !postgresRequired {
            FileHandle.standardError.write(
                Data("SKIPPED: \(Test.current?.name ?? "a PostgreSQL test"): \(error.reason)\n".utf8))
            try Test.cancel("PostgreSQL test skipped: \(error.reason)")
        }
    }

    /// An `amanat serve` process over `database` (the password in its environment, never on its command line).
    func relay(_ database: String, password: String, extra: [String] = []) throws -> ServeProcess {
        try ServeProcess(
            arguments: ["serve", "--port", "0", "--database", database] + extra,
            environment: ["AMANAT_DATABASE_PASSWORD": password])
    }

    /// How many envelopes the database `name` of `server` stores, counted by `psql`.
    func storedEnvelopes(_ server: PostgresTestServer, _ name: String) throws -> Int {
        let out = try server.psql("SELECT count(*) FROM relay_envelope", database: name)
        return out.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.first ?? -1
    }

    @Test func aTeamSyncsThroughTwoRelaysAndFinishesThroughTheSecondWhenTheFirstIsKilled() throws {
        let scratch = try Scratch()
        let (_, database, password, _) = try database()
        let one = try relay(database, password: password)
        let two = try relay(database, password: password)
        defer {
            one.kill9()
            _ = two.stop()
        }
        let a = scratch.runner("a")
        try a.initialize(name: "hub laptop")
        let invitation = scratch.path("invite.amanat").path
        let code = try a.ok(["invite", "--out", invitation])
        let b = scratch.runner("b")
        _ = try b.ok(["join", invitation, "--code", code, "--kdf", "interactive", "--device-name", "field"])
        _ = try a.ok([
            "add", "testimony", "--witness", "W-PG-CLI-808", "--narrative-file", samplePath, "--location", "Kabul",
        ])

        let first = try a.run(["sync", one.url, two.url])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("Synced with \(one.url): 0 changes pulled, 3 pushed."), "\(first.stderr)")

        // The first relay's machine dies: b's sync goes on through the second, which shares the database.
        one.kill9()
        let second = try b.run(["sync", one.url, two.url])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(
            second.stderr.contains(
                "The relay at \(one.url) could not be reached or stopped answering; the sync went on through \(two.url)."
            ),
            "\(second.stderr)")
        #expect(second.stderr.contains("Synced with \(two.url): 3 changes pulled, 1 pushed."), "\(second.stderr)")
        _ = try a.ok(["sync", two.url])
        #expect(try a.digest() == b.digest())

        let (status, log) = two.stop()
        #expect(status == 0, "\(log)")
        #expect(log.contains("PostgreSQL"), "\(log)")
        for secret in ["W-PG-CLI-808", "Kabul", password] {
            #expect(!log.contains(secret), "the relay's log holds \(secret)")
        }
        // No relay at all: one sentence, exit 69.
        let none = try b.run(["sync", one.url, two.url])
        #expect(none.status == 69, "\(none.stderr)")
        #expect(none.stderr.contains("None of the 2 relays can be reached"), "\(none.stderr)")
    }

    /// Two `amanat serve` processes over one database, nothing shared but the database: a fork of one device pushed
    /// to both at the same moment stores one chain, the other push refused with 409 by whichever saw it second; a
    /// request replayed to the other process is refused with 401 (Protocol/relay-postgres.md §3).
    @Test func twoServeProcessesStoreOneChainOfAForkAndRefuseARequestReplayedFromTheOther() async throws {
        let (_, database, password, _) = try database()
        let one = try relay(database, password: password)
        defer { one.kill9() }
        let two = try relay(database, password: password)
        defer { two.kill9() }
        let rounds = try await raceAFork(urls: [one.url, two.url], in: TemporaryDirectory(prefix: "fork"))
        let problems = oneChainProblems(rounds)
        #expect(problems.isEmpty, "\(problems)")
        let replays = try await replayANonce(urls: [one.url, two.url], in: TemporaryDirectory(prefix: "nonce"))
        #expect(replays.problems.isEmpty, "\(replays.problems)")
        for relay in [one, two] {
            let (status, log) = relay.stop()
            #expect(status == 0, "\(log)")
        }
    }

    /// `amanat serve` processes over one database; the one a large sync goes through is killed (SIGKILL) while the
    /// sync goes on, once while a replica pushes and once while another pulls. Each sync finishes through the other
    /// relay, and the result is that of a sync with no failure: every change stored once, and the puller's state
    /// equal to the writer's. (The syncs end by themselves: the carrier gives up on a relay after 3 attempts of at
    /// most 2 s to connect.)
    @Test func aRelayKilledInTheMiddleOfALargeSyncLeavesTheRestToTheOther() async throws {
        let (server, database, password, name) = try database()
        func relay() throws -> ServeProcess { try self.relay(database, password: password) }
        let one = try relay()
        defer { one.kill9() }
        let two = try relay()
        defer { two.kill9() }
        let three = try relay()
        defer { three.kill9() }
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        _ = try team[0].commitBatch(
            (0..<5000).map { i in (nil, [.create(kind: "statement"), .set(field: "title", value: "s\(i)", pred: [])]) })
        let total = try team[0].changeCount()  // 5000 records and the two membership entries
        func stored() throws -> Int { try storedEnvelopes(server, name) }

        // The push goes through `one` in batches of 100; `one` dies a third of the way, while the push holds still.
        let progress = Counter()
        let pushPause = SyncPause(at: 1500)
        let pusher = failoverSync(team[0].directory, [one.url, two.url], progress: progress, pause: pushPause)
        #expect(await pushPause.reached(), "the push did not reach 1500 changes")
        let storedAtKill = try stored()
        one.kill9()
        pushPause.release()
        let (pushed, pushFailovers) = try await pusher.value
        #expect(storedAtKill < total, "the relay was killed before the push ended (\(storedAtKill) of \(total))")
        #expect(pushFailovers == [two.url], "the push went on through the second relay")
        #expect(pushed.pushed <= total)
        #expect(try stored() == total, "nothing lost, nothing stored twice")

        // The pull goes through `three`, killed in the middle too; `two` finishes it.
        progress.set(0)
        let pullPause = SyncPause(at: 2000)
        let puller = failoverSync(team[1].directory, [three.url, two.url], progress: progress, pause: pullPause)
        #expect(await pullPause.reached(), "the pull did not reach 2000 changes")
        three.kill9()
        pullPause.release()
        let (pulled, pullFailovers) = try await puller.value
        #expect(pullFailovers == [two.url], "the pull went on through the second relay")
        #expect(pulled.pulled <= total)
        let b = try Vault.open(at: team[1].directory, passphrase: passphrase)
        #expect(try b.changeCount() == total + 1, "every change, and b's own join")
        #expect(try b.status().stateDigest == team[0].status().stateDigest)
        #expect(try b.verify().problems == [])
        // b's join reaches the relay and a; then both replicas and the database hold the same, each change once.
        try await relaySync(b, two.url)
        try await relaySync(team[0], two.url)
        #expect(try team[0].status().stateDigest == b.status().stateDigest)
        #expect(try stored() == total + 1)
        let (status, log) = two.stop()
        #expect(status == 0, "\(log)")
    }

    /// A relay that dies between its commit and its answer: the client was never told that the batch it sent was
    /// stored (a proxy in front of the relay drops that answer and stops, then the relay is killed). The client
    /// sends the batch again through the other relay over the same database, which takes it as what it already
    /// holds: every change is stored once, and a replica that pulls ends equal to the writer, as after a sync with
    /// no failure.
    @Test func aPushStoredByARelayThatDiedBeforeAnsweringIsStoredOnceThroughTheOther() async throws {
        let (server, database, password, name) = try database()
        func relay() throws -> ServeProcess { try self.relay(database, password: password) }
        let one = try relay()
        defer { one.kill9() }
        let two = try relay()
        defer { two.kill9() }
        let proxy = try AnswerDroppingProxy(upstreamPort: one.port)
        defer { proxy.stop() }
        let dir = try TemporaryDirectory()
        let team = try makeTeam(2, in: dir)
        _ = try team[0].commitBatch(
            (0..<3000).map { i in (nil, [.create(kind: "statement"), .set(field: "title", value: "s\(i)", pred: [])]) })
        let total = try team[0].changeCount()
        func stored() throws -> Int { try storedEnvelopes(server, name) }

        let progress = Counter()
        let pause = SyncPause(at: 1000)
        let pusher = failoverSync(team[0].directory, [proxy.url, two.url], progress: progress, pause: pause)
        #expect(await pause.reached(), "the push did not reach 1000 changes")
        let told = progress.value
        proxy.arm()
        pause.release()
        #expect(await proxy.droppedAnAnswer(), "no answer was dropped")
        let storedAtDrop = try stored()
        one.kill9()
        let (pushed, failovers) = try await pusher.value
        #expect(
            storedAtDrop > told,
            "the relay stored the batch whose answer was lost (\(storedAtDrop) stored, the client was told of \(told))")
        #expect(failovers == [two.url], "the push went on through the second relay")
        #expect(pushed.pushed <= total)
        #expect(try stored() == total, "nothing lost, nothing stored twice")

        let b = try Vault.open(at: team[1].directory, passphrase: passphrase)
        try await relaySync(b, two.url)
        #expect(try b.changeCount() == total + 1, "every change, and b's own join")
        #expect(try b.status().stateDigest == team[0].status().stateDigest)
        #expect(try b.verify().problems == [])
        #expect(try stored() == total + 1)
        let (status, log) = two.stop()
        #expect(status == 0, "\(log)")
    }

    /// `--quota` over PostgreSQL: relays sharing a database share each vault's quota, summed by the database from
    /// what it stores, so a second relay does not take what the first refused.
    @Test func relaysOverOneDatabaseShareEachVaultsQuota() throws {
        let scratch = try Scratch()
        let (server, database, password, name) = try database()
        func relay() throws -> ServeProcess {
            try self.relay(database, password: password, extra: ["--quota", "3MiB"])
        }
        let one = try relay()
        defer { one.kill9() }
        let two = try relay()
        defer { two.kill9() }
        func storedChunks() throws -> [Int] {
            let out = try server.psql(
                "SELECT count(*), COALESCE(sum(length(sealed)), 0) FROM relay_chunk", database: name)
            let row = out.split(separator: "\n").first { $0.contains("|") && !$0.contains("count") } ?? ""
            return row.split(separator: "|").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
        let a = scratch.runner("a")
        try a.initialize(name: "field laptop")
        let id = try a.ok(["add", "testimony", "--witness", "W-PG-QUOTA", "--narrative-file", samplePath])
        let file = scratch.path("recording.bin")
        try TestMedia.write(TestMedia.make(size: 5 * 1_048_576, seed: TestMedia.seed("pg quota")), to: file)
        _ = try a.ok(["attach", id, file.path])

        let first = try a.run(["sync", one.url])
        #expect(first.status == 74, "\(first.stderr)")
        #expect(first.stderr.contains("reached the relay's quota of 3 MiB"), "\(first.stderr)")
        let afterFirst = try storedChunks()
        #expect(afterFirst.count == 2 && afterFirst[0] == 2, "two 1 MiB chunks fit under 3 MiB: \(afterFirst)")
        #expect(afterFirst.count == 2 && afterFirst[1] <= 3 * 1_048_576, "\(afterFirst)")

        // The other relay counts the same stored chunks: it refuses the third as well, and stores nothing more.
        let second = try a.run(["sync", two.url])
        #expect(second.status == 74, "\(second.stderr)")
        #expect(second.stderr.contains("reached the relay's quota of 3 MiB"), "\(second.stderr)")
        #expect(second.stderr.contains("3 attachment chunks") && second.stderr.contains("could not be written"))
        #expect(try storedChunks() == afterFirst)
    }

    /// Relays create and migrate the schema themselves: two started at once on an empty database both come up and
    /// leave one schema of the current version, and a database a newer relay made is refused with one sentence
    /// before anything is served.
    @Test func relaysStartingTogetherMigrateOnceAndANewerSchemaIsRefused() throws {
        let (server, database, password, name) = try database()
        let environment = ["AMANAT_DATABASE_PASSWORD": password]
        let started = ResultBox<ServeProcess>()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            started.set(
                i,
                Result {
                    try ServeProcess(
                        arguments: ["serve", "--port", "0", "--database", database], environment: environment)
                })
        }
        let results = (0..<2).map { started.result($0) }
        defer {
            for case .success(let relay) in results { relay.kill9() }
        }
        let relays = try results.map { try $0.get() }
        let schema = try server.psql("SELECT version FROM amanat_relay_schema", database: name)
        #expect(schema.contains("(1 row)") && schema.contains(" 4\n"), "\(schema)")
        for relay in relays { #expect(relay.process.isRunning) }

        try server.psql("UPDATE amanat_relay_schema SET version = 99", database: name)
        let scratch = try Scratch()
        // Run with a deadline: a relay that wrongly accepted the schema would serve until killed.
        let newer = Process()
        newer.executableURL = CLIRunner.binary
        newer.arguments = ["serve", "--port", "0", "--database", database]
        newer.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let errors = scratch.path("newer.err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        newer.standardError = try FileHandle(forWritingTo: errors)
        newer.standardOutput = FileHandle.nullDevice
        newer.standardInput = FileHandle.nullDevice
        try newer.run()
        let deadline = Date().addingTimeInterval(60)
        while newer.isRunning && Date() < deadline { usleep(20_000) }
        let ranOn = newer.isRunning
        if ranOn { kill(newer.processIdentifier, SIGKILL) }
        newer.waitUntilExit()
        let said = try String(contentsOf: errors, encoding: .utf8)
        #expect(!ranOn, "the relay served a database of a newer schema: \(said)")
        #expect(newer.terminationStatus == 65, "\(said)")
        #expect(said.contains("was made by a newer relay (schema 99)"), "\(said)")
        #expect(said.split(separator: "\n").count == 1, "\(said)")
    }

    @Test func badDatabaseOptionsAreRefusedWithOneSentence() throws {
        let scratch = try Scratch()
        let (_, database, _, _) = try database()
        let runner = scratch.runner("relay")
        let cases: [([String], [String: String], Int32, String)] = [
            (
                ["serve", "--port", "0", "--database", "postgres://amanat:secret@127.0.0.1/x"], [:], 64,
                "not in the URL"
            ),
            (["serve", "--port", "0", "--database", "mysql://amanat@127.0.0.1/x"], [:], 64, "must be a URL"),
            (["serve", "--port", "0", "--database", "postgres://127.0.0.1/x"], [:], 64, "must name a user"),
            (
                ["serve", "--port", "0", "--data", scratch.path("d").path, "--database", database], [:], 64,
                "not both"
            ),
            (
                ["serve", "--port", "0", "--database", database], ["AMANAT_DATABASE_PASSWORD": "wrong"], 69,
                "refused the relay: password authentication failed for user \"amanat\" (SQLSTATE 28P01)."
            ),
            (
                [
                    "serve", "--port", "0", "--database", database, "--database-password-file",
                    scratch.path("none").path,
                ],
                [:], 66, "cannot be read"
            ),
        ]
        for (arguments, environment, expected, phrase) in cases {
            var r = runner
            r.environment = environment
            let result = try r.run(arguments, withVault: false)
            #expect(result.status == expected, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(phrase), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("secret"), "the password is never repeated")
        }
        // A sync file and a relay together: refused before anything is touched.
        let a = scratch.runner("a")
        try a.initialize()
        let mixed = try a.run(["sync", scratch.path("team.amanat-sync").path, "http://127.0.0.1:9"])
        #expect(mixed.status == 64, "\(mixed.stderr)")
        #expect(mixed.stderr.contains("Only relay URLs can be given together"), "\(mixed.stderr)")
    }
}

/// Results set from several threads, read once they are all in.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var results: [Int: Result<T, any Error>] = [:]

    func set(_ index: Int, _ result: Result<T, any Error>) { lock.withLock { results[index] = result } }

    func result(_ index: Int) -> Result<T, any Error> {
        lock.withLock { results[index] } ?? .failure(CLIFailure(description: "no result for \(index)"))
    }
}
