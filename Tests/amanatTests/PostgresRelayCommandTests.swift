import AmanatTestSupport
import Foundation
import Testing

/// `amanat serve --database` and `amanat sync URL1 URL2` as a team and an operator run them: relays as their own
/// processes over one real PostgreSQL database, one of them killed.
@Suite struct PostgresRelayCommandTests {
    /// A new database, or the test cancelled (skipped, with the reason) when PostgreSQL cannot run here and CI does
    /// not require it.
    func database() throws -> (PostgresTestServer, String, String) {
        do {
            let server = try PostgresTestServer.shared.get()
            let location = try server.makeDatabase()
            let url =
                "postgres://\(location.user)@127.0.0.1:\(location.port)/\(location.database)?sslmode=disable"
            return (server, url, location.password ?? "")
        } catch let error as PostgresUnavailable where !postgresRequired {
            FileHandle.standardError.write(
                Data("SKIPPED: \(Test.current?.name ?? "a PostgreSQL test"): \(error.reason)\n".utf8))
            try Test.cancel("PostgreSQL test skipped: \(error.reason)")
        }
    }

    @Test func aTeamSyncsThroughTwoRelaysAndFinishesThroughTheSecondWhenTheFirstIsKilled() throws {
        let scratch = try Scratch()
        let (_, database, password) = try database()
        let environment = ["AMANAT_DATABASE_PASSWORD": password]
        let one = try ServeProcess(
            arguments: ["serve", "--port", "0", "--database", database], environment: environment)
        let two = try ServeProcess(
            arguments: ["serve", "--port", "0", "--database", database], environment: environment)
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

    @Test func badDatabaseOptionsAreRefusedWithOneSentence() throws {
        let scratch = try Scratch()
        let (_, database, _) = try database()
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
