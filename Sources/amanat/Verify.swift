import AmanatCore
import AmanatStore
import ArgumentParser

extension Amanat {
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
        @Flag(help: "Print the report as JSON, also when the vault does not verify (exit status 65).") var json = false

        func run() throws {
            let vault = try options.open()
            let report = try vault.verify()
            if json { try JSONOutput.print(VerifyJSON(report)) }
            for held in report.heldBack {
                note(
                    "held back: \(held.changes) change\(held.changes == 1 ? "" : "s") of \(TerminalText.escape(vault.deviceLabel(held.device))) (\(held.reason.rawValue)), kept as evidence and not applied"
                )
            }
            if report.unreadable > 0 {
                note(
                    "\(report.unreadable) change\(report.unreadable == 1 ? " is" : "s are") sealed with a vault key this device was not given (this device was revoked)."
                )
            }
            if report.problems.isEmpty {
                if json { return }
                print(
                    "ok: \(report.envelopes) changes from \(report.devices) devices, \(report.records) records, \(report.seals) seals verified"
                )
                return
            }
            for problem in report.problems { note("amanat: \(TerminalText.escape(problem))") }
            throw ExitCode(CLIError.Status.damaged.rawValue)
        }
    }
}
