import AmanatBundle
import AmanatCore
import AmanatCrypto
import ArgumentParser
import Foundation

extension Amanat {
    /// `amanat history`: every change to one record, oldest first.
    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every change ever made to a record, with its device and time.",
            discussion: """
                A testimony's sealing change is marked as the original; changes after it are amendments. Works on \
                deleted records too. Times are shown in $AMANAT_TIMEZONE (an IANA name like Asia/Kabul; default: the \
                system's zone), in the Solar Hijri calendar with AMANAT_CALENDAR=persian.

                --full shows every value whole, and for each amendment a word-level difference from the value it \
                replaced: [-removed words-] {+added words+}.

                --json prints the record, whether it is deleted, its origin and its changes (each with time, \
                wall_millis, device, device_name, seq, envelope, label, from_the_future and operations), with exact \
                values and UTC times; Docs/json.md has the exact shape.

                Example:
                  amanat history 3f9a1c
                  amanat history 3f9a1c --full
                  amanat history 3f9a1c --json
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Flag(help: "Show whole values and a word-level difference for each amendment.") var full = false
        @Flag(help: "Print JSON.") var json = false

        /// One change as `history --json` prints it.
        struct ChangeJSON: Encodable {
            var time: String
            var wall_millis: UInt64
            var device: String
            var device_name: String?
            var seq: UInt64
            var envelope: String
            var label: String?
            var from_the_future: Bool
            var operations: [OperationJSON]
        }

        /// One operation of a change in `history --json`.
        struct OperationJSON: Encodable {
            var op: String
            var type: String
            var field: String?
            var value: String?
            var previous: [String]?
            var tag: String?
        }

        /// The whole document of `history --json`.
        struct HistoryJSON: Encodable {
            var record: String
            var kind: String
            var deleted: Bool
            var origin: OriginJSON?
            var changes: [ChangeJSON]
        }

        /// Where an imported record came from, in `history --json`.
        struct OriginJSON: Encodable {
            var record: String
            var vault: String
            var verified: Bool
            var problems: [String]
            var original_changes: Int
        }

        func run() throws {
            let vault = try options.open()
            if let purged = vault.purges().last(where: { $0.record.hex.hasPrefix(id.lowercased()) }), id.count >= 6 {
                // All that is left of a purged record: who purged it, when and why.
                if json { return try JSONOutput.print(PurgeJSON(purged, vault: vault)) }
                print("Record \(purged.record.hex.prefix(12)) — purged")
                print(
                    "  \(Display.time(millis: purged.at.wallMillis))  purged by \(TerminalText.escape(vault.deviceLabel(purged.by))): \(TerminalText.escape(purged.reason))"
                )
                print(
                    "  The content of its \(purged.changes) change\(purged.changes == 1 ? "" : "s") and \(purged.chunks) attachment chunk\(purged.chunks == 1 ? "" : "s") was destroyed; their signatures remain, so `amanat verify` still checks the log."
                )
                return
            }
            let state = try vault.resolveRecord(id, includeDeleted: true)
            let now = vault.wallClock()
            var replay = RecordState(id: state.id)
            /// Every value written so far, by its op: what an amendment replaced.
            var written: [OpID: String] = [:]
            var changes: [ChangeJSON] = []
            let history = try vault.history(of: state)
            if !json {
                if state.isDeleted {
                    print("This record is deleted: `amanat undelete \(state.id.hex.prefix(12))` restores it.")
                }
                if let origin = state.origin {
                    let importing = history.first {
                        $0.change.author == origin.op.device && $0.change.seq == origin.op.seq
                    }
                    printCustody(origin, state: state, importing: importing?.change.change, now: now)
                }
            }
            for (envelope, authored) in history {
                let change = authored.change
                let imported = state.origin?.op.device == authored.author && state.origin?.op.seq == authored.seq
                let wasDeleted = replay.isDeleted
                replay.apply(authored)
                let restored = wasDeleted && replay.isVisible ? "undelete: the record is visible again" : nil
                let base =
                    imported
                    ? "import" : state.label(forChangeBy: authored.author, seq: authored.seq, at: change.timestamp)
                let label = [base, restored].compactMap { $0 }.joined(separator: ", ")
                let future = HybridLogicalClock.isFromTheFuture(change.timestamp, wallMillis: now)
                var operations: [OperationJSON] = []
                var lines: [String] = []
                var kept = 0
                for (index, op) in change.operations.enumerated() {
                    let opID = authored.opID(index)
                    if case .custody = op { kept += 1 }
                    var item = OperationJSON(op: "\(opID)", type: Self.type(of: op))
                    switch op {
                    case .set(let field, let value, let pred):
                        let previous = pred.compactMap { written[$0] }
                        item.field = field
                        item.value = value
                        item.previous = pred.isEmpty ? nil : previous
                        written[opID] = value
                        if !json, full {
                            lines += Self.fullLines(op: op, field: field, value: value, previous: previous, id: opID)
                        }
                    case .addTag(let tag), .removeTag(let tag, _):
                        item.tag = tag
                    default:
                        break
                    }
                    operations.append(item)
                    if !json, !(full && Self.isSet(op)), !Self.isCustody(op) {
                        lines.append("    " + TerminalText.escape(describe(op, id: opID)))
                    }
                }
                if json {
                    changes.append(
                        ChangeJSON(
                            time: change.timestamp.wallMillis <= 253_402_300_799_999
                                ? millisTime(change.timestamp.wallMillis) : "",
                            wall_millis: change.timestamp.wallMillis,
                            device: authored.author.hex, device_name: vault.memberName(authored.author),
                            seq: authored.seq, envelope: Hex.encode(envelope.hash), label: label.isEmpty ? nil : label,
                            from_the_future: future, operations: operations))
                    continue
                }
                print(
                    TerminalText.escape(
                        "\(Self.time(change.timestamp, now: now))  device \(vault.deviceLabel(authored.author))  change \(authored.seq)  envelope \(Hex.encode(envelope.hash).prefix(12))\(label.isEmpty ? "" : "  (\(label))")"
                    )
                )
                if let warning = Self.futureWarning(change.timestamp, now: now) {
                    print("    " + warning)
                }
                for line in lines { print(line) }
                if kept > 0 { print("    kept \(kept) original signed envelope\(kept == 1 ? "" : "s") (shown above)") }
            }
            if json {
                let origin = state.origin.map { origin in
                    let custody = CustodyReport(origin: origin, items: state.custody)
                    return OriginJSON(
                        record: origin.record.hex, vault: VaultFingerprint.of(origin.vault),
                        verified: custody.problems.isEmpty, problems: custody.problems,
                        original_changes: custody.changes.count)
                }
                print(
                    try RecordJSON.render(
                        HistoryJSON(
                            record: state.id.hex, kind: state.creationKind, deleted: state.isDeleted, origin: origin,
                            changes: changes)))
            }
        }

        static func isSet(_ op: RecordOperation) -> Bool {
            if case .set = op { return true }
            return false
        }

        static func isCustody(_ op: RecordOperation) -> Bool {
            if case .custody = op { return true }
            return false
        }

        /// The operation's type as `history --json` names it.
        static func type(of op: RecordOperation) -> String {
            switch op {
            case .create: return "create"
            case .set(_, _, let pred): return pred.count > 1 ? "resolve" : (pred.isEmpty ? "set" : "change")
            case .addTag: return "add-tag"
            case .removeTag: return "remove-tag"
            case .delete: return "delete"
            case .seal: return "seal"
            case .origin: return "origin"
            case .custody: return "custody"
            case .attach: return "attach"
            case .detach: return "detach"
            }
        }

        /// `--full` lines of a `set`: the whole value, indented and escaped line by line, and for an amendment the
        /// word-level difference from each value it replaced.
        static func fullLines(op: RecordOperation, field: String, value: String, previous: [String], id: OpID)
            -> [String]
        {
            let verb = op.summary.prefix { $0 != " " }
            var out = ["    \(verb) \(TerminalText.escape(field))   [op \(id)]:"]
            out += indented(value, "      | ")
            for old in previous where old != value {
                out.append("      difference from the value it replaced:")
                out += indented(WordDiff.render(from: old, to: value), "      ~ ")
            }
            if previous.contains(value) { out.append("      (the same value written again)") }
            return out
        }

        /// `text` split into lines, each escaped and prefixed.
        static func indented(_ text: String, _ prefix: String) -> [String] {
            text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }.map {
                prefix + TerminalText.escape(String($0))
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

        /// The change's time in the display zone and calendar (``Display/time(millis:)``), or the raw milliseconds
        /// when it lies beyond the years a calendar date can honestly show (a hostile stamp).
        static func time(_ stamp: HLCTimestamp, now: UInt64) -> String {
            Display.time(millis: stamp.wallMillis)
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
            case .custody(let envelope, _):
                return "kept original envelope \(Hex.encode(BLAKE2b.hash(envelope)).prefix(12))"
            case .attach(let spec):
                let name = spec.name.isEmpty ? "(standard input)" : RecordText.oneLine(spec.name, 60)
                return
                    "attached \(name), \(spec.mediaType), \(spec.size) bytes, SHA-256 \(Hex.encode(spec.sha256))   [attachment \(AttachmentInfo.id(of: id).prefix(12))]"
            default: return op.summary
            }
        }
    }
}
