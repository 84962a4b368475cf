import AmanatCrypto
import AmanatStore
import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Amanat {
    /// `amanat shell`: unlock once, then run commands at a prompt.
    struct Shell: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unlock the vault once, then run commands at a prompt; it locks itself when idle or on Ctrl-D.",
            discussion: """
                Type the same commands as on the command line, without `amanat` (list, show 3f9a1c, sync \
                /media/usb/team.amanat-sync). The vault stays unlocked in this process only: no agent runs in the \
                background and no key is written to disk. Up and down arrows recall this session's commands; the \
                history is kept in memory only and is gone when the session ends (`history` lists it).

                The session locks itself, wiping the keys from memory and exiting, after --idle without a command \
                (default 5 minutes), on Ctrl-D at an empty prompt, or on `exit`. Commands that need the passphrase \
                itself (passphrase, backup) use the one that unlocked the session. `init`, `join`, `restore`, \
                `serve` and `shell` are run from the command line, not here. Ctrl-C while a command runs ends the \
                session (and the keys with it).

                Lines can come from a pipe too (no prompt is written then; a line starting with # is skipped): the \
                exit status is that of the last command that failed, or 0.

                Example:
                  amanat shell --idle 10m
                  amanat> list --tag detention
                  amanat> show 3f9a1c
                  amanat> exit
                """)

        @OptionGroup var options: VaultOptions
        @Option(help: "Lock after this long without a command: 90s, 10m, 1h, or minutes (default 5m).")
        var idle: String = "5m"

        func run() async throws {
            let timeout = try Self.parseIdle(idle)
            let (vault, passphrase) = try options.openKeepingPassphrase()
            Session.current = Session(directory: options.directory, vault: vault, passphrase: passphrase)
            let interactive = isatty(STDIN_FILENO) == 1
            if interactive {
                note(
                    "Unlocked \(options.directory.path). Type a command (help lists them); the session locks after \(Self.describe(timeout)) without one, on Ctrl-D or on exit."
                )
            }
            // Lines read from a script get no prompt; the session's status is the last failed command's.
            var reader = LineReader(prompt: interactive ? "amanat> " : "")
            var history: [String] = []
            var failed: Int32 = 0
            defer { Session.current = nil }
            // The keyring as this session left it: changed or gone behind its back (a wipe, a duress passphrase
            // or a passphrase change typed in another terminal), the session locks instead of working on.
            var keyring = Self.keyringStamp(options.directory)
            while true {
                let line: String
                switch reader.read(timeout: timeout, history: history) {
                case .line(let text): line = text
                case .endOfInput:
                    note("Locked: the keys are wiped from memory.")
                    if failed != 0 { throw ExitCode(failed) }
                    return
                case .idle:
                    note("Locked after \(Self.describe(timeout)) without a command: the keys are wiped from memory.")
                    if failed != 0 { throw ExitCode(failed) }
                    return
                }
                let words: [String]
                do {
                    words = try ShellWords.split(line)
                } catch {
                    note("amanat: \(error)")
                    failed = CLIError.Status.usage.rawValue
                    continue
                }
                guard let first = words.first, !first.hasPrefix("#") else { continue }
                if history.last != line { history.append(line) }
                switch first {
                case "exit", "quit", "lock":
                    note("Locked: the keys are wiped from memory.")
                    if failed != 0 { throw ExitCode(failed) }
                    return
                case "history":
                    for (index, entry) in history.enumerated() { print("\(index + 1)  \(entry)") }
                    continue
                case "amanat":
                    // A habit from the command line: `amanat list` at the prompt means `list`.
                    if words.count > 1 { break }
                    continue
                case "init", "join", "restore", "serve", "shell":
                    note("amanat: `\(first)` is run from the command line, not inside `amanat shell`.")
                    failed = CLIError.Status.usage.rawValue
                    if interactive { note("(exit status \(failed))") }
                    continue
                default:
                    break
                }
                let arguments = first == "amanat" ? Array(words.dropFirst()) : words
                guard Self.keyringStamp(options.directory) == keyring else {
                    note(
                        "The vault's keyring changed outside this session (wiped, or its passphrase changed elsewhere): the session locks; the keys are wiped from memory."
                    )
                    throw ExitCode(CLIError.Status.busy.rawValue)
                }
                let status = await Amanat.execute(arguments)
                keyring = Self.keyringStamp(options.directory)
                if status != 0 {
                    failed = status
                    if interactive { note("(exit status \(status))") }
                }
                if !Vault.exists(at: options.directory) {
                    note("The vault is gone (wiped); the session ends.")
                    if failed != 0 { throw ExitCode(failed) }
                    return
                }
            }
        }

        /// The keyring file's identity and last change (inode, size, modification time), or nil when it is gone.
        static func keyringStamp(_ dir: URL) -> [Int]? {
            var info = stat()
            guard stat(dir.appendingPathComponent(Vault.keyringFileName).path, &info) == 0 else { return nil }
            return [
                Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec),
            ]
        }

        /// `5 minutes`, `90 seconds`, `1 hour`.
        static func describe(_ duration: Duration) -> String {
            let seconds = Int(duration.components.seconds)
            let (count, unit) =
                seconds % 3600 == 0
                ? (seconds / 3600, "hour") : seconds % 60 == 0 ? (seconds / 60, "minute") : (seconds, "second")
            return "\(count) \(unit)\(count == 1 ? "" : "s")"
        }

        /// `90s`, `10m`, `1h` or a number of minutes, from 1 second to 24 hours.
        static func parseIdle(_ text: String) throws -> Duration {
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600]
            var digits = Substring(text)
            var unit = 60
            if let last = text.last, let seconds = units[last] {
                unit = seconds
                digits = digits.dropLast()
            }
            guard digits.count <= 6, let count = Int(digits), count > 0, count * unit <= 86_400 else {
                throw CLIError(.usage, "--idle takes a time such as 90s, 10m or 1h (at most 24h), not \"\(text)\".")
            }
            return .seconds(count * unit)
        }
    }
}

