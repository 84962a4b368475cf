import AmanatHTTP
import AmanatStore
import AmanatSync
import ArgumentParser
import Foundation

/// `amanat sync`: two-way sync with a sync file (for example on a USB stick).
struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sync with a sync file (for example on a USB stick) or a relay: pull what this vault lacks, push what it lacks.",
        discussion: """
            The sync file is created when missing. It holds only signed ciphertext, so anyone can carry it. Every
            change pulled is verified (vault, chain, signature, decryption) before it is applied; a fork (a device
            that signed two different changes with one number) is refused and reported. A read-only file is pulled
            from only. Interrupting a sync is safe: run it again to finish.

            A target starting with http:// or https:// is a relay (`amanat serve`): the sync goes over the network,
            signed with a key derived from the vault key, and resumes after a dropped connection.

            Example:
              amanat sync /media/usb/team.amanat-sync
              amanat sync http://192.168.1.20:8080
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "A sync file path, or a relay URL (http://host:port).") var target: String

    func run() async throws {
        try await runReportingErrors {
            let vault = try options.open()
            if target.hasPrefix("http://") || target.hasPrefix("https://") {
                let report = try await HTTPCarrier.with(url: target, vaultID: vault.vaultID, key: vault.relaySigningKey) {
                    try await ExchangeSession(vault: vault, carrier: $0).run(push: true, progress: showProgress)
                }
                summarize(report, with: target)
                return
            }
            let url = URL(fileURLWithPath: target)
            let carrier = try FileCarrier(url: url, vaultID: vault.vaultID, create: true)
            let report = try await SyncSession(vault: vault, carrier: carrier).run(push: true, progress: showProgress)
            summarize(report, with: target)
        }
    }
}

/// `amanat import`: pull one way from a sync file.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull the changes of a sync file into this vault, without writing to the file.",
        discussion: """
            Example:
              amanat import /media/usb/team.amanat-sync
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "A sync file path.") var file: String

    func run() async throws {
        try await runReportingErrors {
            let vault = try options.open()
            let url = URL(fileURLWithPath: file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw CLIError(.noInput, "There is no file at \(file).")
            }
            let carrier = try FileCarrier(url: url, vaultID: vault.vaultID, create: false)
            let report = try await SyncSession(vault: vault, carrier: carrier).run(push: false, progress: showProgress)
            summarize(report, with: file)
        }
    }
}

/// Prints progress on stderr for syncs of more than one batch.
func showProgress(_ p: SyncProgress) {
    guard p.total > 1000 else { return }
    note("\(p.phase == .pull ? "pulled" : "pushed") \(p.done)/\(p.total) changes")
}

/// One line on stderr saying what a sync did, and a warning line per fork; stdout stays empty.
func summarize(_ report: SyncReport, with target: String) {
    var line = "Synced with \(target): \(report.pulled) change\(report.pulled == 1 ? "" : "s") pulled"
    line += report.pullOnly ? " (the file is read-only: nothing pushed)." : ", \(report.pushed) pushed."
    note(line)
    for fork in report.forks {
        note("WARNING: device \(fork.device.hex.prefix(12)) signed two different changes numbered \(fork.seq); the second was refused. `amanat status` lists forks.")
    }
}
