import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `amanat help TOPIC`: what is not one command's help — the exit statuses and the environment variables — written
/// once here and wrapped to the terminal's width like the rest of the help.
enum HelpTopic: String, CaseIterable {
    case exitStatus = "exit-status"
    case environment

    /// Also accepted: `amanat help exit`, `help exit-codes`, `help env`.
    init?(named name: String) {
        switch name.lowercased() {
        case "exit-status", "exit-statuses", "exit", "exit-codes", "status": self = .exitStatus
        case "environment", "env": self = .environment
        default: return nil
        }
    }

    /// The width help is wrapped to: $COLUMNS, else the terminal's, else 80 (as the parser's help).
    static var width: Int {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let n = Int(text), n >= 20 { return n }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 20 { return Int(size.ws_col) }
        return 80
    }

    /// Every exit status `amanat` uses, with what it means (the same list as README.md's table).
    static let exitStatuses: [(Int32, String)] = [
        (0, "Success."),
        (1, "Internal error: a bug. Please report it with the command that failed."),
        (
            2,
            "The selection (--kind, --tag, --any-tag, --id, --since, --until, or the search text) matched no record, or matched only records an export leaves out; the message shows the selection."
        ),
        (
            3,
            "An evidence bundle is intact but does not prove that its signers are members (or is not of the --expect-vault vault, or is an unsigned format-1 bundle); import refuses it."
        ),
        (
            64,
            "Bad usage or value: an unknown command or flag, a missing argument, an unknown field, a bad date or consent, a protected field, an empty narrative, a mistyped invitation code, a passphrase under 12 characters, a file longer than an attachment can be."
        ),
        (
            65,
            "Damaged or forged data: a corrupt vault file, a tampered envelope, sync file or bundle; or an attached file export --strip-location cannot strip."
        ),
        (
            66,
            "Missing input: no vault there, an unreadable input file, a sync file that does not exist yet (without --create), an output folder that does not exist, or an attachment that is not complete on this device (extract, export) or that fetch could not complete."
        ),
        (
            67,
            "Unknown or ambiguous record id, a word that is not an id (try search), or a deleted record (try undelete)."
        ),
        (
            69,
            "The relay cannot be reached, after retries (none of several relay URLs), or serve cannot use its --database."
        ),
        (
            73,
            "Already there: a vault exists in that folder, or the output file exists (export, invite, backup, extract; --force replaces it)."
        ),
        (
            74,
            "Input/output error, a full disk (or an attach that would leave it under 32 MiB free), a read-only or full USB stick, media that did not fit on the stick or in the relay's --quota, records past the relay's --quota, or a wipe that could not destroy every file; the message names the path."
        ),
        (75, "The vault is busy in another amanat process."),
        (
            77,
            "Not permitted: a wrong passphrase or invitation code, the relay refused this device's key or needs its registration code, or this device's role does not allow the action (a reader writing, a member revoking or purging)."
        ),
    ]

    /// Every environment variable `amanat` reads.
    static let environmentVariables: [(String, String)] = [
        ("AMANAT_VAULT", "The vault folder when --vault is not given (default: $HOME/.amanat)."),
        (
            "AMANAT_PASSPHRASE",
            "The vault's passphrase when --passphrase-file is not given. Visible to other programs of the same user: prefer --passphrase-file or the prompt."
        ),
        ("AMANAT_NEW_PASSPHRASE", "The new passphrase for `amanat passphrase` (else --new-passphrase-file or asked)."),
        ("AMANAT_BUNDLE_PASSPHRASE", "The passphrase of a bundle made or opened with --passphrase."),
        ("AMANAT_DURESS_PASSPHRASE", "The duress passphrase for `amanat duress set` (else --duress-file or asked)."),
        ("AMANAT_INVITE_CODE", "The invitation code for `amanat join` when --code is not given."),
        (
            "AMANAT_REGISTRATION_CODE",
            "The relay's registration code for a vault's first sync with it (else --registration-code)."
        ),
        ("AMANAT_RELAY_DATA", "The relay's data folder for `amanat serve` when --data is not given."),
        (
            "AMANAT_DATABASE_PASSWORD",
            "The PostgreSQL password for `amanat serve --database` when no --database-password-file is given (the file wins)."
        ),
        ("AMANAT_CALENDAR", "persian shows and reads dates in the Solar Hijri calendar too (also --calendar)."),
        ("AMANAT_TIMEZONE", "An IANA zone name such as Asia/Kabul for the times shown (default: the system's)."),
        ("COLUMNS", "The width help and tables are fitted to (default: the terminal's)."),
        ("HOME", "Where the default vault folder .amanat is."),
    ]

    /// The topic's text, wrapped to `width` columns with each entry's description hanging under its first line.
    func text(width: Int) -> String {
        switch self {
        case .exitStatus:
            return "EXIT STATUSES\n\n"
                + Self.exitStatuses.map { Self.entry(String($0.0), $0.1, label: 4, width: width) }.joined()
                + "\n"
                + "Every error is one line on standard error starting with `amanat:`; standard output keeps only what a command reports."
                .wrapped(width) + "\n"
        case .environment:
            return "ENVIRONMENT\n\n"
                + Self.environmentVariables.map { Self.entry($0.0, $0.1, label: 26, width: width) }.joined()
                + "\n" + "A flag given on the command line wins over its environment variable.".wrapped(width) + "\n"
        }
    }

    private static func entry(_ label: String, _ text: String, label labelWidth: Int, width: Int) -> String {
        let indent = labelWidth + 4
        let first = "  " + label.padding(toLength: max(labelWidth, label.count), withPad: " ", startingAt: 0) + "  "
        if first.count > indent {
            return "  \(label)\n" + text.wrapped(width, indent: indent) + "\n"
        }
        let body = text.wrapped(width, indent: indent)
        return first + body.dropFirst(indent) + "\n"
    }
}

extension String {
    /// The text broken at spaces into lines of at most `width` columns (a longer word stays whole), each line
    /// starting with `indent` spaces.
    func wrapped(_ width: Int, indent: Int = 0) -> String {
        let room = max(width - indent, 20)
        var lines: [String] = []
        var line = ""
        for word in split(separator: " ", omittingEmptySubsequences: true) {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= room {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        if !line.isEmpty { lines.append(line) }
        let pad = String(repeating: " ", count: indent)
        return lines.map { pad + $0 }.joined(separator: "\n")
    }
}
