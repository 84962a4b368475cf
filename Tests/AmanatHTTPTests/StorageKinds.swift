import AmanatTestSupport
import Foundation
import Testing

/// Storage of `kind` for one test. Without PostgreSQL on this machine its half of a test is cancelled (reported as
/// skipped, with the reason) — unless `AMANAT_REQUIRE_POSTGRES=1` (CI), where its absence fails the test.
func testStorage(_ kind: RelayStorageKind, _ data: URL) throws -> TestStorage {
    do {
        return try TestStorage(kind, data: data)
    } catch let error as PostgresUnavailable where !postgresRequired {
        let name = Test.current?.name ?? "a test"
        FileHandle.standardError.write(Data("SKIPPED: the PostgreSQL case of \(name): \(error.reason)\n".utf8))
        try Test.cancel("PostgreSQL test skipped: \(error.reason)")
    }
}
