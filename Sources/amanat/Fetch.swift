import AmanatCore
import AmanatHTTP
import AmanatStore
import AmanatSync
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat fetch`: brings the missing chunks of one record's attachments from a sync file or relay.
    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring the missing attachment chunks of one record from a sync file or relay.",
            discussion: """
                For attachments left out by `sync --no-attachments` or `--max-attachment-size`, or not complete on the \
                carrier yet. Only missing chunks travel; each is checked before it is stored. Says what is still \
                missing afterwards, and exits with status 66 when the carrier could not give every missing chunk.

                Example:
                  amanat fetch 3f9a1c /media/usb/team.amanat-sync
                  amanat fetch 3f9a1c http://192.168.1.20:8080
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Argument(help: "A sync file path, or a relay URL (http://host:port).") var target: String

        func run() async throws {
            let lower = target.lowercased()
            let isRelay = lower.hasPrefix("http://") || lower.hasPrefix("https://")
            var isDirectory: ObjCBool = false
            if !isRelay {
                guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) else {
                    throw CLIError(.noInput, "There is no sync file at \(target); nothing was fetched.")
                }
                guard !isDirectory.boolValue else {
                    throw CLIError(.usage, "\(target) is a folder; give the sync file inside it.")
                }
            }
            let vault = try options.open()
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let chunkOptions = ChunkSyncOptions(records: [state.id], push: false)
            let report: ChunkSyncReport
            if isRelay {
                report = try await HTTPCarrier.with(
                    url: target, vaultID: vault.vaultID, key: vault.relaySigningKey, device: vault.keyring.device,
                    options: HTTPCarrier.Options()
                ) { try await ChunkSync(vault: vault, carrier: $0, options: chunkOptions).run() }
            } else {
                let carrier = try FileCarrier(
                    url: URL(fileURLWithPath: target), vaultID: vault.vaultID, create: false, readOnly: true)
                report = try await ChunkSync(vault: vault, carrier: carrier, options: chunkOptions).run()
            }
            summarizeChunks(report, with: target, pulledOnly: true)
            // A fetch that could not complete the media is not a success a script should take for one.
            if report.missingChunks > 0 {
                throw CLIError(
                    .noInput,
                    "Record \(state.id.hex.prefix(12)) still lacks \(report.missingChunks) attachment chunk\(report.missingChunks == 1 ? "" : "s") (\(Size.text(report.missingBytes))) that \(target) could not give; fetch \(report.missingChunks == 1 ? "it" : "them") from a stick or relay that holds \(report.missingChunks == 1 ? "it" : "them")."
                )
            }
        }
    }
}

/// Parses `--max-attachment-size` before anything is opened.
func attachmentLimit(_ text: String?) throws -> UInt64? {
    guard let text else { return nil }
    guard let size = Size.parse(text) else {
        throw CLIError(.usage, "--max-attachment-size takes a size such as 500k, 20M or 2G, not \"\(text)\".")
    }
    return size
}

/// One line on stderr saying what a chunk sync moved and what is still missing; throws exit 74 when the carrier
/// filled up, after saying how much could not be written.
func summarizeChunks(_ report: ChunkSyncReport, with target: String, pulledOnly: Bool = false) {
    guard report.chunks > 0 || report.skippedAttachments > 0 else { return }
    var line =
        "Attachments: \(report.pulled) chunk\(report.pulled == 1 ? "" : "s") pulled (\(Size.text(report.pulledBytes)))"
    if !pulledOnly { line += ", \(report.pushed) pushed (\(Size.text(report.pushedBytes)))" }
    if report.missingChunks == 0 {
        line +=
            report.skippedIncomplete > 0
            ? "; every attachment within --max-attachment-size is complete here."
            : "; every attachment is complete here."
    } else {
        line +=
            "; \(report.incompleteAttachments) attachment\(report.incompleteAttachments == 1 ? " is" : "s are") still incomplete here (\(report.missingChunks) chunk\(report.missingChunks == 1 ? "" : "s"), \(Size.text(report.missingBytes)) missing)."
    }
    if report.skippedAttachments > 0 {
        line +=
            " \(report.skippedAttachments) attachment\(report.skippedAttachments == 1 ? " was" : "s were") over --max-attachment-size and left for `amanat fetch`"
            + (report.skippedIncomplete > 0 ? " (\(report.skippedIncomplete) not complete here)." : ".")
    }
    note(line)
    if report.damaged > 0 {
        note(
            "WARNING: \(report.damaged) attachment chunk\(report.damaged == 1 ? "" : "s") stored here did not authenticate (damaged on this disk) and \(report.damaged == 1 ? "was" : "were") not sent; \(report.damaged == 1 ? "it is" : "they are") set aside and counted as missing, so a sync or `amanat fetch` with a carrier that holds \(report.damaged == 1 ? "it" : "them") brings a good copy. Run `amanat verify`."
        )
    }
    if report.refused > 0 {
        note(
            "WARNING: \(report.refused) chunk\(report.refused == 1 ? "" : "s") offered by \(target) did not open as the chunk \(report.refused == 1 ? "its" : "their") address names (altered or swapped); not stored."
                + (report.discardedOnCarrier == 0
                    ? ""
                    : " \(report.discardedOnCarrier == report.refused ? (report.refused == 1 ? "It was" : "They were") : "\(report.discardedOnCarrier) of them were") damaged and set aside on \(target), so a device holding a good copy sends it again at its next sync with it.")
        )
    }
}

/// After a sync with `--no-attachments`: one line saying how many attachments are not complete here, if any, so
/// that a text-only sync is never taken for one that brought the media too.
func summarizeSkippedChunks(_ vault: Vault) throws {
    guard let counts = try vault.attachmentSummary(), counts.partial + counts.missing > 0 else { return }
    let incomplete = counts.partial + counts.missing
    note(
        "Attachments were not synced (--no-attachments): \(incomplete) of \(counts.total) attachment\(counts.total == 1 ? " is" : "s are") not complete here (\(Size.text(counts.missingBytes)) missing); a sync without --no-attachments or `amanat fetch ID TARGET` brings \(incomplete == 1 ? "it" : "them")."
    )
}

/// The error for a carrier that filled up during a chunk push.
func carrierFullError(_ report: ChunkSyncReport, target: String) -> CLIError? {
    guard let full = report.carrierFull else { return nil }
    let reason = report.fullReason.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 } ?? "\(target) is full"
    return CLIError(
        .io,
        "\(reason): \(full.chunks) attachment chunk\(full.chunks == 1 ? "" : "s") (\(Size.text(full.bytes))) could not be written; every complete chunk and all the text got there. Make room for \(Size.text(full.bytes)) and sync again to send the rest."
    )
}
