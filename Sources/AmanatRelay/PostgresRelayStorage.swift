import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Where a PostgreSQL relay database is and how to log in: `postgres://USER@HOST[:PORT]/DB[?sslmode=…]`, the
/// password given apart (``PostgresRelayStorage/Location/password``), never in the URL.
public struct PostgresLocation: Sendable, Equatable {
    /// How the connection is encrypted, as libpq's `sslmode` says it.
    public enum TLSMode: String, Sendable {
        /// Plain TCP (a loopback or a private network only).
        case disable
        /// TLS when the server offers it; its certificate is not checked (libpq's `prefer`).
        case prefer
        /// TLS or no connection; the certificate is not checked (libpq's `require`).
        case require
        /// TLS, with a certificate signed by a trusted authority (`sslrootcert`, else the system's).
        case verifyCA = "verify-ca"
        /// As `verify-ca`, and the certificate names the host.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var password: String?
    public var tls: TLSMode
    /// A PEM file of the authorities `verify-ca` and `verify-full` trust (`sslrootcert`); nil: the system's.
    public var rootCertificates: String?

    /// A location given piece by piece.
    public init(
        host: String, port: Int = 5432, user: String, database: String, password: String?, tls: TLSMode,
        rootCertificates: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.password = password
        self.tls = tls
        self.rootCertificates = rootCertificates
    }

    /// Parses `postgres://USER@HOST[:PORT]/DB[?sslmode=disable|prefer|require|verify-ca|verify-full]
    /// [&sslrootcert=PATH]`; a password in the URL is refused (a command line is visible to every user of the
    /// machine). Throws one sentence.
    public init(url text: String, password: String?) throws {
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw RelayStoreError(
                .refused, "The database must be a URL such as postgres://amanat@db.example.org/amanat.")
        }
        guard url.password == nil else {
            throw RelayStoreError(
                .refused,
                "Put the database password in AMANAT_DATABASE_PASSWORD or --database-password-file, not in the URL.")
        }
        guard let user = url.user, !user.isEmpty, let host = url.host, !host.isEmpty else {
            throw RelayStoreError(.refused, "The database URL must name a user and a host: postgres://USER@HOST/DB.")
        }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw RelayStoreError(.refused, "The database URL must name one database after the host: …/DB.")
        }
        var tls = TLSMode.prefer
        var roots: String?
        for item in url.queryItems ?? [] {
            if item.name == "sslrootcert", let path = item.value, !path.isEmpty {
                roots = path
                continue
            }
            guard item.name == "sslmode", let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                throw RelayStoreError(
                    .refused,
                    "The database URL takes only ?sslmode=disable, prefer, require, verify-ca or verify-full, and &sslrootcert=PATH."
                )
            }
            tls = mode
        }
        if roots != nil && tls != .verifyCA && tls != .verifyFull {
            throw RelayStoreError(
                .refused, "sslrootcert is used only with sslmode=verify-ca or verify-full; add one of them.")
        }
        if roots == nil && tls == .verifyCA {
            // Any certificate a public authority signed, for any name, would pass: no check worth the name.
            throw RelayStoreError(
                .refused,
                "sslmode=verify-ca needs &sslrootcert=FILE (the authority that signed the database's certificate); or use verify-full."
            )
        }
        if let roots, !FileManager.default.isReadableFile(atPath: roots) {
            throw RelayStoreError(.refused, "The sslrootcert file \(roots) cannot be read.")
        }
        if let port = url.port, !(1...65535).contains(port) {
            throw RelayStoreError(.refused, "The database port must be between 1 and 65535.")
        }
        self.init(
            host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: url.port ?? 5432,
            user: user, database: database, password: password, tls: tls, rootCertificates: roots)
    }

    /// The TLS settings for ``tls``: libpq's meaning of each mode.
    func tlsConfiguration() -> PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: .disable
        case .prefer: .prefer(clientTLS())
        case .require, .verifyCA, .verifyFull: .require(clientTLS())
        }
    }

    /// The client's TLS configuration: which certificate checks ``tls`` asks for, against which authorities.
    func clientTLS() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable, .prefer, .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let rootCertificates { configuration.trustRoots = .file(rootCertificates) }
        return configuration
    }

    /// The URL without the password, for logs and messages.
    public var display: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}

/// Relay storage in one PostgreSQL database that any number of relay processes share (Protocol/relay-postgres.md).
///
/// Nothing is decided from one process's memory: a push takes the vault's row lock (`SELECT … FOR NO KEY UPDATE`) for its
/// transaction, so two relays storing the same device's chain are serialised and the second sees the first's
/// envelopes (a duplicate or a fork, 409); the primary key `(vault, author, seq)` is the last word. A nonce is a
/// row under a primary key, inserted or refused in one statement. Registration and the schema migration take
/// transaction-scoped advisory locks.
public final class PostgresRelayStorage: RelayStorage {
    /// The schema version this build creates and reads (`amanat_relay_schema.version`).
    public static let schemaVersion = 4

    /// The database.
    public let location: PostgresLocation
    /// The most vaults the relay registers.
    public let maxVaults: Int
    let client: PostgresClient
    private let runner: Task<Void, Never>
    let logger: Logger
    private let cache = MembershipCache()

    public var summary: String { "PostgreSQL \(location.display)" }

    private init(location: PostgresLocation, maxVaults: Int, logger: Logger) {
        self.location = location
        self.maxVaults = maxVaults
        self.logger = logger
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: location.tlsConfiguration())
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.maximumConnections = 16
        configuration.options.additionalStartupParameters = Self.startupParameters
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Sent when each connection starts: generic plans for the prepared statements (PostgresStatements.swift).
    static let startupParameters = [("plan_cache_mode", "force_generic_plan")]

