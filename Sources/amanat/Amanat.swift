import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The `amanat` command: an encrypted, offline-first vault of testimonies and statements.
@main
struct Amanat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amanat",
        abstract: "An encrypted, offline-first vault of testimonies and statements that syncs without losing an edit.",
        discussion: """
            The vault is chosen with --vault DIR, else $AMANAT_VAULT, else $HOME/.amanat. The passphrase is read from \
            --passphrase-file, else $AMANAT_PASSPHRASE, else asked at the terminal without echo.

            Exit statuses: `amanat help exit-status`. Environment variables: `amanat help environment`. A command's \
            help: `amanat help COMMAND` or `amanat COMMAND --help`.

            Example:
              export AMANAT_VAULT=~/vault
              amanat init --device-name "field laptop"
              amanat add statement --title "Coalition statement" \\
                --body-file statement.txt --tag afghanistan
              amanat add testimony --witness W-017 --location Kabul
              (then type the testimony and end with Ctrl-D)
              amanat list
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Add.self, List.self, Show.self, History.self, Edit.self, Tag.self, Delete.self, Undelete.self,
            Purge.self,
            Resolve.self,
            Search.self, Status.self, Verify.self, Identity.self, Sync.self, Import.self, Invite.self, Join.self,
            Members.self, Revoke.self, RoleCommand.self, Rename.self, DismissFork.self, Recover.self,
            Export.self, Bundle.self,
            ChangePassphrase.self, Backup.self, Restore.self, Wipe.self, Serve.self, Shell.self,
            Attach.self, Attachments.self, Extract.self, Detach.self, Fetch.self,
            Duress.self, Config.self,
        ]
    )

    /// Accepted before the subcommand too (`amanat --vault DIR list`), as the command-line contract says.
    @OptionGroup var options: VaultOptions

    /// The entry point: no core dumps, then the command. Every failure, the parser's included, is reported here
    /// and only here, as one `amanat: …` sentence and its documented exit status (``ErrorReport``).
    static func main() async {
        disableCoreDumps()
        ProgressLine.watchLockWaits()
        // The parser wraps help to $COLUMNS and traps below about 27 columns: a narrower or unreadable value is
        // taken as 40 (a terminal that narrow wraps the lines itself).
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"], (Int(columns) ?? 0) < 40 {
            setenv("COLUMNS", "40", 1)
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        let status = await execute(arguments, exitOnHelp: true)
        // What was printed must have reached standard output (a full disk, a closed pipe), or the command failed.
        // (Swift 6 does not let `stdout` be read directly: it is a C global, reached here through its symbol.)
        if let symbol = dlsym(nil, "stdout"),
            let output = symbol.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee,
            fflush(output) != 0 || ferror(output) != 0
        {
            try? FileHandle.standardError.write(
                contentsOf: Data(
                    "amanat: What this command printed could not be written to standard output (a full disk, or a closed output?).\n"
                        .utf8))
            Foundation.exit(status == 0 ? CLIError.Status.io.rawValue : status)
        }
        Foundation.exit(status)
    }

    /// Runs one command line (from the process's arguments, or a line typed in `amanat shell`) and returns its exit
    /// status, having reported any failure (``ErrorReport``).
    static func execute(_ arguments: [String], exitOnHelp: Bool = false) async -> Int32 {
        if arguments.count == 2, arguments[0] == "help" {
            if let topic = HelpTopic(named: arguments[1]) {
                print(topic.text(width: HelpTopic.width), terminator: "")
                return 0
            }
            let commands = configuration.subcommands.map { $0._commandName }
            if !commands.contains(arguments[1]) {
                let topics = HelpTopic.allCases.map(\.rawValue)
                let close = Suggestion.closest(to: arguments[1], among: commands + topics)
                return ErrorReport.report(
                    CLIError(
                        .usage,
                        "'\(arguments[1])' is neither a command nor a help topic (\(topics.joined(separator: ", ")))"
                            + (close.map { "; did you mean `amanat help \($0)`?" } ?? ".")
                            + " `amanat --help` lists the commands."),
                    arguments: arguments)
            }
        }
        if arguments.first == "help", let flag = arguments.dropFirst().first(where: { $0.hasPrefix("-") }) {
            let command = arguments.dropFirst().prefix { !$0.hasPrefix("-") }.joined(separator: " ")
            return ErrorReport.report(
                CLIError(
                    .usage,
                    "`amanat help` takes a command, not its flags (\(flag)): `amanat help \(command.isEmpty ? "COMMAND" : command)` lists them."
                ),
                arguments: arguments)
        }
        if let word = arguments.first, let meant = Suggestion.aliases[word] {
            return ErrorReport.report(
                CLIError(
                    .usage,
                    "'\(word)' is not an amanat command; did you mean `amanat \(meant)`? See `amanat --help`."),
                arguments: arguments)
        }
        do {
            var command = try parseAsRoot(arguments)
            // A command made only of subcommands, given none (`amanat add`): a usage error, not help and success.
            if !(command is Amanat), !type(of: command).configuration.subcommands.isEmpty {
                let place = CommandPlace(arguments: arguments)
                let names = type(of: command).configuration.subcommands.map { $0._commandName }
                throw CLIError(
                    .usage,
                    "`\(place.invocation)` needs one of: \(names.joined(separator: ", ")). See `\(place.invocation) --help`."
                )
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            if exitOnHelp { ErrorReport.exit(with: error, arguments: arguments) }
            return ErrorReport.report(error, arguments: arguments)
        }
    }

    /// Keeps secrets (the passphrase, keys, decrypted records) out of core files: the core size limit is set to 0,
    /// and on Linux the process is marked not dumpable, which also stops a core piped to a crash handler
    /// (`core_pattern` starting with `|` ignores the size limit) and other users' ptrace attaching.
    /// Done before anything is read, for every command. (Amanat runs on Linux; elsewhere this does nothing.)
    static func disableCoreDumps() {
        #if os(Linux)
            var none = rlimit(rlim_cur: 0, rlim_max: 0)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
            // prctl(2) is variadic in C, so Swift cannot call it directly; on Linux's calling conventions (x86-64,
            // AArch64) passing its integer arguments through a fixed five-argument signature is what C callers do.
            typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
            if let symbol = dlsym(nil, "prctl") {
                let setDumpable: Int32 = 4  // PR_SET_DUMPABLE in <linux/prctl.h>, not exported to Swift by Glibc
                _ = unsafeBitCast(symbol, to: Prctl.self)(setDumpable, 0, 0, 0, 0)
            }
        #endif
    }
}
