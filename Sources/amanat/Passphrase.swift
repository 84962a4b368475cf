import AmanatCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Reading the passphrase without leaving copies of it around.
enum Passphrase {
    /// Reads the passphrase from `file`, else `AMANAT_PASSPHRASE`, else the terminal with echo off.
    static func read(
        file: String?, prompt: String, confirm: Bool, environmentVariable: String = "AMANAT_PASSPHRASE"
    ) throws -> SecureBytes {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError(.noInput, "The passphrase file \(file) cannot be read.")
            }
            var bytes = Array(data)
            if let newline = bytes.firstIndex(of: 10) { bytes.removeSubrange(newline...) }
            if bytes.last == 13 { bytes.removeLast() }
            return try nonEmpty(SecureBytes(consuming: &bytes))
        }
        if let env = ProcessInfo.processInfo.environment[environmentVariable] {
            var bytes = Array(env.utf8)
            return try nonEmpty(SecureBytes(consuming: &bytes))
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw CLIError(
                .usage, "No passphrase: no terminal to ask at; set \(environmentVariable) or pass a passphrase file.")
        }
        let first = try prompted(prompt)
        if confirm {
            let second = try prompted("Repeat the passphrase: ")
            guard first.constantTimeEquals(second) else { throw CLIError(.usage, "The two passphrases differ.") }
        }
        return try nonEmpty(first)
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