    /// Connects, then creates or migrates the schema (Protocol/relay-postgres.md §2). Throws one sentence when the
    /// database cannot be reached or was made by a newer relay.
    public static func connect(
        _ location: PostgresLocation, maxVaults: Int = 1000, startTimeout: Duration = .seconds(15), logger: Logger
    ) async throws -> PostgresRelayStorage {
        try await probe(location, within: startTimeout, logger: logger)
        let storage = PostgresRelayStorage(location: location, maxVaults: maxVaults, logger: logger)
        do {
            // A database that refuses the password or does not answer is retried by the pool in the background; the
            // start waits for it a bounded time (the pool logs each failed attempt with the server's reason).
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await storage.migrate() }
                group.addTask {
                    try await Task.sleep(for: startTimeout)
                    throw StoreError(
                        .busy, "The database \(location.display) did not let the relay in within \(startTimeout).")
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch {
            await storage.close()
            throw error
        }
        return storage
    }

    /// One direct connection before the pool starts: a refusal no retry can cure — a wrong password, no such
    /// database or user, a certificate that does not verify — ends the start at once with the server's own reason
    /// (the pool would retry it until `startTimeout`, logging each attempt). Anything else (the server still
    /// starting, not answering) is left to the pool's retries.
    static func probe(_ location: PostgresLocation, within limit: Duration, logger: Logger) async throws {
        let tls: PostgresConnection.Configuration.TLS
        do {
            if location.tls == .disable {
                tls = .disable
            } else {
                let context = try NIOSSLContext(configuration: location.clientTLS())
                tls = location.tls == .prefer ? .prefer(context) : .require(context)
            }
        } catch {
            throw StoreError(
                .busy, "The TLS settings for \(location.display) cannot be used (\(error)); check sslrootcert.")
        }
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: tls)
        configuration.options.additionalStartupParameters = startupParameters
        let attempt = Task {
            try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        }
        let timer = Task {
            try await Task.sleep(for: limit)
            attempt.cancel()
        }
        defer { timer.cancel() }
        do {
            let connection = try await attempt.value
            try? await connection.close()
        } catch let error as PSQLError {
            let state = error.serverInfo?[.sqlState] ?? ""
            let said = error.serverInfo?[.message].map { TerminalText.escape($0) } ?? ""
            // 28000/28P01: authentication; 3D000: no such database; 42501: no permission to connect.
            if ["28000", "28P01", "3D000", "42501"].contains(state) {
                throw StoreError(
                    .busy, "The database \(location.display) refused the relay: \(said) (SQLSTATE \(state)).")
            }
            // An unknown setting (PostgreSQL before 12), or a pooler that refuses startup parameters (PgBouncer).
            if state == "42704" || said.contains("plan_cache_mode") {
                throw StoreError(
                    .busy,
                    "The database \(location.display) refused the relay's setting plan_cache_mode: \(said) (SQLSTATE \(state)). The relay needs PostgreSQL 12 or later; a PgBouncer in between must list plan_cache_mode in ignore_startup_parameters."
                )
            }
            if error.code == .sslUnsupported && location.tls != .prefer {
                throw StoreError(
                    .busy,
                    "The database \(location.display) does not offer TLS, which sslmode=\(location.tls.rawValue) requires."
                )
            }
            if let underlying = error.underlying, underlying is NIOSSLError || underlying is NIOSSLExtraError {
                throw StoreError(
                    .busy,
                    "The database \(location.display)'s TLS certificate was not accepted (\(underlying)); with sslmode=verify-ca or verify-full, sslrootcert must name the authority that signed it."
                )
            }
        } catch {
            if error is NIOSSLError || error is NIOSSLExtraError {
                let ssl = error
                throw StoreError(
                    .busy,
                    "The database \(location.display)'s TLS certificate was not accepted (\(ssl)); with sslmode=verify-ca or verify-full, sslrootcert must name the authority that signed it."
                )
            }
            // Not answering yet, or gone for now: the pool's retries and startTimeout decide.
        }
    }

    public func close() async {
        runner.cancel()
        _ = await runner.value
    }

    // MARK: Schema

    /// Each migration brings the schema from its index to the next version, in one transaction: its statements, in
    /// order.
    static let migrations: [[String]] = [
        """
        CREATE TABLE relay_vault (
            id bytea PRIMARY KEY CHECK (length(id) = 16),
            relay_key bytea NOT NULL CHECK (length(relay_key) = 32),
            registered_at bigint NOT NULL
        );
        CREATE TABLE relay_envelope (
            vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
            author bytea NOT NULL CHECK (length(author) = 32),
            seq bigint NOT NULL CHECK (seq >= 1),
            hash bytea NOT NULL CHECK (length(hash) = 32),
            authority boolean NOT NULL,
            body bytea NOT NULL,
            PRIMARY KEY (vault, author, seq)
        );
        CREATE INDEX relay_envelope_authority ON relay_envelope (vault) WHERE authority;
        CREATE TABLE relay_nonce (
            vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
            nonce bytea NOT NULL CHECK (length(nonce) = 16),
            expires bigint NOT NULL,
            PRIMARY KEY (vault, nonce)
        );
        CREATE INDEX relay_nonce_expires ON relay_nonce (expires);
        CREATE TABLE relay_chunk (
            vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
            address bytea NOT NULL CHECK (length(address) = 32),
            sealed bytea NOT NULL,
            PRIMARY KEY (vault, address)
        );
        ALTER TABLE relay_envelope ALTER COLUMN body SET STORAGE EXTERNAL;
        ALTER TABLE relay_chunk ALTER COLUMN sealed SET STORAGE EXTERNAL
        """.components(separatedBy: ";\n"),
        // 1 → 2: the envelopes held in their purged form, for the copies without content (http-api.md §11).
        """
        CREATE INDEX relay_envelope_without_content ON relay_envelope (vault, author, seq)
            WHERE \(purgedFormCondition)
        """.components(separatedBy: ";\n"),
        // 2 → 3: copies of chunks a member found damaged, set aside (http-api.md §10), never served again.
        """
        CREATE TABLE relay_chunk_damaged (
            vault bytea NOT NULL REFERENCES relay_vault(id) ON DELETE CASCADE,
            address bytea NOT NULL CHECK (length(address) = 32),
            sha256 bytea NOT NULL CHECK (length(sha256) = 32),
            sealed bytea NOT NULL,
            PRIMARY KEY (vault, address, sha256)
        );
        ALTER TABLE relay_chunk_damaged ALTER COLUMN sealed SET STORAGE EXTERNAL
        """.components(separatedBy: ";\n"),
        // 3 → 4: each vault's bytes of envelopes and of chunks, for `--quota`, kept by the database itself in a table
        // of their own (every request reads `relay_vault`; a row rewritten at every push would slow them all). The
        // triggers come before the first count, and lock their tables until the migration commits: no row is missed.
        [
            """
            CREATE TABLE relay_vault_usage (
                vault bytea PRIMARY KEY REFERENCES relay_vault(id) ON DELETE CASCADE,
                envelope_bytes bigint NOT NULL DEFAULT 0,
                chunk_bytes bigint NOT NULL DEFAULT 0
            )
            """,
            countingFunction("amanat_count_envelope_bytes", column: "body", counter: "envelope_bytes"),
            countingFunction("amanat_count_chunk_bytes", column: "sealed", counter: "chunk_bytes"),
        ] + countingTriggers("relay_envelope", function: "amanat_count_envelope_bytes")
            + countingTriggers("relay_chunk", function: "amanat_count_chunk_bytes")
            + countingTriggers("relay_chunk_damaged", function: "amanat_count_chunk_bytes") + [
                """
                INSERT INTO relay_vault_usage (vault, envelope_bytes, chunk_bytes) SELECT v.id,
                    COALESCE((SELECT sum(octet_length(body)) FROM relay_envelope e WHERE e.vault = v.id), 0),
                    COALESCE((SELECT sum(octet_length(sealed)) FROM relay_chunk c WHERE c.vault = v.id), 0)
                        + COALESCE((SELECT sum(octet_length(sealed)) FROM relay_chunk_damaged d WHERE d.vault = v.id), 0)
                FROM relay_vault v
                """
            ],
    ]

