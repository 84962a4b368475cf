import AmanatCore
import ArgumentParser

extension Amanat {
    /// `amanat resolve`: ends a conflict by keeping one of the concurrent values.
    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a conflict on a field by keeping one value.",
            discussion: """
                VALUE_OR_OP is one of the conflicting values as `show` prints it, or the op reference shown beside it \
                (like 1a2b3c4d/7.1). The other values stay in the history.

                Example:
                  amanat resolve 3f9a1c location --keep "Herat"
                """)

        @OptionGroup var options: VaultOptions
        @Argument(help: "The record id or a unique prefix of it.") var id: String
        @Argument(help: "The field in conflict.") var field: String
        @Option(help: "The value to keep, or its op reference.") var keep: String
        @Flag(help: "Print the field, the value kept and the change as JSON (Docs/json.md).") var json = false

        func run() throws {
            let vault = try options.open()
            let state = try vault.resolveRecord(id)
            let field = try RecordSchema.requireField(kind: state.creationKind, field: field).name
            let values = state.visibleValues(of: field)
            guard values.count > 1 else {
                throw CLIError(
                    .usage, "Field \(field) of record \(state.id.hex.prefix(12)) has no conflict to resolve.")
            }
            guard let chosen = values.first(where: { $0.value == keep }) ?? values.first(where: { "\($0.op)" == keep })
            else {
                throw CLIError(
                    .usage, "\"\(keep)\" is not one of the conflicting values of \(field); `amanat show` lists them.")
            }
            let change = try vault.commit(record: state.id) { current in
                [.set(field: field, value: chosen.value, pred: (current ?? state).visibleValues(of: field).map(\.op))]
            }
            note("Resolved \(field) of \(state.id.hex.prefix(12)).")
            if json {
                try JSONOutput.print(
                    ResolvedJSON(
                        record: state.id.hex, field: field, kept: chosen.value, concurrent_values: values.count,
                        change: SignedChangeJSON(change)))
            }
        }
    }
}