/// The vault a running `amanat shell` unlocked: commands typed at its prompt use it instead of unlocking again.
final class Session: @unchecked Sendable {
    nonisolated(unsafe) static var current: Session?

    let directory: URL
    let vault: Vault
    /// The passphrase that unlocked the session, for the commands that use it itself (backup, passphrase).
    var passphrase: SecureBytes?

    init(directory: URL, vault: Vault, passphrase: SecureBytes?) {
        self.directory = directory
        self.vault = vault
        self.passphrase = passphrase
    }
}

/// Splits a typed line into words as a shell would: spaces separate, '…' and "…" quote, \ escapes one character.
enum ShellWords {
    struct Unbalanced: Error, CustomStringConvertible {
        var description: String
    }

    static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for c in line {
            if escaped {
                word.append(c)
                escaped = false
                inWord = true
            } else if c == "\\" && quote != "'" {
                escaped = true
            } else if let q = quote {
                if c == q { quote = nil } else { word.append(c) }
            } else if c == "'" || c == "\"" {
                quote = c
                inWord = true
            } else if c == " " || c == "\t" {
                if inWord { words.append(word) }
                word = ""
                inWord = false
            } else {
                word.append(c)
                inWord = true
            }
        }
        if let quote { throw Unbalanced(description: "A \(quote) is not closed; nothing was run.") }
        if escaped { throw Unbalanced(description: "The line ends with a \\; nothing was run.") }
        if inWord { words.append(word) }
        return words
    }
}

/// Reads one line at a time with an idle deadline. On a terminal it edits the line in place (arrows, Home/End,
/// Ctrl-A/E/U, backspace) and recalls earlier lines with up and down; elsewhere it reads plain lines.
struct LineReader {
    enum Outcome: Equatable {
        case line(String)
        case endOfInput
        case idle
    }

    let prompt: String
    private var pending: [UInt8] = []

    init(prompt: String) { self.prompt = prompt }

