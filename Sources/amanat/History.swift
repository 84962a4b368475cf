import AmanatBundle
import AmanatCore
import AmanatCrypto
import ArgumentParser
import Foundation

/// `amanat history`: every change to one record, oldest first.
struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every change ever made to a record, with its device and time.",
        discussion: """
            A testimony's sealing change is marked as the original; changes after it are amendments.

            Example:
              amanat history 3f9a1c
            """)

    @OptionGroup var options: VaultOptions
    @Argument(help: "The record id or a unique prefix of it.") var id: String

    func run() throws {
        try runReportingErrors {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let now = vault.wallClock()
            let changes = try vault.history(of: state)
            if let origin = state.origin {
                let importing = changes.first { $0.change.author == origin.op.device && $0.change.seq == origin.op.seq }
                printCustody(origin, state: state, importing: importing?.change.change, now: now)
            }
            for (envelope, authored) in changes {
                let change = authored.change
                let imported = state.origin?.op.device == authored.author && state.origin?.op.seq == authored.seq
                let label =
                    imported
                    ? "  (import)"
                    : state.label(forChangeBy: authored.author, seq: authored.seq, at: change.timestamp)
                        .map { "  (\($0))" } ?? ""
                print(
                    TerminalText.escape(
                        "\(Self.time(change.timestamp, now: now))  device \(vault.deviceLabel(authored.author))  change \(authored.seq)  envelope \(Hex.encode(envelope.hash).prefix(12))\(label)"
                    )
                )
                if let warning = Self.futureWarning(change.timestamp, now: now) {
                    print("    " + warning)
                }
                var kept = 0
                for (index, op) in change.operations.enumerated() {
                    if case .custody = op {
                        kept += 1
                        continue
                    }
                    print("    " + TerminalText.escape(describe(op, id: authored.opID(index))))
                }
                if kept > 0 { print("    kept \(kept) original signed envelope\(kept == 1 ? "" : "s") (shown above)") }
            }
        }
    }

    /// An imported record's original changes, verified from the envelopes kept with it, before its own history.
    func printCustody(_ origin: OriginInfo, state: RecordState, importing: Change?, now: UInt64) {
        let custody = CustodyReport(origin: origin, items: state.custody)
        // What the import itself claims (kind, values, tags) must come from the kept originals too.
        let problems = custody.problems + (importing.map { custody.problems(ofImport: $0) } ?? [])
        let verdict =
            problems.isEmpty
            ? "every signature, key and seal verified, every signer proven a member"
            : "NOT VERIFIED: " + problems.joined(separator: " ")
        print(
            TerminalText.escape(
                "Original record \(origin.record.hex) of vault \(VaultFingerprint.of(origin.vault)), \(custody.changes.count) signed change\(custody.changes.count == 1 ? "" : "s") kept with it: \(verdict)"
            ))
        for original in custody.changes {
            let authored = original.authored
            let role = custody.role(of: authored.author, at: authored.seq).map { "\($0)" } ?? "not proven a member"
            let label = original.label.map { "  (\($0))" } ?? ""
            print(
                TerminalText.escape(
                    "\(Self.time(authored.change.timestamp, now: now))  device \(authored.author.hex.prefix(12)) (\(role) of the origin vault)  change \(authored.seq)  envelope \(Hex.encode(original.envelope.hash).prefix(12))\(label)"
                ))
            for (index, op) in authored.change.operations.enumerated() {
                print("    " + TerminalText.escape(describe(op, id: authored.opID(index))))
            }
        }
        print("Then in this vault:")
    }

    /// The change's time in ISO 8601 (UTC, milliseconds), or the raw milliseconds when it lies beyond the years a
    /// calendar date can honestly show (a hostile stamp).
    static func time(_ stamp: HLCTimestamp, now: UInt64) -> String {
        // 253402300799999 ms is 9999-12-31T23:59:59.999Z, the last instant ISO 8601 writes with four digits.
        guard stamp.wallMillis <= 253_402_300_799_999 else { return "time \(stamp.wallMillis) ms" }
        let seconds = Double(stamp.wallMillis / 1000)
        let millis = stamp.wallMillis % 1000
        let date = Date(timeIntervalSince1970: seconds).ISO8601Format()
        // ISO8601Format() writes whole seconds ("…:05Z"); the milliseconds are added exactly, not through a Double.
        return date.dropLast() + "." + String(repeating: "0", count: 3 - String(millis).count) + "\(millis)Z"
    }

    /// A warning for a change stamped beyond this device's horizon (its clock plus one day), or nil.
    static func futureWarning(_ stamp: HLCTimestamp, now: UInt64) -> String? {
        guard HybridLogicalClock.isFromTheFuture(stamp, wallMillis: now) else { return nil }
        let days = (stamp.wallMillis - now) / 86_400_000
        let distance = days >= 3650 ? "\(days / 365) years" : "\(days) days"
        return "! stamped \(distance) ahead of this device's clock: it does not decide which value is shown"
    }

    func describe(_ op: RecordOperation, id: OpID) -> String {
        switch op {
        case .set(let field, let value, _):
            let summary = op.summary
            let verb = summary.prefix { $0 != " " }
            return "\(verb) \(field) = \(RecordText.oneLine(value, 60))   [op \(id)]"
        case .seal(let hash): return "sealed original content \(Hex.encode(hash).prefix(16))…"
        case .custody(let envelope, _): return "kept original envelope \(Hex.encode(BLAKE2b.hash(envelope)).prefix(12))"
        default: return op.summary
        }
    }
}
