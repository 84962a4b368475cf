import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Reading the passphrase without leaving copies of it around.
enum Passphrase {
    /// Reads the passphrase from `file`, else `AMANAT_PASSPHRASE` (which is then wiped and removed from the
    /// environment), else the terminal with echo off. `fileOption` is the option that gives `file`, named when no
    /// terminal can ask (nil where the command has none).
    static func read(
        file: String?, prompt: String, confirm: Bool, environmentVariable: String = "AMANAT_PASSPHRASE",
        fileOption: String? = "--passphrase-file"
    ) throws -> SecureBytes {
        if file == "-" { return try nonEmpty(try lineOfStandardInput()) }
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError(.noInput, "The passphrase file \(file) cannot be read.")
            }
            var bytes = Array(data)
            if let newline = bytes.firstIndex(of: 10) { bytes.removeSubrange(newline...) }
            if bytes.last == 13 { bytes.removeLast() }
            return try nonEmpty(SecureBytes(consuming: &bytes))
        }
        if let secret = takeFromEnvironment(environmentVariable) {
            return try nonEmpty(secret)
        }
        guard isatty(STDIN_FILENO) == 1 else {
            let file = fileOption.map { " or give \($0) FILE" } ?? ""
            throw CLIError(.usage, "No passphrase: no terminal to ask at; set \(environmentVariable)\(file).")
        }
        let first = try prompted(prompt)
        if confirm {
            let second = try prompted("Repeat the passphrase: ")
            guard first.constantTimeEquals(second) else { throw CLIError(.usage, "The two passphrases differ.") }
        }
        return try nonEmpty(first)
    }

    /// The fewest characters (Unicode code points) a new vault's passphrase may have without
    /// `--allow-weak-passphrase`. Argon2id slows a guesser to a few guesses per second per core, which protects a
    /// passphrase of several random words, not a short one.
    static let minimumLength = 12

    /// Refuses a passphrase shorter than ``minimumLength`` characters unless `allowWeak`; counted over the UTF-8
    /// bytes in place, so that no ordinary copy of the secret is made.
    static func checkStrength(_ secret: SecureBytes, allowWeak: Bool, command: String = "init") throws {
        let characters = secret.withUnsafeBytes { raw in raw.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) } }
        let hint = command == "init" ? "try `amanat init --generate-passphrase`" : "several random words are best"
        guard allowWeak || characters >= minimumLength else {
            throw CLIError(
                .usage,
                "The passphrase has \(characters) characters; a vault's passphrase needs at least \(minimumLength) (\(hint)), or pass --allow-weak-passphrase."
            )
        }
    }

    /// Copies the variable's value into guarded memory, then overwrites the value in the environment block with
    /// zeros and removes the variable, so that neither child processes, `/proc/PID/environ` nor a memory dump show
    /// it. The process reads it only once.
    private static func takeFromEnvironment(_ name: String) -> SecureBytes? {
        guard let value = getenv(name) else { return nil }
        let length = strlen(value)
        let secret = SecureBytes(count: length) { out in
            value.withMemoryRebound(to: UInt8.self, capacity: length) { out.update(from: $0, count: length) }
        }
        memset(value, 0, length)
        unsetenv(name)
        return secret
    }

    private static func nonEmpty(_ secret: SecureBytes) throws -> SecureBytes {
        guard secret.count > 0 else { throw CLIError(.usage, "The passphrase is empty.") }
        return secret
    }

    /// Prompts on stderr and reads one line from the terminal with echo switched off.
    private static func prompted(_ prompt: String) throws -> SecureBytes {
        try? FileHandle.standardError.write(contentsOf: Data(prompt.utf8))
        var old = termios()
        tcgetattr(STDIN_FILENO, &old)
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old)
            try? FileHandle.standardError.write(contentsOf: Data("\n".utf8))
        }
        return try lineOfStandardInput()
    }

    /// One line of standard input (up to a newline, a carriage return or the end), read byte by byte into guarded
    /// memory so that nothing after it is consumed and no copy is left in an ordinary buffer.
    private static func lineOfStandardInput() throws -> SecureBytes {
        let buffer = SecureBytes(count: 1024)
        var length = 0
        try buffer.withUnsafePointer { p in
            let mutable = UnsafeMutablePointer(mutating: p)
            while length < 1024 {
                var c: UInt8 = 0
                let n = Glibc.read(STDIN_FILENO, &c, 1)
                if n <= 0 || c == 10 || c == 13 { break }
                mutable[length] = c
                length += 1
                c = 0
            }
            if length == 1024 { throw CLIError(.usage, "The passphrase is too long.") }
        }
        return buffer.withUnsafeBytes { raw in
            SecureBytes(count: length) { out in
                out.update(from: raw.bindMemory(to: UInt8.self).baseAddress!, count: length)
            }
        }
    }
}