    /// A trigger function that keeps `relay_vault_usage.<counter>` equal to the bytes of `column` in the rows of the
    /// table it fires on, per vault: once per statement, from the statement's transition tables (`gone`, `added`).
    static func countingFunction(_ name: String, column: String, counter: String) -> String {
        """
        CREATE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                UPDATE relay_vault_usage u SET \(counter) = u.\(counter) - t.bytes
                FROM (SELECT vault, sum(octet_length(\(column)))::bigint AS bytes FROM gone GROUP BY vault) t
                WHERE u.vault = t.vault;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO relay_vault_usage AS u (vault, \(counter))
                SELECT vault, sum(octet_length(\(column)))::bigint FROM added GROUP BY vault
                ON CONFLICT (vault) DO UPDATE SET \(counter) = u.\(counter) + EXCLUDED.\(counter);
            END IF;
            RETURN NULL;
        END $$;
        """
    }

    /// The three statement triggers (insert, update, delete) of `table` that run `function`.
    static func countingTriggers(_ table: String, function: String) -> [String] {
        [
            """
            CREATE TRIGGER \(table)_counted_insert AFTER INSERT ON \(table) REFERENCING NEW TABLE AS added
                FOR EACH STATEMENT EXECUTE FUNCTION \(function)()
            """,
            """
            CREATE TRIGGER \(table)_counted_update AFTER UPDATE ON \(table) REFERENCING OLD TABLE AS gone
                NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION \(function)()
            """,
            """
            CREATE TRIGGER \(table)_counted_delete AFTER DELETE ON \(table) REFERENCING OLD TABLE AS gone
                FOR EACH STATEMENT EXECUTE FUNCTION \(function)()
            """,
        ]
    }

    /// The advisory lock keys (transaction-scoped): one for migrations, one for registrations.
    static let migrationLock: Int64 = 0x616d_616e_6174_0001
    static let registrationLock: Int64 = 0x616d_616e_6174_0002

    private func migrate() async throws {
        try await run("prepare the database") {
            // READ COMMITTED whatever the database's default: the count of migration 4 must see every row committed
            // before its triggers took their tables' locks, not a snapshot from before them.
            try await transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
                try await db.query(
                    "CREATE TABLE IF NOT EXISTS amanat_relay_schema (version integer NOT NULL)", logger: logger)
                var version = 0
                for try await (stored) in try await db.query(
                    "SELECT version FROM amanat_relay_schema", logger: logger
                ).decode(Int32.self) {
                    version = max(version, Int(stored))
                }
                guard version <= Self.schemaVersion else {
                    throw RelayStoreError(
                        .refused,
                        "The database \(location.database) was made by a newer relay (schema \(version)); this relay knows schema \(Self.schemaVersion) at most."
                    )
                }
                for index in version..<Self.schemaVersion {
                    for statement in Self.migrations[index] {
                        try await db.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                }
                try await db.query("DELETE FROM amanat_relay_schema", logger: logger)
                try await db.query(
                    "INSERT INTO amanat_relay_schema (version) VALUES (\(Int32(Self.schemaVersion)))", logger: logger)
            }
        }
    }

    /// Runs `body` in a transaction that `begin` opens (with its isolation level: one statement, where
    /// `withTransaction`'s `BEGIN` and a `SET TRANSACTION` would be two), committed when `body` returns and rolled
    /// back when it throws.
    private func transaction<T>(_ begin: StaticString, _ body: (PostgresConnection) async throws -> sending T)
        async throws -> sending T
    {
        try await connection { db in
            try await db.query(PostgresQuery(unsafeSQL: "\(begin)"), logger: logger)
            do {
                let result = try await body(db)
                try await db.query("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await db.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// Runs `body` on a connection of the pool: every path that runs a prepared statement goes through it (or through
    /// ``transaction(_:_:)``, which does). A database error closes
    /// the connection, and the pool opens another: postgres-nio remembers a statement whose preparation failed (a
    /// lock or statement timeout while an operator's maintenance holds a table, a cancelled backend) for the whole
    /// life of the connection, so every later request that reached that connection would fail too.
    private func connection<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        try await client.withConnection { db in
            do {
                return try await body(db)
            } catch let error as PSQLError {
                try? await db.close()
                throw error
            }
        }
    }

    /// Runs `body`, turning database failures into a storage error with one sentence (the server's own text goes
    /// to the log only: it may quote a statement).
    private func run<T>(_ what: String, _ body: () async throws -> sending T) async throws -> sending T {
        do {
            return try await body()
        } catch {
            throw mapError(error, what)
        }
    }

    private func mapError(_ error: any Error, _ what: String) -> any Error {
        switch error {
        case let error as PostgresTransactionError:
            // An error thrown inside a transaction comes back wrapped, the transaction rolled back.
            guard let inner = error.closureError ?? error.beginError ?? error.commitError else {
                return StoreError(.busy, "Could not \(what) in the relay database \(location.display).")
            }
            return mapError(inner, what)
        case is RelayStoreError, is StoreError:
            return error
        case let error as CoreError:
            return RelayStoreError(.refused, "Refused: \(error.message)")
        case let error as PSQLError:
            logger.error(
                "database failure",
                metadata: [
                    "action": "\(what)", "code": "\(error.code)",
                    "sqlstate": "\(error.serverInfo?[.sqlState] ?? "-")",
                    "message": "\(error.serverInfo?[.message] ?? "-")",
                ])
            return StoreError(.busy, "Could not \(what) in the relay database \(location.display).")
        case is CancellationError:
            return StoreError(.busy, "Could not \(what): the relay is stopping.")
        default:
            logger.error("database failure", metadata: ["action": "\(what)", "error": "\(type(of: error))"])
            return StoreError(.busy, "Could not \(what) in the relay database \(location.display).")
        }
    }

    // MARK: Registration

    public func registeredKey(of vaultID: [UInt8]) async throws -> [UInt8]? {
        try await run("read a vault's key") {
            for try await key in try await client.query(
                "SELECT relay_key FROM relay_vault WHERE id = \(Data(vaultID))", logger: logger
            ).decode(Data.self) {
                return Array(key)
            }
            return nil
        }
    }

    public func register(vaultID: [UInt8], key: [UInt8], now: Int64) async throws -> Bool {
        precondition(vaultID.count == 16 && key.count == 32)
        if let existing = try await registeredKey(of: vaultID) {
            guard existing == key else { throw Self.mismatch }
            return false
        }
        let maxVaults = maxVaults
        return try await run("register a vault") {
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.registrationLock))", logger: logger)
                for try await existing in try await db.query(
                    "SELECT relay_key FROM relay_vault WHERE id = \(Data(vaultID))", logger: logger
                ).decode(Data.self) {
                    guard Array(existing) == key else { throw Self.mismatch }
                    return false
                }
                if try await Self.vaultCount(db, logger) >= maxVaults {
                    try await Self.removeUnused(db, now: now, logger)
                }
                guard try await Self.vaultCount(db, logger) < maxVaults else {
                    throw RelayStoreError(.full, "This relay holds as many vaults as it is allowed to (\(maxVaults)).")
                }
                try await db.query(
                    "INSERT INTO relay_vault (id, relay_key, registered_at) VALUES (\(Data(vaultID)), \(Data(key)), \(now))",
                    logger: logger)
                return true
            }
        }
    }

