import AmanatRelay
import AmanatTestSupport
import Foundation
import Testing

/// The relay's `sslmode` means what it means to libpq, against a real PostgreSQL server with a self-signed
/// certificate (Debian's out of the box): `prefer` and `require` encrypt without checking the certificate,
/// `verify-ca` checks it against `sslrootcert`, `verify-full` checks the host name too. An operator's relay used to
/// refuse to start with the default mode against such a server.
@Suite struct PostgresTLSTests {
    /// How many connections to `database` are encrypted, as the server sees them.
    func encryptedConnections(_ server: PostgresTestServer, _ database: String) throws -> Int {
        let out = try server.psql(
            """
            SELECT 'encrypted=' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
            WHERE a.datname = '\(database)' AND s.ssl
            """)
        let found = out.split(separator: "\n").first { $0.contains("encrypted=") }
        return found.flatMap {
            Int($0.split(separator: "=").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "")
        } ?? -1
    }

    func connect(_ location: PostgresLocation, within seconds: Int64 = 90) async throws -> PostgresRelayStorage {
        try await PostgresRelayStorage.connect(location, startTimeout: .seconds(seconds), logger: quietLogger)
    }

    @Test func theDatabaseConnectionFollowsLibpqsSSLModes() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        let server = try PostgresTestServer.shared.get()
        var location = try #require(spec.location)

        location.tls = .disable
        var storage = try await connect(location)
        #expect(try encryptedConnections(server, location.database) == 0)
        await storage.close()
        for mode in [PostgresLocation.TLSMode.prefer, .require] {
            location.tls = mode
            storage = try await connect(location)
            #expect(try encryptedConnections(server, location.database) >= 1, "\(mode) did not encrypt")
            await storage.close()
        }

        // Checked against the system's authorities, the self-signed certificate is refused, at once and saying so
        // (not after the pool's retries, with a guess).
        location.tls = .verifyFull
        try await expectRefusal(location, "TLS certificate was not accepted")
        // Trusting the server's own certificate, both checks pass: it names 127.0.0.1.
        location.rootCertificates = server.certificateFile
        for mode in [PostgresLocation.TLSMode.verifyCA, .verifyFull] {
            location.tls = mode
            storage = try await connect(location)
            #expect(try encryptedConnections(server, location.database) >= 1, "\(mode) did not encrypt")
            await storage.close()
        }
    }

    /// `verify-full` checks that the certificate names the server, `verify-ca` only that a trusted authority signed
    /// it: a server of its own whose certificate names only `db.example.org`, reached at 127.0.0.1 and trusted.
    @Test func verifyFullRefusesACertificateThatNamesAnotherServerAndVerifyCADoesNot() async throws {
        // Skipped, as the other PostgreSQL cases are, where PostgreSQL cannot run.
        _ = try testStorage(.postgres, try TemporaryDirectory().path("relay"))
        let server = try PostgresTestServer.startPrivate(certificateNames: "DNS:db.example.org")
        defer { server.stop() }
        var location = try server.makeDatabase()
        location.rootCertificates = server.certificateFile

        location.tls = .verifyFull
        try await expectRefusal(location, "TLS certificate was not accepted")
        location.tls = .verifyCA
        let storage = try await connect(location)
        #expect(try encryptedConnections(server, location.database) >= 1, "verify-ca did not encrypt")
        await storage.close()
    }

    /// Starting a relay on `location` fails with a sentence holding `words`, before its 90 s start timeout.
    func expectRefusal(
        _ location: PostgresLocation, _ words: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        do {
            let storage = try await connect(location)
            await storage.close()
            Issue.record("the relay started", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(words), "\(error)", sourceLocation: sourceLocation)
        }
    }

    /// What no retry can cure ends a relay's start at once with the server's own reason.
    @Test func aDatabaseThatRefusesTheRelayIsNamedWithTheServersReason() async throws {
        let dir = try TemporaryDirectory()
        let spec = try testStorage(.postgres, dir.path("relay"))
        var location = try #require(spec.location)
        location.password = "not the password"
        try await expectRefusal(location, "password authentication failed for user \"amanat\" (SQLSTATE 28P01)")
        location = try #require(spec.location)
        location.database = "no_such_database"
        try await expectRefusal(location, "(SQLSTATE 3D000)")
    }

    @Test func theDatabaseURLTakesLibpqsModesAndARootCertificateFile() throws {
        let dir = try TemporaryDirectory()
        let ca = dir.path("ca.pem").path
        _ = FileManager.default.createFile(atPath: ca, contents: Data("-----BEGIN CERTIFICATE-----\n".utf8))
        let full = try PostgresLocation(
            url: "postgres://amanat@db.example.org/amanat?sslmode=verify-full&sslrootcert=\(ca)", password: nil)
        #expect(full.tls == .verifyFull && full.rootCertificates == ca)
        #expect(
            try PostgresLocation(url: "postgres://amanat@db/amanat?sslmode=verify-ca&sslrootcert=\(ca)", password: nil)
                .tls == .verifyCA)
        #expect(try PostgresLocation(url: "postgres://amanat@db/amanat", password: nil).tls == .prefer)
        for (url, sentence) in [
            ("postgres://amanat@db/amanat?sslmode=require&sslrootcert=\(ca)", "sslrootcert is used only with"),
            ("postgres://amanat@db/amanat?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "cannot be read"),
            ("postgres://amanat@db/amanat?sslmode=allow", "takes only ?sslmode=disable"),
            ("postgres://amanat@db/amanat?sslmode=verify-ca", "verify-ca needs &sslrootcert=FILE"),
        ] {
            #expect(throws: RelayStoreError.self) { try PostgresLocation(url: url, password: nil) }
            do {
                _ = try PostgresLocation(url: url, password: nil)
            } catch {
                #expect("\(error)".contains(sentence), "\(url): \(error)")
            }
        }
    }
}