    mutating func read(timeout: Duration, history: [String]) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        if isatty(STDIN_FILENO) == 1 { return readEditing(until: deadline, history: history) }
        write(prompt)
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return .line(line)
            }
            switch nextBytes(until: deadline) {
            case .some(let bytes) where !bytes.isEmpty: pending += bytes
            case .some:
                if pending.isEmpty { return .endOfInput }
                let line = String(decoding: pending, as: UTF8.self)
                pending = []
                return .line(line)
            case .none: return .idle
            }
        }
    }

    /// Raw mode for the time of one line: the terminal is restored before the command runs (a command may ask for
    /// a passphrase or read a testimony until Ctrl-D).
    private mutating func readEditing(until deadline: ContinuousClock.Instant, history: [String]) -> Outcome {
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return .endOfInput }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        _ = tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        defer { _ = tcsetattr(STDIN_FILENO, TCSANOW, &saved) }

        var text: [Character] = []
        var cursor = 0
        var recalled = history.count
        var draft: [Character] = []
        func redraw() {
            let after = text.count - cursor
            write("\r\u{1B}[K" + prompt + String(text) + (after > 0 ? "\u{1B}[\(after)D" : ""))
        }
        redraw()
        var bytes: [UInt8] = []
        while true {
            if bytes.isEmpty {
                guard let more = nextBytes(until: deadline) else {
                    write("\r\n")
                    return .idle
                }
                if more.isEmpty { return .endOfInput }
                bytes = more
            }
            let byte = bytes.removeFirst()
            switch byte {
            case 13, 10:
                write("\r\n")
                return .line(String(text))
            case 4:  // Ctrl-D: end of input at an empty prompt
                if text.isEmpty {
                    write("\r\n")
                    return .endOfInput
                }
            case 3:  // Ctrl-C: drop the line
                write("^C\r\n")
                text = []
                cursor = 0
                redraw()
            case 1: cursor = 0
            case 5: cursor = text.count
            case 21:
                text.removeSubrange(..<cursor)
                cursor = 0
            case 127, 8:
                if cursor > 0 {
                    text.remove(at: cursor - 1)
                    cursor -= 1
                }
            case 27:
                // ESC [ A/B/C/D (arrows), ESC [ H/F (Home/End), ESC [ 3 ~ (Delete).
                while bytes.count < 2, let more = nextBytes(until: ContinuousClock.now + .milliseconds(50)),
                    !more.isEmpty
                {
                    bytes += more
                }
                guard bytes.count >= 2, bytes[0] == 91 || bytes[0] == 79 else { break }
                let key = bytes[1]
                bytes.removeFirst(2)
                switch key {
                case 65 where recalled > 0:
                    if recalled == history.count { draft = text }
                    recalled -= 1
                    text = Array(history[recalled])
                    cursor = text.count
                case 66 where recalled < history.count:
                    recalled += 1
                    text = recalled == history.count ? draft : Array(history[recalled])
                    cursor = text.count
                case 67: cursor = min(cursor + 1, text.count)
                case 68: cursor = max(cursor - 1, 0)
                case 72: cursor = 0
                case 70: cursor = text.count
                case 51:
                    if bytes.first == 126 { bytes.removeFirst() }
                    if cursor < text.count { text.remove(at: cursor) }
                default: break
                }
            default:
                guard byte >= 32 else { break }
                // One UTF-8 character: its lead byte says how many bytes follow.
                let length = byte < 0xC0 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4
                var sequence = [byte]
                while sequence.count < length {
                    if bytes.isEmpty {
                        guard let more = nextBytes(until: ContinuousClock.now + .milliseconds(50)), !more.isEmpty
                        else { break }
                        bytes = more
                    }
                    sequence.append(bytes.removeFirst())
                }
                for character in String(decoding: sequence, as: UTF8.self) {
                    text.insert(character, at: cursor)
                    cursor += 1
                }
            }
            redraw()
        }
    }

    /// Bytes from standard input, an empty array at end of input, or nil when `deadline` passes first.
    private func nextBytes(until deadline: ContinuousClock.Instant) -> [UInt8]? {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            let millis = Int32(
                clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            var poller = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, max(1, millis))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 1024)
            let count = Glibc.read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            return count <= 0 ? [] : Array(buffer[..<count])
        }
    }

    private func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
}
