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
            for (envelope, authored) in try vault.history(of: state) {
                let change = authored.change
                let time = Date(timeIntervalSince1970: Double(change.timestamp.wallMillis) / 1000)
                let label =
                    state.label(forChangeBy: authored.author, seq: authored.seq, at: change.timestamp)
                    .map { "  (\($0))" } ?? ""
                print(
                    TerminalText.escape(
                        "\(time.ISO8601Format())  device \(vault.deviceLabel(authored.author))  change \(authored.seq)  envelope \(Hex.encode(envelope.hash).prefix(12))\(label)"
                    )
                )
                for (index, op) in change.operations.enumerated() {
                    print("    " + TerminalText.escape(describe(op, id: authored.opID(index))))
                }
            }
        }
    }

    func describe(_ op: RecordOperation, id: OpID) -> String {
        switch op {
        case .set(let field, let value, _):
            let summary = op.summary
            let verb = summary.prefix { $0 != " " }
            return "\(verb) \(field) = \(RecordText.oneLine(value, 60))   [op \(id)]"
        case .seal(let hash): return "sealed original content \(Hex.encode(hash).prefix(16))…"
        default: return op.summary
        }
    }
}
