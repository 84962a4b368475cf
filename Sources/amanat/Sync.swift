import AmanatCore
import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatStore
import AmanatSync
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat sync`: two-way sync with a sync file (for example on a USB stick).
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Sync with a sync file (for example on a USB stick) or a relay: pull what this vault lacks, push what it lacks.",
            discussion: """
                A new sync file is created only with --create (or after a yes at the terminal when the folder holds no other \
                sync file): a mistyped path never becomes a new file. It holds only signed ciphertext, so anyone can carry it. Every \
                change pulled is verified (vault, chain, signature, decryption) before it is applied; a fork (a device \
                that signed two different changes with one number) is refused and reported. A read-only file is pulled \
                from only. Interrupting a sync is safe: run it again to finish.

                A target starting with http:// or https:// is a relay (`amanat serve`): the sync goes over the network, \
                signed with a key derived from the vault key, and resumes after a dropped connection. A relay started \
                with a registration code takes a new vault only when its first sync presents that code (--registration-code, \
                else $AMANAT_REGISTRATION_CODE); without it that sync exits 77.

                Several relay URLs name relays that share one database (`amanat serve --database`): the sync uses the \
                first, and when a relay cannot be reached it goes on through the next, without losing or repeating \
                anything. The line it prints names the relay that finished the sync.

                Example:
                  amanat sync /media/usb/team.amanat-sync --create
                  (--create: the first time)
                  amanat sync /media/usb/team.amanat-sync
                  amanat sync http://192.168.1.20:8080 \\
                    --registration-code ABCD-EFGH-IJKL-MNOP-QRST-UVWX
                  amanat sync https://relay1.example.org \\
                    https://relay2.example.org
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "A sync file path, or relay URLs (http://host:port) of relays sharing one database.")
        var targets: [String] = []

        /// The first target (a file, or the first relay).
        var target: String { targets.first ?? "" }

        func validate() throws {
            guard !targets.isEmpty else { throw ValidationError("Missing a sync file or a relay URL to sync with.") }
        }
        @Option(help: "The relay's registration code, needed by the first sync of a vault with a relay that has one.")
        var registrationCode: String?
        @Flag(
            help: "Create the sync file if it does not exist yet (never done silently: a typo would make a new file).")
        var create = false
        @Flag(help: "Print what arrived as JSON on stdout.") var json = false
        @Flag(help: "Sync only the text; attachments wait for a later sync or `amanat fetch`.") var noAttachments =
            false
        @Option(help: "Leave attachments larger than SIZE (500k, 20M, 2G) for a later `amanat fetch`.")
        var maxAttachmentSize: String?

        func run() async throws {
            let limit = try attachmentLimit(maxAttachmentSize)
            let chunkOptions = ChunkSyncOptions(maximumAttachmentSize: limit)
            // The target first: a mistyped target is the target's fault, never the vault's.
            if targets.count > 1 {
                // Several targets are relays over one database; a sync file never goes with another target.
                for other in targets {
                    let lower = other.lowercased()
                    guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                        throw CLIError(
                            .usage,
                            "Only relay URLs can be given together (relays that share one database); sync with one sync file at a time."
                        )
                    }
                }
            }
            let resolved = try SyncTarget.resolve(target, create: create, confirm: askOnTerminal)
            let vault = try options.open()
            let before = try Arrivals.snapshot(vault)
            if case .relay = resolved {
                var http = HTTPCarrier.Options()
                http.registrationCode =
                    registrationCode ?? ProcessInfo.processInfo.environment["AMANAT_REGISTRATION_CODE"]
                http.onRetry = sayRetry
                let progress = ProgressLine.Sync()
                let (report, chunks, target) = try await FailoverCarrier.with(
                    urls: targets, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
                    options: http
                ) { carrier in
                    let text: SyncReport
                    do {
                        defer { progress.line.finish() }
                        text = try await ExchangeSession(vault: vault, carrier: carrier).run(
                            push: true, progress: progress.update)
                    }
                    // Text first, then the media: only the chunks the other side lacks travel.
                    let chunks =
                        noAttachments
                        ? nil : try await ChunkSync(vault: vault, carrier: carrier, options: chunkOptions).run()
                    for (from, to) in carrier.failovers {
                        note(
                            "The relay at \(from) could not be reached or stopped answering; the sync went on through \(to)."
                        )
                    }
                    // After a failover, what moved may have gone through more than one relay: the summary names
                    // every relay that served part of this sync.
                    let served = carrier.served
                    return (text, chunks, (served.isEmpty ? [carrier.name] : served).joined(separator: " and "))
                }
                summarize(report, with: target, vault: vault)
                if let chunks { summarizeChunks(chunks, with: target) } else { try summarizeSkippedChunks(vault) }
                try Arrivals(
                    before: before, after: try Arrivals.snapshot(vault), vault: vault, pulled: report.pulled,
                    pushed: report.pushed
                ).with(report, target: target, vault: vault).report(json: json)
                if let full = recordsFullError(report) {
                    if let unsent = chunks?.carrierFull {
                        note(
                            "WARNING: \(unsent.chunks) attachment chunk\(unsent.chunks == 1 ? "" : "s") (\(Size.text(unsent.bytes))) did not fit on \(target) either; they go at a later sync."
                        )
                    }
                    throw full
                }
                if let chunks, let full = carrierFullError(chunks, target: target) { throw full }
                return
            }
            let url = URL(fileURLWithPath: target)
            let carrier = try FileCarrier(url: url, vaultID: vault.vaultID, create: resolved == .newFile(url))
            if resolved == .newFile(url) { note("Created the sync file \(url.path).") }
            let progress = ProgressLine.Sync()
            defer { progress.line.finish() }
            let report = try await SyncSession(vault: vault, carrier: carrier).run(
                push: true, progress: progress.update)
            progress.line.finish()
            summarize(report, with: target, vault: vault)
            var chunks: ChunkSyncReport?
            if !noAttachments {
                var options = chunkOptions
                options.push = carrier.canWrite
                chunks = try await ChunkSync(vault: vault, carrier: carrier, options: options).run()
            }
            if let chunks {
                summarizeChunks(chunks, with: target, pulledOnly: !carrier.canWrite)
            } else {
                try summarizeSkippedChunks(vault)
            }
            try Arrivals(
                before: before, after: try Arrivals.snapshot(vault), vault: vault, pulled: report.pulled,
                pushed: report.pullOnly ? nil : report.pushed
            ).with(report, target: target, vault: vault).report(json: json)
            if let chunks, let full = carrierFullError(chunks, target: target) { throw full }
        }
    }
}

extension Amanat {
    /// `amanat import`: pull one way from a sync file, or bring in the records of an evidence bundle.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull a sync file's changes without writing to it, or import a verified evidence bundle.",
            discussion: """
                A sync file of this vault is pulled one way. An evidence bundle (an age file made by `amanat export`, \
                possibly of another vault) is decrypted with --identity or --passphrase, verified in full, and its \
                records are added to this vault as new records whose `provenance` field names the source vault, record, \
                devices and times. Only a bundle that verifies with every signer proven a member of its vault is \
                imported (a format-1 or unproven bundle is refused, exit 3; an altered one, exit 65). Importing the same \
                bundle twice adds nothing the second time.

                Example:
                  amanat import /media/usb/team.amanat-sync
                  amanat import evidence.age --identity my-age-key.txt
                """)

        @OptionGroup var options: VaultOptions
        @OptionGroup var key: BundleKeyOptions
        @Option(help: "For a bundle: the vault fingerprint you expect (from the team's `amanat status`).")
        var expectVault: String?
        @Argument(help: "A sync file or an evidence bundle.") var file: String
        @Flag(help: "Print what arrived as JSON on stdout.") var json = false

        func run() async throws {
            let url = URL(fileURLWithPath: file)
            // The same checks as a sync's target (a folder, a device, a missing or unreadable file), never creating.
            if !FileManager.default.fileExists(atPath: url.path) {
                throw CLIError(.noInput, "There is no file at \(url.path); nothing was imported.")
            }
            _ = try SyncTarget.resolve(file, create: false, confirm: nil)
            guard let handle = FileHandle(forReadingAtPath: url.path) else {
                throw CLIError(.io, "\(url.path) cannot be read (\(String(cString: strerror(errno)))).")
            }
            let head = String(decoding: (try? handle.read(upToCount: 40)) ?? Data(), as: UTF8.self)
            try? handle.close()
            if head.hasPrefix("age-encryption.org/") || head.hasPrefix("-----BEGIN AGE ENCRYPTED FILE-----") {
                try importBundle()
                return
            }
            let vault = try options.open()
            let before = try Arrivals.snapshot(vault)
            let carrier = try FileCarrier(url: url, vaultID: vault.vaultID, create: false, readOnly: true)
            let progress = ProgressLine.Sync()
            defer { progress.line.finish() }
            let report = try await SyncSession(vault: vault, carrier: carrier).run(
                push: false, progress: progress.update)
            progress.line.finish()
            summarize(report, with: file, vault: vault)
            let chunks = try await ChunkSync(vault: vault, carrier: carrier, options: ChunkSyncOptions(push: false))
                .run()
            summarizeChunks(chunks, with: file, pulledOnly: true)
            try Arrivals(
                before: before, after: try Arrivals.snapshot(vault), vault: vault, pulled: report.pulled, pushed: nil
            ).with(report, target: file, vault: vault).report(json: json)
        }

        func importBundle() throws {
            let expected = try expectedVault(expectVault)
            var opened: Vault?
            sharedProgress.update("Decrypting and verifying the bundle…")
            defer { sharedProgress.finish() }
            let archive = try key.decryptArchive(file) {
                opened = try options.openIfPresent()
                return opened
            }
            let report = BundleVerifier.verify(archive, expectVault: expected)
            switch report.outcome {
            case .damaged:
                for problem in report.problems { note("amanat: \(problem)") }
                throw CLIError(.damaged, "The bundle does not verify; nothing was imported.")
            case .unproven:
                for reason in report.unproven { note("NOT PROVEN: \(reason)") }
                throw CLIError(
                    .unproven,
                    "The bundle does not prove who signed it; nothing was imported (`amanat bundle verify` says more).")
            case .verified:
                break
            }
            let vault = try opened ?? options.open()
            let before = try Arrivals.snapshot(vault)
            let summary = try BundleImporter.importRecords(
                of: report, into: vault, kinds: Set(RecordSchema.fields.keys))
            defer {
                if let after = try? Arrivals.snapshot(vault) {
                    var arrivals = Arrivals(before: before, after: after, vault: vault, pulled: 0, pushed: nil)
                    arrivals.target = file
                    arrivals.bundle = ImportedBundleJSON(
                        added: summary.added, extended: summary.extended, unchanged: summary.unchanged,
                        skipped: summary.skipped)
                    try? arrivals.report(json: json)
                }
            }
            var line = "Verified the bundle and imported \(summary.added) record\(summary.added == 1 ? "" : "s")"
            line += " with their original signed changes"
            if summary.extended > 0 {
                line += "; kept the newly disclosed original changes of \(summary.extended) record"
                line += "\(summary.extended == 1 ? "" : "s") imported before (their fields are not overwritten)"
            }
            if summary.unchanged > 0 { line += "; \(summary.unchanged) already imported" }
            if summary.skipped > 0 {
                line += "; \(summary.skipped) deleted, purged or of an unknown kind, left out"
            }
            note(line + ".")
        }
    }
}

/// Says, on a terminal, that the relay did not answer and when the next attempt is.
@Sendable func sayRetry(_ reason: String, _ delay: Duration) {
    let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
    sharedProgress.say(
        "Relay not answering (\(TerminalText.escape(reason))), retrying in \(String(format: seconds < 1 ? "%.2g" : "%.0f", seconds)) s…"
    )
}

/// The sync's failure when the carrier had no room for this vault's records (a relay's `--quota`): exit 74, after
/// everything else the sync did was said.
func recordsFullError(_ report: SyncReport) -> CLIError? {
    guard var reason = report.carrierFullReason else { return nil }
    if reason.hasSuffix(".") { reason.removeLast() }
    let n = report.unpushed
    return CLIError(
        .io,
        "\(TerminalText.escape(reason)): \(n) change\(n == 1 ? " was" : "s were") not sent (kept in this vault, for the next sync), and the pull went on."
    )
}

/// One line on stderr saying what a sync did, and a warning line per fork or membership matter; stdout stays empty.
func summarize(_ report: SyncReport, with target: String, vault: Vault) {
    var line = "Synced with \(target): \(report.pulled) change\(report.pulled == 1 ? "" : "s") pulled"
    line += report.pullOnly ? " (the file or its folder is read-only: nothing pushed)." : ", \(report.pushed) pushed."
    note(line)
    for fork in report.forks {
        if fork.device == vault.deviceID {
            note(
                "WARNING: this laptop's own device identity has forked: another copy of this vault (a backup that was restored, or a cloned disk) wrote a different change \(fork.seq) as this device, so this laptop's new work cannot be passed on. Nothing here is lost: run `amanat recover` to continue as a new device identity, then sync again."
            )
        } else {
            note(
                "WARNING: device \(TerminalText.escape(vault.deviceLabel(fork.device))) signed two different changes numbered \(fork.seq); the second was refused. `amanat status` lists forks."
            )
        }
    }
    if report.restored > 0 {
        note(
            "Put back the content of \(report.restored) change\(report.restored == 1 ? "" : "s") that had arrived without it (no purge names them)."
        )
    }
    if let problem = report.putBackProblem {
        var reason = problem
        if reason.hasSuffix(".") { reason.removeLast() }
        note(
            "WARNING: the content of changes \(target) holds without it was not put back (\(TerminalText.escape(reason))); the sync itself went through, and the next one tries again."
        )
    }
    if report.restoredOnCarrier > 0 {
        note(
            "Put back on \(target) the content of \(report.restoredOnCarrier) change\(report.restoredOnCarrier == 1 ? "" : "s") it held without it."
        )
    }
    if report.withoutContent > 0 {
        note(
            "WARNING: \(report.withoutContent) change\(report.withoutContent == 1 ? "" : "s") arrived without content and no purge known here names \(report.withoutContent == 1 ? "it" : "them"); a later sync with a device that has the content puts it back (`amanat verify` counts them)."
        )
    }
    if report.keptApart > 0 {
        note(
            "WARNING: \(report.keptApart) change\(report.keptApart == 1 ? " was" : "s were") written by devices that are not members of this vault; kept apart as evidence, not applied. `amanat status` says from whom."
        )
    }
    if let reuse = vault.membership.reusedInvitations.first(where: { $0.refused == vault.deviceID }) {
        note(
            "WARNING: this device was not admitted: its invitation had already admitted \(TerminalText.escape(vault.deviceLabel(reuse.admitted))). Ask a coordinator for a new invitation; what you wrote is kept."
        )
    }
    let coordinator = vault.membership.members[vault.deviceID]?.currentRole == .coordinator
    for reuse in vault.membership.reusedInvitations where coordinator && report.pulled + report.keptApart > 0 {
        note(
            "WARNING: device \(reuse.refused.hex.prefix(12)) tried to join with an invitation already used by \(TerminalText.escape(vault.deviceLabel(reuse.admitted))); it was not admitted."
        )
    }
}

/// Asks a yes/no question on the terminal (stderr for the question, stdin for the answer); nil without a terminal.
var askOnTerminal: (@Sendable (String) -> Bool)? {
    guard isatty(STDIN_FILENO) == 1, isatty(STDERR_FILENO) == 1 else { return nil }
    return { question in
        try? FileHandle.standardError.write(contentsOf: Data(question.utf8))
        guard let answer = readLine() else { return false }
        return ["y", "yes"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased())
    }
}