    private static let mismatch = RelayStoreError(
        .keyMismatch, "This vault is registered on the relay with another key; this device is not a member of it.")
    private static let unknown = RelayStoreError(.unknownVault, "This relay does not hold this vault.")

    private static func vaultCount(_ db: PostgresConnection, _ logger: Logger) async throws -> Int {
        for try await count in try await db.query("SELECT count(*) FROM relay_vault", logger: logger).decode(
            Int64.self)
        {
            return Int(count)
        }
        return 0
    }

    @discardableResult
    private static func removeUnused(_ db: PostgresConnection, now: Int64, _ logger: Logger) async throws -> Int {
        var removed = 0
        for try await _ in try await db.query(
            """
            DELETE FROM relay_vault v WHERE registered_at < \(now - RelayStore.unusedVaultLifetime)
            AND NOT EXISTS (SELECT 1 FROM relay_envelope e WHERE e.vault = v.id) RETURNING 1
            """, logger: logger
        ) {
            removed += 1
        }
        return removed
    }

    public func removeUnusedVaults(now: Int64) async throws -> Int {
        try await run("remove unused vaults") {
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.registrationLock))", logger: logger)
                return try await Self.removeUnused(db, now: now, logger)
            }
        }
    }

    // MARK: Nonces

    public func useNonce(vaultID: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws -> Bool {
        try await run("record a nonce") {
            try await client.withConnection { db in
                if nonceSweep.due(now) {
                    try await db.query("DELETE FROM relay_nonce WHERE expires < \(now)", logger: logger)
                }
                var inserted = false
                for try await _ in try await db.query(
                    """
                    INSERT INTO relay_nonce (vault, nonce, expires)
                    SELECT id, \(Data(nonce)), \(expires) FROM relay_vault WHERE id = \(Data(vaultID))
                    ON CONFLICT (vault, nonce) DO NOTHING RETURNING 1
                    """, logger: logger
                ) {
                    inserted = true
                }
                if !inserted, try await Self.vaultExists(db, vaultID, logger) == false { throw Self.unknown }
                return inserted
            }
        }
    }

    private let nonceSweep = Sweep()

    /// The vault's key, the nonce recorded (only for that key) and the number of authority envelopes held, in one
    /// statement; the membership then comes from the cache unless an authority envelope arrived since.
    public func admit(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64) async throws
        -> RelayAdmission
    {
        try await admit(vaultID: vaultID, key: key, nonce: nonce, expires: expires, now: now, withVector: false).0
    }

    /// The admission and the vault's vector, in the same statement.
    public func admitWithVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64)
        async throws -> (RelayAdmission, [DeviceID: ChainHead])
    {
        let (admission, vector, _) = try await admit(
            vaultID: vaultID, key: key, nonce: nonce, expires: expires, now: now, withVector: true)
        return (admission, vector)
    }

    /// The admission, the vector and whether the vault holds any purged form, in the same statement: a vector answer
    /// of a vault without one needs no other statement.
    public func admitForVector(vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64)
        async throws -> (RelayAdmission, [DeviceID: ChainHead], mayHoldCopiesWithoutContent: Bool)
    {
        try await admit(vaultID: vaultID, key: key, nonce: nonce, expires: expires, now: now, withVector: true)
    }

    private func admit(
        vaultID: [UInt8], key: [UInt8], nonce: [UInt8], expires: Int64, now: Int64, withVector: Bool
    ) async throws -> (RelayAdmission, [DeviceID: ChainHead], mayHoldCopiesWithoutContent: Bool) {
        try await run("admit a request") {
            try await connection { db in
                if nonceSweep.due(now) {
                    try await db.query("DELETE FROM relay_nonce WHERE expires < \(now)", logger: logger)
                }
                var found: (registered: Data, fresh: Int64, authorities: Int64, purgedForms: Int64)?
                var vector: [DeviceID: ChainHead] = [:]
                for try await (kind, registered, fresh, authorities, purgedForms, author, seq, hash)
                    in try await db
                    .execute(
                        AdmitStatement(
                            vaultID: vaultID, nonce: nonce, expires: expires, key: key, withVector: withVector),
                        logger: logger)
                {
                    if kind == 0, let registered, let fresh, let authorities, let purgedForms {
                        found = (registered, fresh, authorities, purgedForms)
                    } else if kind == 1, let author, let seq, let hash {
                        vector[try DeviceID(Array(author))] = ChainHead(seq: UInt64(clamping: seq), hash: Array(hash))
                    }
                }
                guard let found else { return (RelayAdmission.unknownVault, [:], false) }
                guard Array(found.registered) == key else { return (.otherKey, [:], false) }
                guard found.fresh == 1 else { return (.replayed, [:], false) }
                let membership = try await currentMembership(db, vaultID: vaultID, authorities: found.authorities).0
                return (.admitted(membership), vector, found.purgedForms > 0)
            }
        }
    }

    private static func vaultExists(_ db: PostgresConnection, _ vaultID: [UInt8], _ logger: Logger) async throws
        -> Bool
    {
        for try await _ in try await db.query("SELECT 1 FROM relay_vault WHERE id = \(Data(vaultID))", logger: logger) {
            return true
        }
        return false
    }

    // MARK: Reading

    public func versionVector(vaultID: [UInt8]) async throws -> [DeviceID: ChainHead] {
        try await run("read a vault's vector") {
            try await connection { db in
                guard let heads = try await Self.heads(db, vaultID, theirs: [:], logger) else { throw Self.unknown }
                return heads.mapValues(\.head)
            }
        }
    }

    /// Each author's head, and for each author the replica's `theirs` vector names at a seq above 0, the hash held
    /// at that seq (nil when none is held): one statement (``HeadsStatement``), nil when the vault is not held.
    private static func heads(
        _ db: PostgresConnection, _ vaultID: [UInt8], theirs: [DeviceID: ChainHead], _ logger: Logger
    ) async throws -> [DeviceID: (head: ChainHead, held: [UInt8]?)]? {
        let named = theirs.filter { $0.value.seq > 0 }.map { ($0.key, $0.value.seq) }
        var heads: [DeviceID: (head: ChainHead, held: [UInt8]?)] = [:]
        var exists = false
        for try await (author, seq, hash, held) in try await db.execute(
            HeadsStatement(vaultID: vaultID, theirs: named), logger: logger)
        {
            exists = true
            guard let author, let seq, let hash else { continue }
            heads[try DeviceID(Array(author))] = (
                ChainHead(seq: UInt64(clamping: seq), hash: Array(hash)), held.map { Array($0) }
            )
        }
        return exists ? heads : nil
    }

    public func envelopes(vaultID: [UInt8], author: DeviceID, after seq: UInt64, limit: Int, byteBudget: Int)
        async throws -> [[UInt8]]
    {
        try await run("read envelopes") {
            try await connection { db in
                guard try await Self.vaultExists(db, vaultID, logger) else { throw Self.unknown }
                guard limit > 0 else { return [] }
                var bytes = 0
                var out: [[UInt8]] = []
                for try await body in try await db.execute(
                    EnvelopesStatement(
                        vaultID: vaultID, author: author, after: seq, limit: limit, byteBudget: byteBudget),
                    logger: logger)
                {
                    if bytes > 0 && bytes + body.count > byteBudget { break }
                    bytes += body.count
                    out.append(Array(body))
                }
                return out
            }
        }
    }

    public func missing(vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int) async throws
        -> RelayMissing
    {
        try await run("read what a replica lacks") {
            // One snapshot for the whole answer, as the SQLite store reads in one transaction: one statement.
            let answer = try await connection { db in
                try await Self.missingAtOnce(db, vaultID, for: vector, limit: limit, byteBudget: byteBudget, logger)
            }
            if let answer { return answer }
            logger.warning("the missing envelopes came out of order; read again in two statements")
            return try await missingInTwoReads(vaultID: vaultID, for: vector, limit: limit, byteBudget: byteBudget)
        }
    }

    /// The same answer as ``missing(vaultID:for:limit:byteBudget:)``, read in two statements (the heads, then the
    /// bodies) in one `REPEATABLE READ` transaction: what it falls back to when the one statement's rows do not come
    /// in the order it reads them in.
    package func missingInTwoReads(
        vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int
    ) async throws -> RelayMissing {
        try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { db in
            try await Self.missing(db, vaultID, for: vector, limit: limit, byteBudget: byteBudget, logger)
        }
    }

    /// What a replica lacks, from ``MissingStatement``; nil when its rows did not come in the order the statement's
    /// plan gives them (the vault row, every author's head, then the bodies by author and seq).
    private static func missingAtOnce(
        _ db: PostgresConnection, _ vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int,
        _ logger: Logger
    ) async throws -> RelayMissing? {
        var answer = MissingAnswer(vector: vector, limit: limit, byteBudget: byteBudget)
        var exists = false
        var heads: [(author: DeviceID, seq: UInt64, diverged: Bool)] = []
        var phase: Int32 = -2
        for try await (kind, author, seq, diverged, body) in try await db.execute(
            MissingStatement(
                vaultID: vaultID, theirs: vector.map { ($0.key, $0.value) }, limit: limit, byteBudget: byteBudget),
            logger: logger)
        {
            guard kind >= phase, (-1...1).contains(kind) else { return nil }
            if kind != phase {
                if kind == 1 { answer.plan(heads) }
                phase = kind
            }
            switch kind {
            case -1:
                exists = true
            case 0:
                guard let author, let id = try? DeviceID(Array(author)) else { return nil }
                heads.append((id, UInt64(clamping: seq), diverged))
            default:
                guard let author, let body, let id = try? DeviceID(Array(author)),
                    answer.add(author: id, seq: UInt64(clamping: seq), body: { Array(body) })
                else { return nil }
            }
        }
        guard exists else { throw unknown }
        if phase < 1 { answer.plan(heads) }
        return answer.finished()
    }

    private static func missing(
        _ db: PostgresConnection, _ vaultID: [UInt8], for vector: [DeviceID: ChainHead], limit: Int, byteBudget: Int,
        _ logger: Logger
    ) async throws -> RelayMissing {
        guard let heads = try await Self.heads(db, vaultID, theirs: vector, logger) else { throw unknown }
        var answer = MissingAnswer(vector: vector, limit: limit, byteBudget: byteBudget)
        answer.plan(
            heads.map { author, value in
                let theirs = vector[author] ?? .empty
                let diverged =
                    theirs.seq >= value.head.seq
                    ? theirs.seq == value.head.seq && theirs.hash != value.head.hash
                    : theirs.seq > 0 && value.held != theirs.hash
                return (author, value.head.seq, diverged)
            })
        if answer.wants.contains(where: { $0.take > 0 }) {
            // Every lagging author's bodies in one statement, in author then seq order.
            for try await (ordinal, seq, body) in try await db.execute(
                BodiesStatement(
                    vaultID: vaultID, wants: answer.wants.map { ($0.author, $0.after, $0.take) },
                    byteBudget: byteBudget),
                logger: logger)
            {
                guard ordinal >= 1, ordinal <= Int64(answer.wants.count),
                    answer.add(
                        author: answer.wants[Int(ordinal) - 1].author, seq: UInt64(clamping: seq), body: { Array(body) }
                    )
                else {
                    throw StoreError(.damaged, "The relay database holds a chain with a gap; it cannot be served.")
                }
            }
        }
        return answer.finished()
    }

    public func count(vaultID: [UInt8]) async throws -> Int {
        try await run("count envelopes") {
            try await client.withConnection { db in
                guard try await Self.vaultExists(db, vaultID, logger) else { throw Self.unknown }
                for try await count in try await db.query(
                    "SELECT count(*) FROM relay_envelope WHERE vault = \(Data(vaultID))", logger: logger
                ).decode(Int64.self) {
                    return Int(count)
                }
                return 0
            }
        }
    }

    // MARK: Writing

    public func store(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> RelayStoreResult {
        guard !envelopes.isEmpty else {
            guard try await registeredKey(of: vaultID) != nil else { throw Self.unknown }
            return RelayStoreResult()
        }
        var byAuthor: [DeviceID: [Envelope]] = [:]
        for envelope in envelopes {
            guard envelope.header.vaultID == vaultID else {
                throw RelayStoreError(.refused, "An envelope belongs to another vault.")
            }
            byAuthor[envelope.header.author, default: []].append(envelope)
        }
        let runs = byAuthor.sorted { $0.key < $1.key }.map {
            ($0.key, $0.value.sorted { $0.header.seq < $1.header.seq })
        }
        return try await run("store envelopes") {
            try await transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { db in
                // The vault's row lock serialises every push to this vault across all relay processes: the heads
                // read below cannot change until this transaction ends.
                try await Self.lockVault(db, vaultID, logger)
                let used = quota == nil ? 0 : try await Self.usage(db, vaultID, logger).envelopes
                var result = RelayStoreResult()
                var accepted: [(DeviceID, [Envelope])] = []
                let (heads, authorities) = try await Self.heads(db, vaultID, of: runs.map(\.0), logger)
                for (author, run) in runs {
                    let head = heads[author] ?? .empty
                    var held: [UInt64: [UInt8]] = [:]
                    if let first = run.first, first.header.seq <= head.seq {
                        let last = min(run.last?.header.seq ?? 0, head.seq)
                        for try await (seq, hash) in try await db.query(
                            """
                            SELECT seq, hash FROM relay_envelope WHERE vault = \(Data(vaultID))
                            AND author = \(Data(author.bytes)) AND seq BETWEEN \(Int64(clamping: first.header.seq))
                            AND \(Int64(clamping: last))
                            """, logger: logger
                        ).decode((Int64, Data).self) {
                            held[UInt64(clamping: seq)] = Array(hash)
                        }
                    }
                    let outcome = try RunClassifier.classify(run, vaultID: vaultID, head: head) { held[$0] }
                    if let fork = outcome.fork { throw Self.forkError(fork) }
                    result.duplicates += outcome.duplicates
                    if !outcome.fresh.isEmpty { accepted.append((author, outcome.fresh)) }
                }
                let fresh = accepted.flatMap(\.1)
                // Without a new authority envelope the membership is the one held, which a relay evaluates once
                // per count of authority envelopes (``currentMembership``) rather than at every push.
                var held: MembershipState?
                if !fresh.contains(where: \.isAuthority) {
                    held = try await currentMembership(db, vaultID: vaultID, authorities: authorities).state
                }
                let membership: MembershipState
                if let held {
                    membership = held
                } else {
                    membership = try await Self.membership(db, vaultID: vaultID, adding: fresh, logger)
                }
                if membership.isEstablished {
                    accepted = accepted.map { author, run in
                        guard let m = membership.members[author] else { return (author, []) }
                        guard let cut = m.revokedAfter else { return (author, run) }
                        return (author, run.filter { $0.header.seq <= cut })
                    }
                    result.refused = fresh.count - accepted.flatMap(\.1).count
                }
                // Every accepted envelope in one statement: the columns go as arrays (no limit on parameters).
                var authors: [ByteBuffer] = []
                var seqs: [Int64] = []
                var hashes: [ByteBuffer] = []
                var authority: [Bool] = []
                var bodies: [ByteBuffer] = []
                for (author, run) in accepted {
                    for envelope in run {
                        authors.append(ByteBuffer(bytes: author.bytes))
                        seqs.append(Int64(clamping: envelope.header.seq))
                        hashes.append(ByteBuffer(bytes: envelope.hash))
                        authority.append(envelope.isAuthority)
                        // A purge already names it: only its purged form is stored (Protocol/membership.md §12).
                        let named = !envelope.isPurged && membership.isPurged(envelope)
                        let body = named ? envelope.purged().encoded() : envelope.encoded()
                        result.bytes += body.count
                        if named { result.purged += 1 }
                        bodies.append(ByteBuffer(bytes: body))
                    }
                }
                // The vault's count cannot change meanwhile: its row lock is held (and a trigger adds these rows).
                if let refusal = EnvelopeQuota.refusal(
                    used: used, adding: result.bytes, quota: quota,
                    byCoordinators: EnvelopeQuota.byCoordinators(accepted, membership))
                {
                    throw refusal
                }
                if !authors.isEmpty {
                    _ = try await db.execute(
                        InsertEnvelopesStatement(
                            vaultID: vaultID, authors: authors, seqs: seqs, hashes: hashes, authority: authority,
                            bodies: bodies),
                        logger: logger)
                    result.stored += authors.count
                }
                // A purge among the new entries: the relay destroys the ciphertext of what it names and its chunks.
                let newPurges = membership.purges.filter { grant in
                    fresh.contains { $0.header.author == grant.author && $0.header.seq == grant.seq }
                }
                for grant in newPurges {
                    result.purged += try await Self.applyPurge(db, vaultID: vaultID, grant.purge, logger)
                    result.purgedChunks += grant.purge.chunks
                    if !grant.purge.chunks.isEmpty {
                        // One statement for all of the purge's chunks (a bytea[] parameter), not one per address.
                        let addresses = grant.purge.chunks.map { ByteBuffer(bytes: $0) }
                        try await db.query(
                            "DELETE FROM relay_chunk WHERE vault = \(Data(vaultID)) AND address = ANY(\(addresses))",
                            logger: logger)
                        // A copy set aside as damaged goes with it: ciphertext of the same content.
                        try await db.query(
                            """
                            DELETE FROM relay_chunk_damaged WHERE vault = \(Data(vaultID)) AND address = ANY(\(addresses))
                            """, logger: logger)
                    }
                }
                return result
            }
        }
    }

    // MARK: Copies without content

    /// Which bodies are purged forms (225 bytes, "AMNP" after the header): the predicate of the partial index
    /// `relay_envelope_without_content` and of every query that reads through it.
    static let purgedFormCondition =
        "octet_length(body) = 225 AND substring(body from 126 for 4) = '\\x414d4e50'::bytea"

    public func copiesWithoutContent(vaultID: [UInt8], limit: Int) async throws -> [[UInt8]] {
        try await run("list copies without content") {
            // One snapshot for the count and both windows, so that no row is read twice or missed for a write that
            // commits in between (the listing also takes each envelope once).
            try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { db in
                let membership = try await currentMembership(db, vaultID: vaultID).0
                let rows = RelayStore.listingRows(limit, membership)
                // Through the partial index `relay_envelope_without_content`: only purged forms are read.
                var total = 0
                for try await n in try await db.query(
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT count(*) FROM relay_envelope WHERE vault = $1 AND \(Self.purgedFormCondition)",
                        binds: try Self.binds(Data(vaultID))),
                    logger: logger
                ).decode(Int64.self) {
                    total = Int(clamping: n)
                }
                var listing = RelayStore.StrippedListing(membership: membership, limit: limit)
                for window in RelayStore.listingWindows(total: total, rows: rows) {
                    for try await body in try await db.query(
                        PostgresQuery(
                            unsafeSQL: """
                                SELECT body FROM relay_envelope WHERE vault = $1 AND \(Self.purgedFormCondition)
                                ORDER BY author, seq LIMIT $2 OFFSET $3
                                """,
                            binds: try Self.binds(Data(vaultID), Int64(window.rows), Int64(window.offset))),
                        logger: logger
                    ).decode(Data.self) {
                        listing.offer(body)
                    }
                }
                return listing.found
            }
        }
    }

    /// Bindings for an unnamed statement: a vault id, then numbers.
    private static func binds(_ vault: Data, _ numbers: Int64...) throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1 + numbers.count)
        try bindings.append(vault)
        for number in numbers { bindings.append(number) }
        return bindings
    }

    public func putBackContent(vaultID: [UInt8], envelopes: [Envelope], quota: UInt64?) async throws -> Int {
        let wanted = envelopes.filter { $0.header.vaultID == vaultID && !$0.isPurged && !$0.isAuthority }
        return try await run("put back content") {
            try await transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { db in
                // The vault's row lock: no purge from any relay process lands between the check and the update, and
                // the count read with it stays the vault's until the transaction ends.
                try await Self.lockVault(db, vaultID, logger)
                var budget = EnvelopeQuota.PutBackBudget(
                    quota: quota, used: quota == nil ? 0 : try await Self.usage(db, vaultID, logger).envelopes)
                guard !wanted.isEmpty else { return 0 }
                let membership = try await currentMembership(db, vaultID: vaultID).0
                var restored = 0
                for envelope in wanted {
                    let author = Data(envelope.header.author.bytes)
                    let seq = Int64(clamping: envelope.header.seq)
                    var held: Data?
                    for try await body in try await db.query(
                        """
                        SELECT body FROM relay_envelope WHERE vault = \(Data(vaultID)) AND author = \(author)
                        AND seq = \(seq)
                        """, logger: logger
                    ).decode(Data.self) {
                        held = body
                    }
                    guard let held, RelayStore.putsBack(envelope, over: held, membership: membership) else { continue }
                    let body = envelope.encoded()
                    guard budget.admits(envelope, body: body, replacing: held, membership: membership) else { continue }
                    try await db.query(
                        """
                        UPDATE relay_envelope SET body = \(Data(body)) WHERE vault = \(Data(vaultID))
                        AND author = \(author) AND seq = \(seq)
                        """, logger: logger)
                    restored += 1
                }
                return restored
            }
        }
    }

    /// Replaces each held envelope a purge names (same author, seq and ciphertext hash; never a membership entry) by
    /// its purged form. Returns how many were replaced.
    private static func applyPurge(_ db: PostgresConnection, vaultID: [UInt8], _ purge: Purge, _ logger: Logger)
        async throws -> Int
    {
        var replaced = 0
        for target in purge.targets {
            var purged: Data?
            for try await body in try await db.query(
                """
                SELECT body FROM relay_envelope WHERE vault = \(Data(vaultID)) AND author = \(Data(target.author.bytes))
                AND seq = \(Int64(clamping: target.seq)) AND NOT authority
                """, logger: logger
            ).decode(Data.self) {
                purged = RelayStore.purgedForm(of: body, naming: target)
            }
            guard let purged else { continue }
            try await db.query(
                """
                UPDATE relay_envelope SET body = \(purged) WHERE vault = \(Data(vaultID))
                AND author = \(Data(target.author.bytes)) AND seq = \(Int64(clamping: target.seq))
                """, logger: logger)
            replaced += 1
        }
        return replaced
    }

    /// Takes the vault's row lock for the transaction (`NO KEY UPDATE`: the foreign-key checks of nonce inserts,
    /// which take `KEY SHARE`, do not wait for it); throws when the vault is not held. The transaction must be
    /// `READ COMMITTED`, whatever default isolation the operator set: each later statement then sees what the previous
    /// holder of the lock committed (a purge, a head), where a `REPEATABLE READ` snapshot would be taken before the
    /// wait.
    private static func lockVault(_ db: PostgresConnection, _ vaultID: [UInt8], _ logger: Logger) async throws {
        var locked = false
        for try await _ in try await db.execute(LockVaultStatement(vaultID: vaultID), logger: logger) {
            locked = true
        }
        guard locked else { throw unknown }
    }

    /// The bytes of the vault's envelopes and of its chunks as the database keeps them (schema 4), for `--quota`:
    /// read under the vault's row lock, in a statement of its own. The statement that took the lock read with the
    /// snapshot it began with, before it waited; this one sees what the previous holder of the lock committed.
    private static func usage(_ db: PostgresConnection, _ vaultID: [UInt8], _ logger: Logger) async throws
        -> (envelopes: UInt64, chunks: UInt64)
    {
        for try await (envelopes, chunks) in try await db.query(
            "SELECT envelope_bytes, chunk_bytes FROM relay_vault_usage WHERE vault = \(Data(vaultID))", logger: logger
        ).decode((Int64, Int64).self) {
            return (UInt64(clamping: envelopes), UInt64(clamping: chunks))
        }
        return (0, 0)
    }

    /// The heads of `authors` (absent: none held) and the number of authority envelopes held, in one statement.
    private static func heads(_ db: PostgresConnection, _ vaultID: [UInt8], of authors: [DeviceID], _ logger: Logger)
        async throws -> ([DeviceID: ChainHead], authorities: Int64)
    {
        var heads: [DeviceID: ChainHead] = [:]
        var authorities: Int64 = -1
        for try await (author, seq, hash) in try await db.execute(
            PushHeadsStatement(vaultID: vaultID, authors: authors), logger: logger)
        {
            if let author, let hash {
                heads[try DeviceID(Array(author))] = ChainHead(seq: UInt64(clamping: seq), hash: Array(hash))
            } else {
                authorities = seq
            }
        }
        return (heads, authorities)
    }

    private static func forkError(_ envelope: Envelope) -> RelayStoreError {
        RelayStoreError(
            .fork,
            "Refused: device \(envelope.header.author.hex.prefix(12)) signed two different changes numbered \(envelope.header.seq); the relay keeps the first."
        )
    }

    // MARK: Membership

    public func membership(vaultID: [UInt8]) async throws -> MembershipState {
        try await run("read a vault's membership") {
            try await client.withConnection { db in try await currentMembership(db, vaultID: vaultID).0 }
        }
    }

    /// The membership held, from the cache when no authority envelope was stored since it was evaluated; `state` is
    /// nil when it contains an `adopt` (then it depends on record envelopes too, and a push must evaluate it with
    /// what it adds). `authorities` is the number of authority envelopes held, when the caller has just read it.
    private func currentMembership(_ db: PostgresConnection, vaultID: [UInt8], authorities: Int64? = nil)
        async throws -> (MembershipState, state: MembershipState?)
    {
        // Envelopes are never removed (a purge replaces only record envelopes), so the number of authority envelopes
        // names the membership held; it is read from the database on every request, as another relay may have
        // stored one a moment ago.
        var count: Int64 = -1
        if let authorities {
            count = authorities
        } else {
            for try await n in try await db.query(
                "SELECT count(*) FROM relay_envelope WHERE vault = \(Data(vaultID)) AND authority",
                logger: logger
            ).decode(Int64.self) {
                count = n
            }
        }
        if let cached = cache.get(vaultID, count: count) { return (cached, cached) }
        guard try await Self.vaultExists(db, vaultID, logger) else { throw Self.unknown }
        let (state, adopts) = try await Self.evaluate(db, vaultID: vaultID, adding: [], logger)
        if !adopts { cache.set(vaultID, count: count, state: state) }
        return (state, adopts ? nil : state)
    }

    private static func membership(
        _ db: PostgresConnection, vaultID: [UInt8], adding: [Envelope], _ logger: Logger
    ) async throws -> MembershipState {
        try await evaluate(db, vaultID: vaultID, adding: adding, logger).0
    }

    /// The membership from the authority envelopes held and `adding` (as ``RelayStore`` evaluates it), and whether
    /// it contains an `adopt` (which makes it depend on record envelopes too).
    private static func evaluate(
        _ db: PostgresConnection, vaultID: [UInt8], adding: [Envelope], _ logger: Logger
    ) async throws -> (MembershipState, Bool) {
        var held: [Envelope] = []
        for try await body in try await db.query(
            "SELECT body FROM relay_envelope WHERE vault = \(Data(vaultID)) AND authority ORDER BY author, seq",
            logger: logger
        ).decode(Data.self) {
            if let envelope = try? Envelope(decoding: Array(body)) { held.append(envelope) }
        }
        var entries: [AuthoredEntry] = []
        for envelope in held + adding.filter(\.isAuthority) {
            if let entry = try? envelope.openEntry() { entries.append(entry) }
        }
        var legacy: [DeviceID: UInt64] = [:]
        let adopts = entries.contains {
            if case .adopt = $0.entry.operation { return true }
            return false
        }
        if adopts {
            for try await (author, seq) in try await db.query(
                """
                SELECT author, MIN(seq) FROM relay_envelope WHERE vault = \(Data(vaultID)) AND NOT authority
                GROUP BY author
                """, logger: logger
            ).decode((Data, Int64).self) {
                guard let device = try? DeviceID(Array(author)) else { continue }
                legacy[device] = UInt64(clamping: seq)
            }
            for envelope in adding where !envelope.isAuthority {
                let device = envelope.header.author
                legacy[device] = min(legacy[device] ?? envelope.header.seq, envelope.header.seq)
            }
        }
        return (MembershipState.evaluate(vaultID: vaultID, entries: entries, legacyAuthors: legacy), adopts)
    }

    // MARK: Chunks

    public func heldChunks(vaultID: [UInt8], _ wanted: [(address: [UInt8], sealedLength: Int)]) async throws
        -> [[UInt8]]
    {
        guard !wanted.isEmpty else { return [] }
        return try await run("read which chunks are held") {
            var held: [[UInt8]: Int] = [:]
            for slice in stride(from: 0, to: wanted.count, by: 1000).map({ wanted[$0..<min($0 + 1000, wanted.count)] })
            {
                var bindings = PostgresBindings(capacity: slice.count + 1)
                try bindings.append(Data(vaultID))
                let list = try slice.map { item -> String in
                    try bindings.append(Data(item.address))
                    return "$\(bindings.count)"
                }
                for try await (address, length) in try await client.query(
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT address, length(sealed) FROM relay_chunk WHERE vault = $1 AND address IN ("
                            + list.joined(separator: ", ") + ")",
                        binds: bindings), logger: logger
                ).decode((Data, Int32).self) {
                    held[Array(address)] = Int(length)
                }
            }
            return wanted.compactMap { held[$0.address] == $0.sealedLength ? $0.address : nil }
        }
    }

    public func readChunk(vaultID: [UInt8], address: [UInt8]) async throws -> [UInt8]? {
        try await run("read a chunk") {
            for try await sealed in try await client.query(
                "SELECT sealed FROM relay_chunk WHERE vault = \(Data(vaultID)) AND address = \(Data(address))",
                logger: logger
            ).decode(ByteBuffer.self) {
                return Array(buffer: sealed)
            }
            return nil
        }
    }

    public func storeChunk(vaultID: [UInt8], address: [UInt8], sealed: [UInt8], quota: UInt64?) async throws
        -> ChunkWriteOutcome
    {
        try await run("store a chunk") {
            try await transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { db in
                // The vault's row lock makes the quota a decision of the database, whichever relay stores.
                try await Self.lockVault(db, vaultID, logger)
                var heldOtherLength = false
                for try await length in try await db.query(
                    "SELECT length(sealed) FROM relay_chunk WHERE vault = \(Data(vaultID)) AND address = \(Data(address))",
                    logger: logger
                ).decode(Int32.self) {
                    if Int(length) == sealed.count { return .alreadyHeld }
                    heldOtherLength = true
                }
                // Under the vault's row lock a purge cannot be stored meanwhile, by this relay or another.
                let membership = try await currentMembership(db, vaultID: vaultID).0
                if membership.purges.contains(where: { $0.purge.chunks.contains(address) }) { return .purged }
                if let quota {
                    let used = try await Self.usage(db, vaultID, logger).chunks
                    if used + UInt64(sealed.count) > quota { return .overQuota(used: used) }
                }
                if heldOtherLength {
                    // A copy of another length (truncated, or sent by a hostile member) is set aside, never replaced:
                    // it may be the only good one, under a member's word that it is not.
                    try await db.query(
                        """
                        WITH old AS (
                            DELETE FROM relay_chunk WHERE vault = \(Data(vaultID)) AND address = \(Data(address))
                            RETURNING vault, address, sealed
                        )
                        INSERT INTO relay_chunk_damaged (vault, address, sha256, sealed)
                        SELECT vault, address, sha256(sealed), sealed FROM old
                        ON CONFLICT DO NOTHING
                        """, logger: logger)
                }
                try await db.query(
                    """
                    INSERT INTO relay_chunk (vault, address, sealed) VALUES (\(Data(vaultID)), \(Data(address)), \(ByteBuffer(bytes: sealed)))
                    """, logger: logger)
                return .stored
            }
        }
    }

    public func discardDamagedChunk(vaultID: [UInt8], address: [UInt8], sha256: [UInt8]) async throws -> Bool {
        try await run("set aside a damaged chunk") {
            try await transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { db in
                // The vault's row lock first, as every other write of chunks takes it: the counting trigger updates that
                // row, and taking it after the chunk's row would deadlock with a store or a purge of the same address.
                try await Self.lockVault(db, vaultID, logger)
                // One statement: the copy is compared and moved by the database, so a copy another relay stored since
                // stays. Set aside, not destroyed: the relay may hold the only copy, and takes a member's word for it.
                for try await moved in try await db.query(
                    """
                    WITH taken AS (
                        DELETE FROM relay_chunk
                        WHERE vault = \(Data(vaultID)) AND address = \(Data(address)) AND sha256(sealed) = \(Data(sha256))
                        RETURNING vault, address, sealed
                    ), kept AS (
                        INSERT INTO relay_chunk_damaged (vault, address, sha256, sealed)
                        SELECT vault, address, sha256(sealed), sealed FROM taken
                        ON CONFLICT DO NOTHING
                    )
                    SELECT count(*)::bigint FROM taken
                    """, logger: logger
                ).decode(Int64.self) {
                    return moved > 0
                }
                return false
            }
        }
    }

    // MARK: Totals

    public func totals() async throws -> RelayTotals {
        try await run("count what the relay holds") {
            // The bytes as schema 4's triggers keep them per vault: a scrape of /metrics reads no body.
            var totals = RelayTotals()
            for try await (vaults, envelopes, envelopeBytes, chunkBytes) in try await client.query(
                """
                SELECT (SELECT count(*) FROM relay_vault),
                       (SELECT count(*) FROM relay_envelope),
                       (SELECT COALESCE(sum(envelope_bytes), 0)::bigint FROM relay_vault_usage),
                       (SELECT COALESCE(sum(chunk_bytes), 0)::bigint FROM relay_vault_usage)
                """, logger: logger
            ).decode((Int64, Int64, Int64, Int64).self) {
                totals.vaults = Int(vaults)
                totals.envelopes = Int(envelopes)
                totals.envelopeBytes = UInt64(clamping: envelopeBytes)
                totals.chunkBytes = UInt64(clamping: chunkBytes)
            }
            return totals
        }
    }
}

/// Memberships already evaluated, by vault and the number of authority envelopes they were evaluated from.
private final class MembershipCache: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var states: [[UInt8]: (Int64, MembershipState)] = [:]

    func get(_ vault: [UInt8], count: Int64) -> MembershipState? {
        lock.withLock { states[vault].flatMap { $0.0 == count ? $0.1 : nil } }
    }

    func set(_ vault: [UInt8], count: Int64, state: MembershipState) {
        lock.withLock { states[vault] = (count, state) }
    }
}

/// When expired nonces are next swept (every 30 seconds per process; any process's sweep serves all).
private final class Sweep: @unchecked Sendable {
    // @unchecked Sendable: guarded by the lock.
    private let lock = NSLock()
    private var last: Int64 = 0

    func due(_ now: Int64) -> Bool {
        lock.withLock {
            guard now - last >= 30 else { return false }
            last = now
            return true
        }
    }
}
