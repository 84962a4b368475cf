import AmanatRelay
import AmanatStore
import AmanatSync
import AmanatWire
import ArgumentParser
import Foundation
import NIOCore
import Logging

extension Amanat {
    /// `amanat serve`: run an HTTP relay that members of any vault sync through (Protocol/http-api.md).
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a relay that team members sync through over the network (a laptop can be the hub).",
            discussion: """
                The relay stores only signed ciphertext, one SQLite file per vault under --data; it never holds a vault \
                key and cannot read anything. It verifies every chain and signature before storing, refuses forks, and \
                serves only devices holding the vault key (requests are signed with a key derived from it).

                Who may register a new vault is the operator's decision. With --registration-code-file FILE, a vault is \
                registered only by a first sync that presents the code in FILE (`amanat sync URL --registration-code \
                CODE`); if FILE does not exist, the relay creates a random code, writes it there (mode 0600) and prints \
                it. Without it, the first device that syncs a vault registers it (trust on first use), so anyone who can \
                reach the relay can fill it with vaults: fine for a hub laptop on a team's own network, not for a relay \
                others can reach. A vault that stored nothing for 24 hours is removed when the relay is full or restarts. \
                Connections on which nothing arrives for --idle-timeout seconds (default 30) are closed, and so are \
                connections whose client does not take its answer for as long, and request bodies and answers that move \
                slower than 1 KiB/s after 30 seconds. One address may hold at most --max-connections-per-address \
                connections at once (default 32); a connection above it is closed at once.

                With --database postgres://USER@HOST/DB the relay keeps everything in that PostgreSQL database instead, \
                creating and migrating its tables itself; any number of relays on different machines or ports may share \
                one database, and a member gives them all to `amanat sync URL1 URL2` to fail over. The password comes \
                from --database-password-file or AMANAT_DATABASE_PASSWORD, never from the command line. \
                ?sslmode= is libpq's: prefer (the default) and require encrypt without checking the certificate; \
                verify-full&sslrootcert=FILE checks it. \
                Docs/operating-a-relay.md tells how to run, watch (GET /metrics) and back up a relay.

                By default it listens on 127.0.0.1 only; use --host 0.0.0.0 to let other devices on the network reach it. \
                It prints the URL it listens on (with --port 0, the port it chose) on stderr. Ctrl-C or SIGTERM stops it \
                gracefully.

                Example:
                  amanat serve --host 0.0.0.0 --port 8080 \\
                    --data ~/amanat-relay \\
                    --registration-code-file ~/relay-code
                  AMANAT_REGISTRATION_CODE=CODE \\
                    amanat sync http://192.168.1.20:8080
                  (the vault's first sync; later ones need no code)
                """)

        @Option(help: "The address to listen on.") var host = "127.0.0.1"
        @Option(help: "The TCP port (0 picks a free one).") var port = 8080
        @Option(help: "The relay's data directory (default: $AMANAT_RELAY_DATA, else ~/.amanat-relay).") var data:
            String?
        @Option(
            help:
                "A PostgreSQL database to keep the relay's data in instead of --data: postgres://USER@HOST/DB[?sslmode=…]."
        )
        var database: String?
        @Option(help: "A file holding the database password (default: $AMANAT_DATABASE_PASSWORD).")
        var databasePasswordFile: String?
        @Option(help: "The most vaults the relay registers.") var maxVaults = 1000
        @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
        @Option(help: "Log lines as text or json (one JSON object per line, for a log collector).")
        var logFormat = "text"
        @Option(help: "Register new vaults only with the code in this file (created with a random code when missing).")
        var registrationCodeFile: String?
        @Option(help: "Seconds after which a connection on which nothing arrives is closed.") var idleTimeout = 30
        @Option(help: "The most connections one client address may hold open at once.")
        var maxConnectionsPerAddress = RelayServer.defaultMaxConnectionsPerAddress
        @Option(
            help:
                "What one vault may store (500M, 20G): this much of records and, apart, of attachments; more is answered 507."
        )
        var quota: String?

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("The port must be between 0 and 65535.") }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("Unknown log level \(logLevel).")
            }
            guard ["text", "json"].contains(logFormat) else {
                throw ValidationError("--log-format takes text or json, not \"\(logFormat)\".")
            }
            guard database == nil || data == nil else {
                throw ValidationError("Give --data or --database, not both.")
            }
            guard databasePasswordFile == nil || database != nil else {
                throw ValidationError("--database-password-file goes with --database.")
            }
            guard maxVaults > 0 else { throw ValidationError("--max-vaults must be positive.") }
            guard (1...3600).contains(idleTimeout) else {
                throw ValidationError("--idle-timeout must be between 1 and 3600 seconds.")
            }
            guard (1...100_000).contains(maxConnectionsPerAddress) else {
                throw ValidationError("--max-connections-per-address must be between 1 and 100000.")
            }
        }

        /// `--quota` in bytes (checked in ``run()``).
        var quotaBytes: UInt64? { quota.flatMap(Size.parse) }

        func run() async throws {
            if let quota, Size.parse(quota) == nil {
                throw CLIError(
                    .usage, "--quota takes a size in binary units such as 500M or 20G (or 20GiB), not \"\(quota)\".")
            }
            if quotaBytes == 0 {
                throw CLIError(
                    .usage,
                    "--quota 0 would refuse every record and attachment; give a size such as 20G, or leave --quota out."
                )
            }
            let directory: URL
            if let data {
                directory = URL(fileURLWithPath: data)
            } else if let env = ProcessInfo.processInfo.environment["AMANAT_RELAY_DATA"], !env.isEmpty {
                directory = URL(fileURLWithPath: env)
            } else {
                directory = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".amanat-relay")
            }
            let level = Logger.Level(rawValue: logLevel) ?? .info
            let json = logFormat == "json"
            LoggingSystem.bootstrap { label in
                guard !json else { return JSONLogHandler(label: label, level: level) }
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "amanat.relay")
            // What the relay says to its operator, whatever --log-level: a plain line, or with --log-format json an
            // event like the others, so that every line a collector reads is JSON.
            let say: @Sendable (String, Logger.Level) -> Void = { text, level in
                guard json else { return note(text) }
                JSONLogHandler.write(level: level, label: logger.label, message: text)
            }
            do {
                let code = try registrationCodeFile.map { try Self.registrationCode(file: $0) { say($0, .notice) } }
                if code == nil && !["127.0.0.1", "::1", "localhost"].contains(host) {
                    say(
                        "Warning: without --registration-code-file, anyone who can reach this relay can register vaults and fill it.",
                        .warning
                    )
                }
                let storage = try await openStorage(directory: directory, logger: logger)
                var relay = RelayServer(storage: storage, logger: logger, registrationCode: code)
                relay.idleTimeout = .seconds(idleTimeout)
                relay.maxConnectionsPerAddress = maxConnectionsPerAddress
                relay.quota = quotaBytes
                let shownHost = host.contains(":") ? "[\(host)]" : host
                let started = Started()
                do {
                    try await relay.serve(host: host, port: port) { bound in
                        started.mark()
                        say(
                            "Relay listening on http://\(shownHost):\(bound) (\(storage.summary)); stop it with Ctrl-C.",
                            .notice)
                    }
                } catch {
                    await storage.close()
                    if !started.value {
                        // The system's reason, by its errno: a port in use, an address not on this machine, a port
                        // below 1024 without the right to it.
                        let code = (error as? IOError)?.errnoCode
                        let reason =
                            switch code {
                            case EADDRINUSE: "another program is using that port"
                            case EADDRNOTAVAIL:
                                "\(host) is not an address of this machine (try 0.0.0.0 for all of them)"
                            case EACCES, EPERM: "this user may not use port \(port) (ports below 1024 need privileges)"
                            default: "\(error)"
                            }
                        throw CLIError(.io, "Could not listen on \(shownHost):\(port): \(reason).")
                    }
                    throw error
                }
                await storage.close()
                say("Relay stopped.", .notice)
            } catch {
                // With --log-format json the failure is an event too, so the collector's last line is JSON: the same
                // one sentence and exit status, said once.
                guard json else { throw error }
                let (status, message) = describe(error)
                JSONLogHandler.write(
                    level: .critical, label: logger.label, message: message, metadata: ["exit": "\(status.rawValue)"])
                throw ExitCode(status.rawValue)
            }
        }

        /// The storage: the PostgreSQL database of --database, else SQLite files in `directory`.
        func openStorage(directory: URL, logger: Logger) async throws -> any RelayStorage {
            guard let database else { return try SQLiteRelayStorage(directory: directory, maxVaults: maxVaults) }
            var password = ProcessInfo.processInfo.environment["AMANAT_DATABASE_PASSWORD"]
            if let file = databasePasswordFile {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw CLIError(.noInput, "The database password file \(file) cannot be read.")
                }
                password =
                    String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init)
                    ?? ""
            }
            let location: PostgresLocation
            do {
                location = try PostgresLocation(url: database, password: password)
            } catch let error as RelayStoreError {
                throw CLIError(.usage, error.message)
            }
            do {
                return try await PostgresRelayStorage.connect(location, maxVaults: maxVaults, logger: logger)
            } catch let error as RelayStoreError {
                throw CLIError(.damaged, error.message)
            } catch let error as StoreError where error.message.contains(location.display) {
                throw CLIError(.unavailable, error.message)  // the server's own reason, or how long it waited
            } catch {
                throw CLIError(
                    .unavailable,
                    "Could not use the database \(location.display): check that PostgreSQL runs there, the user and password, and the relay's log."
                )
            }
        }

        /// The registration code in `file`; when the file does not exist, a new random code written to it (mode 0600,
        /// never overwriting), and its path (not the code) said on stderr.
        static func registrationCode(file: String, say: (String) -> Void = { note($0) }) throws -> String {
            let descriptor = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                let code = RelayStore.newRegistrationCode()
                let bytes = Array((code + "\n").utf8)
                let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                let synced = fsync(descriptor) == 0
                close(descriptor)
                guard written == bytes.count, synced else {
                    unlink(file)
                    throw CLIError(.io, "Could not write the registration code to \(file).")
                }
                // The file only: stderr often ends in a journal kept longer and read more widely than a 0600 file.
                say(
                    "New registration code written to \(file) (readable by this user only); a team's first sync must present it."
                )
                return code
            }
            guard errno == EEXIST else { throw CLIError(.io, "Could not create the registration code file \(file).") }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError(.noInput, "The registration code file \(file) cannot be read.")
            }
            let code =
                String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            guard RelayWire.canonicalRegistrationCode(code).count >= 8 else {
                throw CLIError(.usage, "The registration code file \(file) must hold a code of at least 8 characters.")
            }
            return code
        }
    }
}

/// Whether the relay reached the point of accepting connections.
private final class Started: @unchecked Sendable {
    // @unchecked Sendable: the flag is guarded by the lock.
    private let lock = NSLock()
    private var flag = false

    func mark() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}
