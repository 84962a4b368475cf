import ArgumentParser

/// `amanat verify`: checks every signature, chain, ciphertext, seal and the projection.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the whole vault: SQLite integrity, every chain and signature, every seal, the projection.",
        discussion: """
            Exits 0 when all is well; 65 with one line per problem otherwise.

            Example:
              amanat verify
            """)

    @OptionGroup var options: VaultOptions

    func run() throws {
        try runReportingErrors {
            let report = try options.open().verify()
            if report.problems.isEmpty {
                print(
                    "ok: \(report.envelopes) changes from \(report.devices) devices, \(report.records) records, \(report.seals) seals verified"
                )
                return
            }
            for problem in report.problems { note("amanat: \(problem)") }
            throw ExitCode(CLIError.Status.damaged.rawValue)
        }
    }
}
