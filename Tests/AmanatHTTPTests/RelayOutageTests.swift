import AmanatHTTP
import AmanatStore
import AmanatTestSupport
import Foundation
import Testing

/// A relay whose database is gone still runs and answers 503 with its own sentence: the member is told the relay
/// could not serve the sync, and why — not that it cannot be reached (which sends them to check the wrong thing).
@Suite struct RelayOutageTests {
    @Test func aRelayThatLostItsDatabaseIsReportedAsRunningButUnableToServe() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let relay = try await TestRelay.start(spec)
        let team = try makeTeam(1, in: dir)
        try await relaySync(team[0], relay.url)
        let server = try PostgresTestServer.shared.get()
        let database = try #require(spec.location?.database)
        try server.psql("DROP DATABASE \(database) WITH (FORCE)")
        do {
            try await relaySync(team[0], relay.url, options: testOptions(attempts: 2))
            Issue.record("a sync through a relay without its database succeeded")
        } catch let error as RelayClientError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("runs but could not serve the sync (it answered 503: "), "\(error.message)")
            #expect(!error.message.contains("cannot be reached"), "\(error.message)")
        }
        await relay.stop()
    }
}
