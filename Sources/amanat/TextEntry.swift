import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How a long text (a testimony's narrative, a statement's body) reaches the command without leaking.
///
/// Text given as an option value (`--narrative "…"`) lands in the shell's history file and, while the command runs,
/// in every user's `ps`; so the documented ways are a file, standard input (`-`), or typing it at the terminal when
/// neither is given. The text is read into memory only: no temporary file is ever written, and it is kept out of the
/// process's arguments and environment.
enum TextEntry {
    /// Where a long field's text comes from.
    enum Source: Equatable {
        case none
        case argument(String)
        case file(String)
        case standardInput
    }

    /// The source chosen by `--NAME` and `--NAME-file`; `-` for either means standard input.
    static func source(flag: String, text: String?, file: String?) throws -> Source {
        if text != nil && file != nil { throw CLIError(.usage, "Give --\(flag) or --\(flag)-file, not both.") }
        if text == "-" || file == "-" { return .standardInput }
        if let file { return .file(file) }
        // The warning is for testimonies, whose text can endanger a witness; a statement's body is public.
        if let text, flag == "narrative" {
            note(
                "Note: text given with --\(flag) is kept in the shell's history and shown to other users by `ps`; use --\(flag)-file FILE, --\(flag)-file - (standard input), or leave both out to type it."
            )
            return .argument(text)
        }
        if let text { return .argument(text) }
        return .none
    }

    /// Reads the text of `source`; for `.none` on a terminal, asks for it and reads until end of input (Ctrl-D).
    /// Returns nil when there is no text and no terminal to ask at.
    static func read(_ source: Source, what: String) throws -> String? {
        switch source {
        case .argument(let text): return text
        case .file(let path): return try readTextFile(path)
        case .standardInput: return try decode(FileHandle.standardInput.readDataToEndOfFile(), from: "standard input")
        case .none:
            guard isatty(STDIN_FILENO) == 1 else { return nil }
            try? FileHandle.standardError.write(
                contentsOf: Data(
                    "Type or paste \(what); end with Ctrl-D on a line of its own (it is not saved anywhere until then):\n"
                        .utf8))
            let text = try decode(FileHandle.standardInput.readDataToEndOfFile(), from: "the terminal")
            return text
        }
    }

    /// Reads a body or narrative file, failing with one sentence if it cannot.
    static func readTextFile(_ path: String) throws -> String {
        if path == "-" { return try decode(FileHandle.standardInput.readDataToEndOfFile(), from: "standard input") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError(.noInput, "The file \(path) cannot be read.")
        }
        return try decode(data, from: "the file \(path)")
    }

    static func decode(_ data: Data, from origin: String) throws -> String {
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError(.usage, "The text from \(origin) is not UTF-8.")
        }
        return text
    }

    /// Whether `text` has nothing but white space.
    static func isBlank(_ text: String?) -> Bool {
        (text ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }
}
