import AmanatCore
import AmanatStore
import ArgumentParser

extension Amanat {
    /// `amanat verify`: checks every signature, chain, ciphertext, seal and the projection.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole vault: SQLite integrity, every chain and signature, every seal, the projection.",
            discussion: """
                Exits 0 when all is well; 65 with one line per problem otherwise. An attachment chunk that is damaged \
                on this disk is set aside: it then counts as missing, and the next sync or fetch with a stick or \
                relay holding a good copy brings it back.

                Example:
                  amanat verify
                """)

        @OptionGroup var options: VaultOptions
        @Flag(help: "Print the report as JSON, also when the vault does not verify (exit status 65).") var json = false

        func run() throws {
            let vault = try options.open()
            let report = try vault.verify(settingAsideDamagedChunks: true)
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
            if report.purged > 0 {
                note(
                    "purged: \(report.purged) change\(report.purged == 1 ? "" : "s") whose content a coordinator destroyed; their signatures and chains verified (`amanat history ID` says why)"
                )
            }
            if report.withoutContent > 0 {
                note(
                    "WARNING: \(report.withoutContent) change\(report.withoutContent == 1 ? "" : "s") arrived without content and no purge known here names \(report.withoutContent == 1 ? "it" : "them") (a purge not received yet, or a carrier that stripped them); syncing with a device that has the content puts it back."
                )
            }
            if report.setAsideChunks > 0 {
                note(
                    "set aside: \(report.setAsideChunks) damaged attachment chunk\(report.setAsideChunks == 1 ? "" : "s") (ciphertext, kept beside the chunks as *.damaged* for inspection; purge destroys them with their record)"
                )
            }
            var incomplete: [String: (record: String, missing: Int, total: Int)] = [:]
            for chunk in report.missingChunks {
                incomplete[chunk.attachment, default: (chunk.record.hex, 0, chunk.total)].missing += 1
            }
            for (attachment, item) in incomplete.sorted(by: { $0.key < $1.key }) {
                note(
                    "incomplete: attachment \(attachment.prefix(12)) of record \(item.record.prefix(12)) is missing \(item.missing) of \(item.total) chunks here (`amanat fetch \(item.record.prefix(12)) TARGET` brings them)"
                )
            }
            if report.problems.isEmpty {
                if json { return }
                let attachments = report.attachments > 0 ? ", \(report.attachments) attachments" : ""
                print(
                    "ok: \(report.envelopes) changes from \(report.devices) devices, \(report.records) records, \(report.seals) seals\(attachments) verified"
                )
                return
            }
            for problem in report.problems { note("amanat: \(TerminalText.escape(problem))") }
            throw ExitCode(CLIError.Status.damaged.rawValue)
        }
    }
}
